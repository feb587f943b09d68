"""Fit the PCA that ``whisper-stats`` ships (``featurestore/encoders/whisper_base_stats_pca.npz``).

    .venv/bin/python scripts/fit_whisper_pca.py [--clips 400] [--transcripts ../shared/data/reels-transcripts]

Corpus: espeak-ng Indonesian speech of sentences from the public competition transcripts
(text only; their labels are never read), each clip in a random voice variant, pitch, rate
and loudness, so the components span speakers and prosody rather than one voice. Without
the transcripts it falls back to the demo corpus's sentences. No corpus any figure is
measured on (Java-SED, the reels' audio) is used, so the reduction cannot leak into a score.

Each clip is cut into the store's 1.0 s / 0.5 s windows, encoded by ``whisper-stats-1024``
(the 1024 mean+std statistics, in context, as ``embed`` does), z-scored per statistic and
reduced by scikit-learn's PCA to 128 components. Same seed, same file.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurestore.encoders.audio import WHISPER_PCA_FILE, WhisperStats  # noqa: E402
from featurestore.media import window_grid  # noqa: E402
from featurestore.schema import SAMPLE_RATE  # noqa: E402
from reels_demo import corpus as demo  # noqa: E402

VARIANTS = ["", "+f1", "+f2", "+f3", "+f4", "+f5", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7",
            "+klatt", "+klatt2", "+klatt3", "+croak", "+whisper"]


def sentences(transcripts: Path | None) -> list[str]:
    """Distinct sentences of 4-25 words from the window transcripts, else the demo's."""
    found: dict[str, None] = {}
    if transcripts is not None and (transcripts / "transcripts").is_dir():
        for path in sorted((transcripts / "transcripts").glob("*.txt")):
            for line in path.read_text(encoding="utf-8").splitlines():
                text = line.partition("\t")[2]
                for s in re.split(r"(?<=[.!?])\s+", text):
                    if 4 <= len(s.split()) <= 25:
                        found[s.strip()] = None
    if not found:
        found = {s: None for group in demo.EMOTION_SENTENCES.values() for s in group}
    return list(found)


def clip(rng: np.random.Generator, pool: list[str]) -> np.ndarray:
    """One synthetic clip (16 kHz float32) of 1-3 sentences in a random voice."""
    text = " ".join(rng.choice(pool, size=int(rng.integers(1, 4)), replace=False))
    y, rate = demo.speak(text, voice="id" + str(rng.choice(VARIANTS)), pitch=int(rng.integers(15, 90)),
                         speed=int(rng.integers(110, 200)), amplitude=int(rng.integers(50, 160)))
    return resample_poly(y, SAMPLE_RATE, rate).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--components", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transcripts", type=Path, default=ROOT.parent / "shared" / "data" / "reels-transcripts")
    ap.add_argument("--out", type=Path, default=ROOT / "featurestore" / "encoders" / WHISPER_PCA_FILE)
    args = ap.parse_args(argv)
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(args.seed)
    pool = sentences(args.transcripts)
    enc = WhisperStats(reduction="none", device="cpu")
    rows, seconds = [], 0.0
    for _ in tqdm(range(args.clips), desc="synthesise + encode", unit="clip"):
        y = clip(rng, pool)
        seconds += len(y) / SAMPLE_RATE
        X, reasons = enc.encode_video(y, window_grid(len(y) / SAMPLE_RATE))
        rows.append(X[[r is None for r in reasons]])
    X = np.concatenate(rows).astype(np.float64)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    pca = PCA(n_components=args.components, svd_solver="full", random_state=args.seed).fit((X - mean) / scale)
    about = {"clips": args.clips, "windows": len(X), "seconds": round(seconds, 1), "sentences": len(pool),
             "seed": args.seed, "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4),
             "source": "espeak-ng Indonesian speech of the public reel transcripts' sentences"}
    np.savez_compressed(args.out, mean=mean.astype(np.float32), scale=scale.astype(np.float32),
                        components=pca.components_.T.astype(np.float32), about=json.dumps(about))
    print(json.dumps(about, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
