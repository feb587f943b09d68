"""Embed speed: seconds of wall time per minute of video, warm per stage and cold through the CLI.

Two clip lengths, each embedded with the default encoders and with the previous defaults
(audio ``librosa-descriptors``, before ``descriptors-whisper``), side by side in this run:

* **reel**: reel-length talking-face clips (espeak-ng Indonesian sentences with pauses over a
  moving real face, ``--reel-seconds`` each, 75 s by default; reels run about 77 s);
* **short**: the first ``--short-clips`` real clips of ``shared/data/javanese-av`` (acted
  speech over a filmed face, about 4.5 s each).

For each, **warm**: models loaded first (a warm-up clip), then an ``Embedder`` as ``cli.py
embed`` builds it (``build_embedder``, with the speaker stage ``embed`` runs beside the audio)
runs on a fresh store and reports its stage seconds (decode, asr, audio, video, text,
speaker, write; they overlap on the embedder's two threads, so the total is the wall time);
**cold**: ``cli.py embed`` as a subprocess on the same clips into another fresh store, its
whole wall time (interpreter start, imports, model loads and the speaker groups included):
what a user's ``embed`` pays. All figures are seconds per minute of video; ``ratio`` is the
previous defaults' figure over the default's (above 1: the default is faster).

**Text import**: ``cli.py embed --modalities text`` of the first ``--transcripts`` window
transcripts of ``shared/data/reels-transcripts`` (no media, no ASR), warm (the text encoder
loaded) and cold (a subprocess); the figure is distinct window texts per second of wall time.

    .venv/bin/python -m bench.embed_speed [--quick] [--reels 4] [--reel-seconds 75] [--short-clips 24]
                                          [--transcripts 120] [--audio-encoder NAME] [--json FILE]

``--quick`` (one 30 s reel, 4 short clips, about a minute) is a smoke run, not a figure to quote.
The machine's other load moves these figures; the ratios, measured side by side, less so.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHORT_DATA = ROOT.parent / "shared" / "data" / "javanese-av"
TRANSCRIPT_DATA = ROOT.parent / "shared" / "data" / "reels-transcripts"
#: The audio encoder that was the default before ``descriptors-whisper`` (docs/benchmarks.md, section 2).
PREVIOUS_AUDIO = "librosa-descriptors"
CONFIGS = {"default": {}, "previous": {"audio": PREVIOUS_AUDIO}}


def make_reels(out: Path, n_clips: int, seconds: float) -> Path:
    """``n_clips`` talking-face .mp4 files of about ``seconds`` each, their manifest, and
    ``texts.json`` (``{file name: spoken text}``, for ``bench.asr_quality``)."""
    from featurestore.schema import CLASSES
    from reels_demo.corpus import EMOTION_SENTENCES, face_frames, speak, write_talking_video

    out.mkdir(parents=True, exist_ok=True)
    rows, texts = ["id,video,emotion"], {}
    fps = 10
    for i in range(n_clips):
        emotion = CLASSES[i % len(CLASSES)]
        sentences = EMOTION_SENTENCES[emotion]
        pieces, spoken, rate, total = [], [], 22050, 0.0
        k = 0
        while total < seconds - 2.0:
            samples, rate = speak(sentences[k % len(sentences)])
            pause = np.zeros(int(0.6 * rate), np.float32)
            pieces += [samples, pause]
            spoken.append(sentences[k % len(sentences)])
            total += (len(samples) + len(pause)) / rate
            k += 1
        audio = np.concatenate(pieces)[: int(seconds * rate)]
        n_frames = int(len(audio) / rate * fps)
        path = out / f"reel{i:02d}.mp4"
        write_talking_video(path, face_frames(n_frames, seed=i), fps, audio, rate)
        rows.append(f"reel{i:02d},{path.name},{emotion}")
        texts[path.name] = " ".join(spoken)
    (out / "manifest.csv").write_text("\n".join(rows) + "\n")
    (out / "texts.json").write_text(json.dumps(texts, ensure_ascii=False, indent=1))
    return out / "manifest.csv"


def short_manifest(out: Path, n_clips: int, data: Path = SHORT_DATA) -> Path:
    """A manifest of the first ``n_clips`` clips of ``data`` (absolute paths)."""
    import pandas as pd

    if not (data / "labels.csv").is_file():
        raise FileNotFoundError(f"{data}/labels.csv: the short clips come from shared/data/javanese-av; "
                                "pass --short-data DIR with a labels.csv (id,video,emotion)")
    df = pd.read_csv(data / "labels.csv").head(n_clips)
    df["video"] = [str((data / v).resolve()) for v in df["video"]]
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"


def transcript_manifest(out: Path, n: int, data: Path = TRANSCRIPT_DATA) -> Path:
    """A text-only manifest of the first ``n`` transcripts of ``data`` (absolute paths)."""
    import pandas as pd

    if not (data / "labels.csv").is_file():
        raise FileNotFoundError(f"{data}/labels.csv: the text import reads shared/data/reels-transcripts")
    df = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False).head(n)
    df["transcript"] = [str((data / t).resolve()) for t in df["transcript"]]
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"


def distinct_texts(store_root: Path) -> int:
    """Distinct non-empty window texts in a store (what the text encoder had to encode)."""
    from featurestore.store import FeatureStore

    t = FeatureStore(store_root).query(
        "SELECT count(DISTINCT transcript) AS n FROM windows WHERE transcript IS NOT NULL")
    return int(t.column("n")[0].as_py())


def text_import(manifest: Path, work: Path) -> dict:
    """Distinct window texts per second: warm (an ``Embedder`` with the text encoder loaded,
    its cache emptied) and cold (``cli.py embed --modalities text`` as a subprocess)."""
    from featurestore.embed import Embedder, build_embedder
    from featurestore.manifest import read_manifest
    from featurestore.store import FeatureStore

    m = read_manifest(manifest)
    embedder, _ = build_embedder(FeatureStore(work / "text-warmup"), m, modalities=["text"], progress=False)
    embedder.log = lambda msg: None
    enc = embedder.encoders["text"]
    enc.encode(["pemanasan model"])            # loads the model's pages before the clock starts
    enc._cache.clear()
    timed = Embedder(FeatureStore(work / "text-warm"), embedder.encoders, None, progress=False,
                     log=lambda msg: None, text_unit=embedder.text_unit)
    r = timed.run(m)
    n = distinct_texts(work / "text-warm")
    cmd = [sys.executable, str(ROOT / "cli.py"), "embed", "--store", str(work / "text-cold"),
           "--manifest", str(manifest), "--modalities", "text", "--quiet"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {"transcripts": r.n_embedded, "distinct_texts": n, "windows": r.n_windows,
            "warm_texts_per_s": round(n / r.wall_s, 1), "cold_texts_per_s": round(n / wall, 1),
            "text_stage_texts_per_s": round(n / max(r.stage_s.get("text", 0.0), 1e-9), 1)}


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def warm(manifest: Path, warmup: Path, work: Path, encoders: dict[str, str],
         sequential: bool = False) -> dict:
    """Stage seconds of an ``Embedder`` built as ``cli.py embed`` builds it (the speaker stage
    included), models loaded first by embedding ``warmup`` into a throwaway store. With
    ``sequential``, the same models run again with ``workers=1`` (every stage in turn), for
    the overlap's own ratio (``sequential_s_per_min``)."""
    from featurestore.embed import Embedder, build_embedder
    from featurestore.manifest import read_manifest
    from featurestore.store import FeatureStore
    from featurestore import whisper_states

    m = read_manifest(manifest)
    embedder, _ = build_embedder(FeatureStore(work / "warmup-store"), read_manifest(warmup),
                                 encoder_names=encoders, progress=False, speaker_encoder=speaker_stage())
    embedder.log = lambda msg: None
    embedder.run(read_manifest(warmup))

    def timed_run(workers: int, store: str):
        for p in whisper_states._PASSES.values():   # no states left over from another run
            p.clear()
        for enc in embedder.encoders.values():      # nor texts or frames remembered from one
            getattr(enc, "_cache", {}).clear()
        timed = Embedder(FeatureStore(work / store), embedder.encoders, embedder.transcriber,
                         chunk_size=embedder.chunk_size, progress=False, log=lambda msg: None,
                         text_unit=embedder.text_unit, workers=workers)
        r = timed.run(m)
        if r.failures:
            raise RuntimeError(f"warm embed failed: {r.failures[0]}")
        return r, timed

    r, timed = timed_run(embedder.workers, "store")
    minutes = r.media_s / 60.0
    out = {"s_per_min": r.wall_s / minutes, "media_s": r.media_s, "n_videos": r.n_embedded,
           "stages": {k: v / minutes for k, v in r.stage_s.items()}, "text_unit": timed.unit,
           "workers": embedder.workers}
    if sequential and embedder.workers > 1:
        r1, _ = timed_run(1, "store-sequential")
        out["sequential_s_per_min"] = r1.wall_s / minutes
    return out


