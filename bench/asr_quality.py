"""ASR text and Whisper audio vectors of a code version, dumped, then compared with another's.

For a change to the Whisper stages (``featurestore/asr.py``, ``featurestore/whisper_states.py``,
the Whisper audio encoders) this checks that text and vectors do not get worse: run ``dump``
once with the old tree on ``PYTHONPATH`` and once with the new one, then ``compare``:

    PYTHONPATH=/path/to/old .venv/bin/python -m bench.asr_quality dump --out old.npz CLIPS...
    PYTHONPATH=$PWD        .venv/bin/python -m bench.asr_quality dump --out new.npz CLIPS...
    .venv/bin/python -m bench.asr_quality compare old.npz new.npz [--reference texts.json]

``CLIPS`` are manifest CSVs (``video`` column, relative to the CSV). ``dump`` stores, per clip,
the recognised text (packaged Whisper base, ``language="id"``, word timings on, as a fresh
``embed`` runs it) and the ``descriptors-whisper`` rows of its 1.0 s / 0.5 s windows.
``compare`` prints the share of clips with the very same text, the word error rate of the new
text against the old, and, where ``--reference`` gives the spoken text (``{video path:
text}``, e.g. the demo's ``demo.json`` or ``bench.embed_speed``'s ``texts.json``), both
versions' WER against it; and the largest absolute difference between the audio rows.
Only APIs both versions have are used (``Transcriber.transcribe_many``, ``encode_video``).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np


def clips_of(manifests: list[str], limit: int | None = None) -> list[str]:
    """Absolute media paths of the manifests' ``video`` column, in order."""
    import pandas as pd

    out = []
    for m in manifests:
        df = pd.read_csv(m)
        out += [str((Path(m).parent / v).resolve()) for v in df["video"]]
    return out[:limit] if limit else out


def dump(paths: list[str], out: Path, batch: int = 8) -> None:
    """Text and ``descriptors-whisper`` rows of every clip into ``out`` (npz)."""
    from featurestore.asr import Transcriber
    from featurestore.encoders.registry import get_encoder
    from featurestore.media import decode_video

    tr = Transcriber(word_timestamps=True).load()
    enc = get_encoder("descriptors-whisper")
    texts, rows, asr_s, audio_s, media_s = [], {}, 0.0, 0.0, 0.0
    for i in range(0, len(paths), batch):
        media = [decode_video(p, video=False) for p in paths[i:i + batch]]
        media_s += sum(m.duration_s for m in media)
        t = time.perf_counter()
        segs = tr.transcribe_many([m.audio for m in media])
        asr_s += time.perf_counter() - t
        texts += [" ".join(s.text.strip() for s in ss) for ss in segs]
        t = time.perf_counter()
        for p, m in zip(paths[i:i + batch], media):
            rows[p] = enc.encode_video(m.audio, m.windows)[0]
        audio_s += time.perf_counter() - t
    np.savez_compressed(out, paths=np.array(paths), texts=np.array(texts, dtype=object),
                        **{f"X{k}": rows[p] for k, p in enumerate(paths)},
                        timing=np.array([asr_s, audio_s, media_s]))
    print(f"{len(paths)} clips, {media_s:.0f} s of media: ASR {asr_s:.1f} s, audio {audio_s:.1f} s -> {out}")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def compare(old: Path, new: Path, reference: dict | None = None) -> dict:
    """Figures of ``new`` against ``old`` (and the spoken text); printed and returned."""
    import jiwer

    a = np.load(old, allow_pickle=True)
    b = np.load(new, allow_pickle=True)
    paths = list(a["paths"])
    if list(b["paths"]) != paths:
        raise ValueError(f"{old} and {new} hold different clips")
    ta, tb = [_norm(t) for t in a["texts"]], [_norm(t) for t in b["texts"]]
    both = [(x, y) for x, y in zip(ta, tb) if x or y]
    out = {"clips": len(paths), "same_text": float(np.mean([x == y for x, y in zip(ta, tb)])),
           "wer_new_vs_old": jiwer.wer([x or "-" for x, _ in both], [y or "-" for _, y in both]) if both else 0.0}
    if reference:
        ref = reference
        keep = [k for k, p in enumerate(paths) if _match(ref, p)]
        refs = [_norm(_match(ref, paths[k])) for k in keep]
        out["wer_old"] = jiwer.wer(refs, [ta[k] or "-" for k in keep])
        out["wer_new"] = jiwer.wer(refs, [tb[k] or "-" for k in keep])
        out["reference_clips"] = len(keep)
    diffs = [np.nanmax(np.abs(a[f"X{k}"] - b[f"X{k}"])) if np.isfinite(a[f"X{k}"]).any() else 0.0
             for k in range(len(paths))]
    same_nan = all(np.array_equal(np.isnan(a[f"X{k}"]), np.isnan(b[f"X{k}"])) for k in range(len(paths)))
    out["audio_max_abs_diff"] = float(max(diffs))
    out["audio_same_missing_rows"] = bool(same_nan)
    ta_s, tb_s = a["timing"], b["timing"]
    out["asr_s_per_min_old"] = round(ta_s[0] * 60 / ta_s[2], 2)
    out["asr_s_per_min_new"] = round(tb_s[0] * 60 / tb_s[2], 2)
    out["audio_s_per_min_old"] = round(ta_s[1] * 60 / ta_s[2], 2)
    out["audio_s_per_min_new"] = round(tb_s[1] * 60 / tb_s[2], 2)
    print(json.dumps(out, indent=1))
    return out


def _match(ref: dict, path: str) -> str | None:
    """The reference text of ``path``: by absolute path or by file name."""
    return ref.get(path) or ref.get(Path(path).name)


def demo_reference(demo_json: Path) -> dict:
    """``{file name: spoken text}`` of a demo corpus' ``demo.json``."""
    clips = json.loads(Path(demo_json).read_text())["clips"]
    return {Path(c["video"]).name: c["text"] for c in clips}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    d = sub.add_parser("dump")
    d.add_argument("manifests", nargs="+")
    d.add_argument("--out", required=True, type=Path)
    d.add_argument("--limit", type=int)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    c.add_argument("--reference", type=Path, help="{video: spoken text} JSON, or a demo.json")
    a = p.parse_args(argv)
    if a.cmd is None:  # `python -m bench` runs every main with no arguments: nothing to compare
        p.print_help()
        return
    if a.cmd == "dump":
        dump(clips_of(a.manifests, a.limit), a.out)
    else:
        ref = json.loads(a.reference.read_text()) if a.reference else None
        if ref is not None and "clips" in ref:
            ref = demo_reference(a.reference)
        compare(a.old, a.new, ref)


if __name__ == "__main__":
    main()
