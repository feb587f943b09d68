"""End to end on the real public transcripts, text only, scored on held-out reels.

Splits ../shared/data/reels-transcripts (498 labelled reels) into a training
manifest and a held-out test manifest (stratified, grouped by the project's one
definition of duplicate videos, ``featurestore.duplicates`` -- identical or
near-identical transcripts, the same transcript file -- so duplicates never
straddle the split), then runs the same commands a user
would: ``embed`` (text from the existing transcripts), ``tune-fusion``,
``predict``, ``export-submission``; the submission is scored against the
held-out labels, which the store never saw (the test manifest has no emotion), with
the project's one macro-F1 (``fusion.metrics.macro_f1`` over the classes of the
training manifest's labels).

    .venv/bin/python -m bench.real_transcripts [--trials 30] [--test-size 0.2]
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report
from sklearn.model_selection import StratifiedGroupKFold

from bench.text_encoders import leakage_groups, read_windows
from featurestore.schema import CLASSES
from featurestore.sqlfiles import read_sql
from fusion.aggregate import macro_f1
from fusion.space import SEARCH_SPACE_VERSION

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "reels-transcripts"


def split_manifests(data: Path, out: Path, test_size: float, seed: int) -> tuple[Path, Path, Path]:
    """Write train.csv, test.csv (no emotion) and test_labels.csv under ``out``.

    Grouped by ``bench.text_encoders.leakage_groups`` (``featurestore.duplicates`` on the
    transcripts and transcript files, the evidence a store has before anything is embedded).
    """
    df = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False)
    files = [data / t for t in df.transcript]
    groups, _ = leakage_groups(df.id.tolist(), [read_windows(f) for f in files], files)
    n_splits = round(1 / test_size)
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, test_idx = next(sgkf.split(df, df.emotion, groups=groups))
    is_test = np.zeros(len(df), bool)
    is_test[test_idx] = True
    out.mkdir(parents=True, exist_ok=True)
    df = df.assign(transcript=[str((data / t).resolve()) for t in df.transcript])
    df[~is_test].to_csv(out / "train.csv", index=False, quoting=csv.QUOTE_MINIMAL)
    df[is_test].assign(emotion="").to_csv(out / "test.csv", index=False)
    df[is_test][["id", "emotion"]].to_csv(out / "test_labels.csv", index=False)
    return out / "train.csv", out / "test.csv", out / "test_labels.csv"


def held_out_macro_f1(y_true, y_pred, train_labels) -> float:
    """``fusion.metrics.macro_f1`` of class names ``y_pred`` against ``y_true`` over the classes
    of ``train_labels`` (the training manifest's emotions); a missing or unknown prediction
    counts as an error."""
    code = {c: i for i, c in enumerate(CLASSES)}

    def idx(names) -> np.ndarray:
        return np.array([code.get(c, -1) for c in names], dtype=np.int64)

    trained = idx(train_labels)
    return macro_f1(idx(y_true), idx(y_pred), np.unique(trained[trained >= 0]))


def train_labels(manifest: Path) -> list[str]:
    """The emotions of a training manifest's rows."""
    return pd.read_csv(manifest, dtype=str, keep_default_na=False).emotion.tolist()


def cli(*args: str) -> float:
    t = time.perf_counter()
    cmd = [sys.executable, str(REPO / "cli.py"), *args]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.perf_counter() - t


def run(quick: bool = False, trials: int = 30, test_size: float = 0.2, seed: int = 0,
        out: Path | None = None) -> list[dict]:
    if not DATA.exists():
        print(f"skip: {DATA} not found", file=sys.stderr)
        return []
    out = out or REPO / "bench" / "out" / "real_transcripts"
    store = out / "store"
    train, test, labels = split_manifests(DATA, out, test_size, seed)
    trials = 6 if quick else trials
    times = {
        "embed train": cli("embed", "--store", str(store), "--manifest", str(train),
                           "--modalities", "text", "--quiet"),
        "embed test": cli("embed", "--store", str(store), "--manifest", str(test), "--split", "test",
                          "--modalities", "text", "--quiet"),
        "tune-fusion": cli("tune-fusion", "--store", str(store), "--trials", str(trials),
                           "--seed", str(seed), "--study", f"bench-{trials}-{seed}-space{SEARCH_SPACE_VERSION}",
                           "--quiet"),
    }
    # The model this run tuned, not the best of every run the store has seen: an
    # earlier seed's model was trained on videos that are test videos now.
    from featurestore.store import FeatureStore
    model_id = FeatureStore(store).query(
        read_sql("queries", "newest_model")).column(0)[0].as_py()
    times["predict"] = cli("predict", "--store", str(store), "--split", "test", "--model", model_id)
    times["export"] = cli("export-submission", "--store", str(store), "--split", "test",
                          "--model", model_id, "--out", str(out / "submission.csv"))
    sub = pd.read_csv(out / "submission.csv", dtype=str)
    truth = pd.read_csv(labels, dtype=str)
    merged = truth.merge(sub, on="id", suffixes=("_true", "_pred"))
    assert len(merged) == len(truth) == len(sub), "submission must have one row per test id"
    trained = train_labels(train)
    f1 = held_out_macro_f1(merged.emotion_true, merged.emotion_pred, trained)
    surprise = held_out_macro_f1(merged.emotion_true, ["Surprise"] * len(merged), trained)
    print(classification_report(merged.emotion_true, merged.emotion_pred, zero_division=0))
    total = sum(times.values())
    cmd = f"python -m bench.real_transcripts --trials {trials} --test-size {test_size} --seed {seed}"
    rows = [
        {"figure": "held-out video macro-F1 (real transcripts, text only)", "value": round(f1, 3),
         "unit": "F1", "baseline": round(surprise, 3), "ratio": round(f1 / surprise, 1) if surprise else None,
         "command": cmd},
        {"figure": f"tune-fusion wall time ({trials} trials, 2 cores)", "value": round(times["tune-fusion"], 1),
         "unit": "s", "baseline": None, "ratio": None, "command": cmd},
        {"figure": "end-to-end wall time (embed+tune+predict+export)", "value": round(total, 1),
         "unit": "s", "baseline": None, "ratio": None, "command": cmd},
    ]
    for k, v in times.items():
        print(f"{k:>12}: {v:7.1f} s")
    print(f"held-out macro-F1 {f1:.3f} on {len(merged)} test reels "
          f"(always-Surprise {surprise:.3f}); total {total:.0f} s")
    return rows


def split_args(doc: str, argv: list[str] | None = None,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> dict:
    """``run`` keyword arguments from a held-out-split benchmark's command line."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if extra is not None:
        extra(p)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    return vars(p.parse_args(argv))


def main(argv: list[str] | None = None) -> None:
    run(**split_args(__doc__, argv))


if __name__ == "__main__":
    main()
