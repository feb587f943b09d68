"""Measure the transcript rules of ``featurestore.duplicates`` on the competition transcripts.

``python scripts/measure_transcript_duplicates.py [labels.csv] [--threshold 0.5]`` loads each
reel's ``window_idx<TAB>text`` file as windows, concatenates them with the store's own query
(the ``video_evidence`` query of ``sql/queries.sql``), and prints: the distribution of every reel's best-match Jaccard,
how many reels each rule merges at the threshold, and the pairs just below and above it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from featurestore import duplicates as dup


def load_windows(labels_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(videos(video_id, label), windows(video_id, window_idx, transcript)) of the reels."""
    labels = pd.read_csv(labels_csv)
    rows = []
    for r in labels.itertuples():
        for line in (labels_csv.parent / r.transcript).read_text(encoding="utf-8").splitlines():
            idx, _, text = line.partition("\t")
            if idx.strip():
                rows.append((str(r.id), int(idx), text))
    videos = pd.DataFrame({"video_id": labels["id"].astype(str), "label": labels["emotion"]})
    return videos, pd.DataFrame(rows, columns=["video_id", "window_idx", "transcript"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", nargs="?", default="/work/shared/data/reels-transcripts/labels.csv")
    ap.add_argument("--threshold", type=float, default=dup.TRANSCRIPT_JACCARD)
    ap.add_argument("--show", type=int, default=6, help="pairs to print on each side of the threshold")
    args = ap.parse_args()
    videos, windows = load_windows(Path(args.labels))
    con = duckdb.connect()
    con.register("videos", videos)
    con.register("windows", windows)
    ev = dup.video_evidence(con, videos["video_id"])
    ids = ev["video_id"].tolist()
    texts = [dup.normalise_transcript(t) for t in ev["transcript"]]
    print(f"{len(ids)} reels, {sum(t is not None for t in texts)} with speech, "
          f"{sum(t is not None and len(t) < dup.MIN_NEAR_CHARS for t in texts)} shorter than "
          f"{dup.MIN_NEAR_CHARS} chars")

    # Every reel's best match, from all pairs sharing a shingle (threshold just above 0).
    B = dup.shingle_matrix([t or "" for t in texts])
    eligible = np.array([t is not None and len(t) >= dup.MIN_NEAR_CHARS for t in texts]) \
        & (np.diff(B.indptr) >= dup.MIN_NEAR_SHINGLES)
    i, j, s = dup.near_transcript_pairs(B, eligible, 1e-9)
    best = np.zeros(len(ids))
    np.maximum.at(best, i, s)
    np.maximum.at(best, j, s)
    qs = [0.5, 0.9, 0.95, 0.98, 0.99, 1.0]
    print("best-match Jaccard per reel: " + ", ".join(f"q{q:g} {np.quantile(best[eligible], q):.3f}" for q in qs))
    edges = [0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.01]
    hist, _ = np.histogram(best[eligible], bins=edges)
    print("histogram: " + ", ".join(f"[{lo:g},{hi:g}): {h}" for lo, hi, h in zip(edges, edges[1:], hist)))
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        p = dup.duplicate_pairs(ids, ev["transcript"].tolist(), transcript_jaccard=t)
        _, merged = dup.leakage_groups(ids, p)
        print(f"  at {t:.1f}: {int(p.near_transcript.sum())} near pairs; merged by transcript "
              f"{merged['transcript']}, near transcript {merged['near_transcript']}")

    pairs = dup.duplicate_pairs(ids, ev["transcript"].tolist(), transcript_jaccard=args.threshold)
    codes, merged = dup.leakage_groups(ids, pairs)
    print(f"\nat {args.threshold}: {len(ids)} reels -> {codes.max() + 1} groups; merged {merged}")
    label = dict(zip(videos.video_id, videos.label))
    text = dict(zip(ids, texts))
    order = np.argsort(-s)
    below = [k for k in order if s[k] < args.threshold][:args.show]
    above = [k for k in order if args.threshold <= s[k] < 1][::-1][:args.show]
    for title, ks in (("just above", above), ("just below", below)):
        print(f"\npairs {title} the threshold:")
        for k in ks:
            a, b = ids[i[k]], ids[j[k]]
            print(f"  {s[k]:.3f} {a} ({label[a]}) ~ {b} ({label[b]})\n    A: {text[a][:150]}\n    B: {text[b][:150]}")


if __name__ == "__main__":
    main()
