"""Decode + Whisper base (faster-whisper, language=id) speed on a ~10 s espeak-ng clip.

Makes a talking-face .mp4 (tests/media_fixtures.py), decodes it once, loads the
packaged Whisper base and transcribes the clip ``--repeats`` times; prints load,
decode and transcribe seconds, the real-time factor and the recognised text.

Run:  .venv/bin/python bench/asr_speed.py [--device auto] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import media_fixtures as mf  # noqa: E402

from featurestore.asr import Transcriber, assign_words_to_windows  # noqa: E402
from featurestore.media import decode_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--text", default=mf.LONG_TEXT)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip = mf.make_talking_face_video(Path(tmp) / "clip.mp4", text=args.text)
        t = time.perf_counter()
        media = decode_video(clip)
        decode_s = time.perf_counter() - t

    t = time.perf_counter()
    tr = Transcriber(language="id", device=args.device).load()
    load_s = time.perf_counter() - t
    times, words = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        words = tr.transcribe(media.audio)
        times.append(time.perf_counter() - t)
    texts = assign_words_to_windows(words, media.windows)

    med = statistics.median(times)
    print(f"cpu_count={os.cpu_count()} device={tr.device} compute_type={tr.compute_type}")
    print(f"clip {media.duration_s:.2f} s, {len(media.windows)} windows, "
          f"{len(media.frame_times)} frames; decode {decode_s:.3f} s")
    print(f"load {load_s:.2f} s; transcribe median {med:.2f} s over {args.repeats} "
          f"(all: {', '.join(f'{x:.2f}' for x in times)}); real-time factor {med / media.duration_s:.3f}")
    print(f"spoken:     {args.text}")
    print(f"recognised: {' '.join(w.text for w in words)}")
    print(f"windows with text: {sum(x is not None for x in texts)}/{len(texts)}")


if __name__ == "__main__":
    main()
