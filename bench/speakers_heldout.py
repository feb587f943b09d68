"""Held-out speakers through the CLI: test videos embedded without a ``group`` column.

Data: the javanese-speech store of ``bench.speakers`` (``--takes 2``: 288 clips; ``--takes 0``:
all 1008), copied once per split. Two actors at a time become the ``test`` split with no
group (by default each of the three disjoint pairs 1-2, 3-4, 5-6 in turn); the other four
train with their groups. One model per split (``tune-fusion --folds 4``, pooled logistic
regression, per-speaker normalisation 'auto'), then ``predict --split test`` three times, the
model unchanged, the test videos' statistics pools changed: their inferred speaker groups
(what ``embed`` draws), one pool of all test videos (no speaker groups, the behaviour before
them: ``DELETE FROM speaker_groups``), and their manifest groups (a manifest with the test
groups). Macro-F1 on the test clips (their labels are in the store; tune-fusion never reads
the test split); mean and range over the splits.

    .venv/bin/python -m bench.speakers --corpus speech [--takes 2]   # the store, once
    .venv/bin/python -m bench.speakers_heldout [--takes 2] [--pairs 1-2,3-4,5-6]
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
SHARED = ROOT.parent / "shared" / "data" / "javanese-speech"
#: The test actors of each split: the three disjoint pairs.
PAIRS = "1-2,3-4,5-6"


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


def one_split(source: Path, full: pd.DataFrame, actors: tuple[str, ...], work: Path, trials: int,
              remove_emotion: bool = False) -> dict:
    """Inferred / one pool / manifest test macro-F1 with ``actors`` held out without groups
    (``remove_emotion``: the voices clustered with ``embed --speaker-remove-emotion``)."""
    store = work / "heldout-store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(source.resolve(), store)
    test = full["group"].isin(actors)
    withheld = full.assign(split=["test" if t else "train" for t in test], group=full["group"].where(~test))
    withheld.to_csv(work / "heldout.csv", index=False)
    withheld.assign(group=full["group"]).to_csv(work / "heldout-grouped.csv", index=False)
    embed = ("embed", "--store", str(store), "--modalities", "audio", "--audio-encoder", "librosa-descriptors",
             "--quiet", *(("--speaker-remove-emotion",) if remove_emotion else ()), "--manifest")
    out = {"test_actors": list(actors),
           "speaker_groups_line": cli(*embed, str(work / "heldout.csv")).strip().splitlines()[-2]}
    tune = cli("tune-fusion", "--store", str(store), "--trials", str(trials), "--folds", "4", "--families",
               "pooled-logreg", "--estimate", "off", "--confirm-top", "0", "--quiet")
    out["cv_groups_line"] = next(line for line in tune.splitlines() if line.startswith("CV groups"))
    cli("predict", "--store", str(store), "--split", "test")
    out["inferred"] = test_f1(store)
    cli("sql", "--store", str(store), "--write", "DELETE FROM speaker_groups")
    cli("predict", "--store", str(store), "--split", "test")
    out["one_pool"] = test_f1(store)
    cli(*embed, str(work / "heldout-grouped.csv"))
    cli("predict", "--store", str(store), "--split", "test")
    out["manifest"] = test_f1(store)
    print(json.dumps(out, indent=1), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-speakers"))
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--takes", type=int, default=2, help="the bench.speakers store: --takes N (0: all clips)")
    ap.add_argument("--pairs", default=PAIRS, help="test actors of each split, e.g. 1-2,3-4,5-6")
    ap.add_argument("--remove-emotion", action="store_true",
                    help="cluster the voices with embed --speaker-remove-emotion")
    args = ap.parse_args(argv)
    tag = f"-takes{args.takes}" if args.takes else ""
    source = args.work / f"javanese-speech{tag}-store"
    manifest = args.work / f"javanese-speech{tag}.csv" if args.takes else SHARED / "labels.csv"
    if not source.exists() or not manifest.exists():
        raise SystemExit(f"run `python -m bench.speakers --corpus speech --takes {args.takes}` first ({source})")
    full = pd.read_csv(manifest)
    full["video"] = [str((manifest.parent / v).resolve()) for v in full["video"]]
    splits = [tuple(f"actor_{int(a):02d}" for a in pair.split("-")) for pair in args.pairs.split(",")]
    runs = [one_split(source, full, actors, args.work, args.trials, args.remove_emotion) for actors in splits]
    out = {"takes": args.takes or "all", "remove_emotion": args.remove_emotion, "splits": runs}
    for key in ("inferred", "one_pool", "manifest"):
        v = [r[key] for r in runs]
        out[key] = {"mean": sum(v) / len(v), "min": min(v), "max": max(v)}
    print(json.dumps({k: out[k] for k in ("inferred", "one_pool", "manifest")}, indent=1))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"speakers_heldout{tag}{'_emotion' if args.remove_emotion else ''}.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
