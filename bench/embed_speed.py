"""Embed speed: seconds of wall time per minute of video, whole run and per stage.

Embeds the demo corpus (espeak-ng Indonesian speech over a real face, 3–5 s
clips) into a fresh store with the default encoders and Whisper base (int8,
faster-whisper) on this machine's CPU cores, and reports decode, ASR, audio,
video, text and write seconds per minute of media. The seed's published
figures are the baseline: librosa features at 11 windows/s (10.8 s per minute
of video at a 0.5 s hop, for the audio stage alone) and Whisper large at 21 s
per file on a GPU.

    .venv/bin/python -m bench.embed_speed [--clips-per-class 5] [--beam-size 1]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from featurestore.demo import build_demo_corpus
from featurestore.embed import STAGES, Embedder
from featurestore.encoders.registry import default_encoder, get_encoder
from featurestore.manifest import read_manifest
from featurestore.schema import HOP_S
from featurestore.store import FeatureStore

SEED_AUDIO_WINDOWS_PER_S = 11.0


def measure(n_per_class: int, beam_size: int, workdir: Path) -> dict:
    from featurestore.asr import Transcriber
    manifest = read_manifest(build_demo_corpus(workdir / "corpus", n_per_class=n_per_class,
                                               progress=False))
    store_dir = workdir / f"store-beam{beam_size}"
    shutil.rmtree(store_dir, ignore_errors=True)
    encoders = {m: get_encoder(default_encoder(m)) for m in ("audio", "video", "text")}
    transcriber = Transcriber(beam_size=beam_size).load()
    # Load every model first, so loading is not billed to the first chunk's stages.
    encoders["text"].encode(["halo semuanya"])
    encoders["audio"].encode([np.zeros(16000, np.float32)])
    encoders["video"].encode([np.zeros((4, 64, 64, 3), np.uint8)])
    report = Embedder(FeatureStore(store_dir), encoders, transcriber, progress=False,
                      log=lambda m: None).run(manifest)
    return {"report": report, "minutes": report.media_s / 60.0}


def run(quick: bool = False, n_per_class: int | None = None, beam_size: int | None = None) -> list[dict]:
    n_per_class = n_per_class or (2 if quick else 5)
    from featurestore.asr import Transcriber
    beam = beam_size or Transcriber().beam_size
    cmd = f"python -m bench.embed_speed --clips-per-class {n_per_class} --beam-size {beam}"
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(n_per_class, beam, Path(tmp))
    r, minutes = m["report"], m["minutes"]
    print(r.summary())
    per_min = {k: v / minutes for k, v in r.stage_s.items()}
    total = r.wall_s / minutes
    seed_audio = 60.0 / HOP_S / SEED_AUDIO_WINDOWS_PER_S
    rows = [{"figure": f"embed, all stages ({8 * n_per_class} demo clips, {r.media_s:.0f} s of media, beam {beam})",
             "value": round(total, 2), "unit": "s per min of video", "baseline": None, "ratio": None,
             "command": cmd}]
    for stage in STAGES:
        rows.append({"figure": f"embed stage: {stage}", "value": round(per_min[stage], 2),
                     "unit": "s per min of video",
                     "baseline": round(seed_audio, 1) if stage == "audio" else None,
                     "ratio": round(seed_audio / per_min[stage], 1) if stage == "audio" and per_min[stage] else None,
                     "command": cmd})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips-per-class", type=int, default=5)
    p.add_argument("--beam-size", type=int)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    for row in run(quick=a.quick, n_per_class=a.clips_per_class, beam_size=a.beam_size):
        print(f"{row['figure']:<70} {row['value']:>8} {row['unit']}")


if __name__ == "__main__":
    main()