def cold(manifest: Path, work: Path, encoders: dict[str, str], media_s: float) -> dict:
    """Wall seconds of ``cli.py embed`` as a subprocess on a fresh store."""
    cmd = [sys.executable, str(ROOT / "cli.py"), "embed", "--store", str(work / "cold-store"),
           "--manifest", str(manifest), "--quiet"]
    for modality, name in encoders.items():
        cmd += [f"--{modality}-encoder", name]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {"s_per_min": wall * 60.0 / media_s, "wall_s": wall}


def speaker_stage() -> str | None:
    """The speaker stage ``cli.py embed`` runs by default (``--speaker-encoder auto``)."""
    import importlib.util
    return "resemblyzer" if importlib.util.find_spec("resemblyzer") is not None else None


def measure(kind: str, manifest: Path, warmup: Path, work: Path, audio: str | None = None) -> dict:
    """Warm and cold figures of both configurations on one clip set (``audio``: another
    audio encoder in place of the default one)."""
    out: dict = {}
    configs = {**CONFIGS, "default": {"audio": audio} if audio else {}}
    for config, encoders in configs.items():
        w = warm(manifest, warmup, work / f"{kind}-{config}-warm", encoders, sequential=config == "default")
        c = cold(manifest, work / f"{kind}-{config}-cold", encoders, w["media_s"])
        out[config] = {"warm": w, "cold": c}
        print(f"{kind} {config}: warm {w['s_per_min']:.2f}, cold {c['s_per_min']:.2f} s per min "
              f"({w['n_videos']} clips, {w['media_s']:.0f} s)", flush=True)
    return out


