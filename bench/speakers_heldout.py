"""Held-out speakers through the CLI: test videos embedded without a ``group`` column.

Data: the javanese-speech store of ``bench.speakers --takes 2`` (288 clips, actors 1-6), copied.
Actors 5 and 6 become the ``test`` split with no group; actors 1-4 train with their groups.
One model (``tune-fusion --folds 4``, pooled logistic regression, per-speaker normalisation
'auto'), then ``predict --split test`` three times, the model unchanged, the test videos'
statistics pools changed: their inferred speaker groups (what ``embed`` draws), one pool of
all test videos (no speaker groups: ``DELETE FROM speaker_groups``), and their manifest groups
(a manifest with the test groups). Macro-F1 on the 96 test clips (their labels are in the
store; tune-fusion never reads the test split). One split, so no spread.

    .venv/bin/python -m bench.speakers --corpus speech --takes 2   # the store, once
    .venv/bin/python -m bench.speakers_heldout
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
TEST_ACTORS = ("actor_05", "actor_06")


def cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"cli.py {' '.join(args)}: {proc.stderr[-2000:]}")
    return proc.stdout


def test_f1(store_path: Path) -> float:
    from sklearn.metrics import f1_score
    from featurestore.store import FeatureStore
    st = FeatureStore(store_path, create=False)
    row = st.query("SELECT m.model_id, m.method FROM models m JOIN model_recency r USING (model_id) "
                   "WHERE r.recency = 1").to_pylist()[0]
    df = st.query("SELECT p.emotion, v.label FROM video_predictions p JOIN videos v USING (video_id) "
                  f"WHERE v.split = 'test' AND p.model_id = '{row['model_id']}' AND p.method = '{row['method']}'"
                  ).to_pandas()
    return float(f1_score(df["label"], df["emotion"], average="macro"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-speakers"))
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args(argv)
    source = args.work / "javanese-speech-takes2-store"
    manifest = args.work / "javanese-speech-takes2.csv"
    if not source.exists() or not manifest.exists():
        raise SystemExit(f"run `python -m bench.speakers --corpus speech --takes 2` first ({source})")
    store = args.work / "heldout-store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(source.resolve(), store)
    full = pd.read_csv(manifest)
    test = full["group"].isin(TEST_ACTORS)
    withheld = full.assign(split=["test" if t else "train" for t in test], group=full["group"].where(~test))
    withheld.to_csv(args.work / "heldout.csv", index=False)
    withheld.assign(group=full["group"]).to_csv(args.work / "heldout-grouped.csv", index=False)
    embed = ("embed", "--store", str(store), "--modalities", "audio", "--audio-encoder", "librosa-descriptors",
             "--quiet", "--manifest")
    out = {"speaker_groups_line": cli(*embed, str(args.work / "heldout.csv")).strip().splitlines()[-2]}
    tune = cli("tune-fusion", "--store", str(store), "--trials", str(args.trials), "--folds", "4", "--families",
               "pooled-logreg", "--estimate", "off", "--confirm-top", "0", "--quiet")
    out["cv_groups_line"] = next(line for line in tune.splitlines() if line.startswith("CV groups"))
    cli("predict", "--store", str(store), "--split", "test")
    out["inferred"] = test_f1(store)
    cli("sql", "--store", str(store), "--write", "DELETE FROM speaker_groups")
    cli("predict", "--store", str(store), "--split", "test")
    out["one_pool"] = test_f1(store)
    cli(*embed, str(args.work / "heldout-grouped.csv"))
    cli("predict", "--store", str(store), "--split", "test")
    out["manifest"] = test_f1(store)
    print(json.dumps(out, indent=1))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speakers_heldout.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