def figures(results: dict) -> dict:
    """The flat figures :func:`main` returns: ``{kind: {warm/cold s_per_min, previous, ratio}}``."""
    out = {}
    for kind, r in results.items():
        d, p = r["default"], r["previous"]
        out[kind] = {
            "clips": d["warm"]["n_videos"], "media_s": round(d["warm"]["media_s"], 1),
            "warm_s_per_min": round(d["warm"]["s_per_min"], 2),
            "cold_s_per_min": round(d["cold"]["s_per_min"], 2),
            "previous_warm_s_per_min": round(p["warm"]["s_per_min"], 2),
            "previous_cold_s_per_min": round(p["cold"]["s_per_min"], 2),
            "warm_ratio": round(p["warm"]["s_per_min"] / d["warm"]["s_per_min"], 2),
            "cold_ratio": round(p["cold"]["s_per_min"] / d["cold"]["s_per_min"], 2),
            "stages": {k: round(v, 2) for k, v in d["warm"]["stages"].items()},
            "previous_stages": {k: round(v, 2) for k, v in p["warm"]["stages"].items()},
            "text_unit": d["warm"]["text_unit"],
            "workers": d["warm"]["workers"],
        }
        if "sequential_s_per_min" in d["warm"]:
            seq = d["warm"]["sequential_s_per_min"]
            out[kind]["sequential_warm_s_per_min"] = round(seq, 2)
            out[kind]["overlap_ratio"] = round(seq / d["warm"]["s_per_min"], 2)
    return out


def collect(quick: bool = False, reels: int | None = None, reel_seconds: float | None = None,
            short_clips: int | None = None, short_data: Path = SHORT_DATA,
            audio: str | None = None, transcripts: int | None = None) -> tuple[dict, str]:
    """Run both clip lengths and the text import (0: skip that part); returns (:func:`figures`
    and ``"text_import"``, the command that reproduces them). ``audio``: measure this audio
    encoder as the default."""
    reels = (1 if quick else 4) if reels is None else reels
    reel_seconds = reel_seconds or (30.0 if quick else 75.0)
    short_clips = (4 if quick else 24) if short_clips is None else short_clips
    transcripts = (10 if quick else 120) if transcripts is None else transcripts
    cmd = ("python -m bench.embed_speed --quick" if quick else
           f"python -m bench.embed_speed --reels {reels} --reel-seconds {reel_seconds:g} "
           f"--short-clips {short_clips} --transcripts {transcripts}") + \
        (f" --audio-encoder {audio}" if audio else "")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        warmup = make_reels(work / "warmup", 1, 3.0)
        results = {}
        if reels:
            results["reel"] = measure("reel", make_reels(work / "reels", reels, reel_seconds),
                                      warmup, work, audio)
        if short_clips:
            results["short"] = measure("short", short_manifest(work / "short", short_clips, short_data),
                                       warmup, work, audio)
        figs = figures(results)
        if transcripts:
            figs["text_import"] = text_import(transcript_manifest(work / "texts", transcripts), work)
            t = figs["text_import"]
            print(f"text import: {t['distinct_texts']} distinct window texts of {t['transcripts']} "
                  f"transcripts: warm {t['warm_texts_per_s']}, cold {t['cold_texts_per_s']} per s", flush=True)
    return figs, cmd


def rows_of(figs: dict, cmd: str) -> list[dict]:
    """``bench`` protocol rows of :func:`figures`."""
    rows = []
    t = figs.get("text_import")
    if t:
        for when in ("warm", "cold"):
            rows.append({"figure": f"text import, {when} ({t['transcripts']} transcripts, "
                                   f"{t['distinct_texts']} distinct window texts)",
                         "value": t[f"{when}_texts_per_s"], "unit": "distinct window texts per s",
                         "baseline": None, "ratio": None, "command": cmd})
    for kind, f in figs.items():
        if kind == "text_import":
            continue
        what = f"{f['clips']} {kind} clips, {f['media_s']:.0f} s of media"
        for when in ("warm", "cold"):
            rows.append({"figure": f"embed, default encoders, {when} ({what})",
                         "value": f[f"{when}_s_per_min"], "unit": "s per min of video",
                         "baseline": f[f"previous_{when}_s_per_min"], "ratio": f[f"{when}_ratio"],
                         "command": cmd})
        if "sequential_warm_s_per_min" in f:
            rows.append({"figure": f"embed, default encoders, warm, {f['workers']} workers against every "
                                   f"stage in turn ({what})", "value": f["warm_s_per_min"],
                         "unit": "s per min of video", "baseline": f["sequential_warm_s_per_min"],
                         "ratio": f["overlap_ratio"], "command": cmd})
        for stage, v in f["stages"].items():
            rows.append({"figure": f"embed stage {stage}, warm ({kind})", "value": v,
                         "unit": "s per min of video", "baseline": f["previous_stages"][stage],
                         "ratio": round(f["previous_stages"][stage] / v, 2) if v else None,
                         "command": cmd})
    return rows


def run(quick: bool = False) -> list[dict]:
    """The ``bench`` protocol: figure rows (see the module docstring)."""
    figs, cmd = collect(quick)
    return rows_of(figs, cmd)


def print_table(figs: dict) -> None:
    """The warm per-stage table and the cold figures, per clip length."""
    for kind, f in figs.items():
        if kind == "text_import":
            print(f"\ntext import: {f['transcripts']} transcripts, {f['windows']} windows, "
                  f"{f['distinct_texts']} distinct texts: warm {f['warm_texts_per_s']} per s "
                  f"(the text stage alone {f['text_stage_texts_per_s']}), cold {f['cold_texts_per_s']} per s")
            continue
        print(f"\n{kind}: {f['clips']} clips, {f['media_s']:.0f} s of media, {f['text_unit']} windows; "
              f"s per min of video (previous defaults: audio {PREVIOUS_AUDIO})")
        print(f"{'':<14}{'default':>10}{'previous':>10}{'ratio':>8}")
        for stage, v in f["stages"].items():
            prev = f["previous_stages"][stage]
            ratio = f"{prev / v:.2f}" if v else ""
            print(f"  {stage:<12}{v:>10.2f}{prev:>10.2f}{ratio:>8}")
        for when in ("warm", "cold"):
            print(f"{when + ' total':<14}{f[when + '_s_per_min']:>10.2f}"
                  f"{f['previous_' + when + '_s_per_min']:>10.2f}{f[when + '_ratio']:>8.2f}")
        if "sequential_warm_s_per_min" in f:
            print(f"default encoders, warm: {f['workers']} workers {f['warm_s_per_min']:.2f}, every stage "
                  f"in turn (--workers 1) {f['sequential_warm_s_per_min']:.2f} s per min: the overlap "
                  f"is {f['overlap_ratio']:.2f}x")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one 30 s reel and 4 short clips (smoke run)")
    p.add_argument("--reels", "--clips", type=int, help="reel-length clips (default 4)")
    p.add_argument("--reel-seconds", "--seconds", type=float, help="their length (default 75)")
    p.add_argument("--short-clips", type=int, help="javanese-av clips (default 24)")
    p.add_argument("--short-data", type=Path, default=SHORT_DATA)
    p.add_argument("--transcripts", type=int, help="reels-transcripts for the text import (default 120)")
    p.add_argument("--audio-encoder", help="measure this audio encoder in place of the default "
                   "(e.g. descriptors-whisper-fit)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args(argv)
    figs, cmd = collect(a.quick, a.reels, a.reel_seconds, a.short_clips, a.short_data, a.audio_encoder,
                        a.transcripts)
    print_table(figs)
    print(f"\ncommand: {cmd}")
    if a.json:
        a.json.write_text(json.dumps(figs, indent=1))
    return figs


if __name__ == "__main__":
    main()
