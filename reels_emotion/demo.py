"""The main job on a built-in demo: corpus -> embed -> tune -> predict -> submission.

``reels-emotion demo`` (``python -m reels_emotion demo``, ``make demo``) runs it; it lives
beside the command line rather than in :mod:`fusion` because it makes media, which the
libraries never do. The corpus (``reels_demo.corpus``) is made on the
fly: Indonesian speech from espeak-ng with sentences and prosody per emotion,
over frames of a real face. Every step reuses what a previous run finished:
clips are not re-rendered, embedded videos are skipped, and a finished study
is not re-run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from featurestore.embed import embed_manifest
from featurestore.export import export_submission
from featurestore.manifest import read_manifest
from featurestore.schema import CLASSES
from featurestore.store import FeatureStore
from fusion.metrics import macro_f1
from fusion.predict import expected_score_note, predict_store
from fusion.space import SEARCH_SPACE_VERSION
from fusion.tune import tune_fusion
from reels_demo.corpus import build_demo_corpus


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def held_out_macro_f1(y_true, y_pred, manifest) -> float:
    """``fusion.metrics.macro_f1`` of the predicted class names ``y_pred`` over the classes of
    the demo's training labels (the manifest's labelled train rows); a missing or unknown
    prediction counts as an error."""
    code = {c: i for i, c in enumerate(CLASSES)}
    videos = manifest.videos
    trained = videos.loc[videos["split"] == "train", "label"].map(code).dropna().astype(int)
    labels = np.unique(trained.to_numpy())
    return macro_f1(np.array([code.get(c, -1) for c in y_true]),
                    np.array([code.get(c, -1) for c in y_pred]), labels)


def run_demo(out: Path, quick: bool = False, n_trials: int | None = None, seed: int = 0) -> int:
    """Run the whole job on the demo corpus under ``out``; returns an exit status.

    ``quick`` makes fewer clips and trials (for smoke tests); the default fits in
    a few minutes on 2 CPU cores.
    """
    out = Path(out).resolve()
    t0 = time.perf_counter()
    n_per_class = 3 if quick else 5
    n_trials = n_trials or (4 if quick else 16)

    t = _step(f"1/5 demo corpus: {8 * n_per_class} clips in {out / 'corpus'}")
    manifest_path = build_demo_corpus(out / "corpus", n_per_class=n_per_class, seed=seed)
    manifest = read_manifest(manifest_path)
    print(manifest.summary())
    times = {"corpus": time.perf_counter() - t}

    t = _step("2/5 embed: decode, windows, Whisper ASR, audio/face/text encoders")
    store = FeatureStore(out / "store")
    report = embed_manifest(store, manifest)
    print(report.summary())
    times["embed"] = time.perf_counter() - t

    t = _step(f"3/5 tune-fusion: {n_trials} Optuna trials, video-grouped CV")
    # The search-space version in the name: an upgraded project starts a fresh study instead
    # of refusing the old one's settings.
    result = tune_fusion(store, n_trials=n_trials, seed=seed,
                         study_name=f"demo-v{SEARCH_SPACE_VERSION}-{n_trials}-{seed}",
                         n_folds=3)
    print(result.summary())
    times["tune"] = time.perf_counter() - t

    t = _step("4/5 predict the held-out test videos")
    model_id = predict_store(store, split="test", model_id=result.model_id)
    times["predict"] = time.perf_counter() - t

    t = _step("5/5 export the submission through SQL COPY")
    sub_path = out / "submission.csv"
    export = export_submission(store, split="test", out_csv=sub_path, model_id=model_id)
    print(export.summary())
    print(f"  {expected_score_note(store, model_id, 'test')}")
    times["export"] = time.perf_counter() - t

    truth = pd.read_csv(manifest_path.parent / "test_labels.csv", dtype=str)
    sub = pd.read_csv(sub_path, dtype=str)
    scored = truth.merge(sub, on="id", suffixes=("_true", "_pred"))
    f1 = held_out_macro_f1(scored.emotion_true, scored.emotion_pred, manifest)
    acc = (scored.emotion_true == scored.emotion_pred).mean()
    print("\n== results (held-out demo test videos; labels never given to the store)")
    print(scored.rename(columns={"emotion_true": "true", "emotion_pred": "predicted"})
          .to_string(index=False))
    print(f"\nheld-out macro-F1 {f1:.3f}, accuracy {acc:.3f} on {len(scored)} videos; "
          + (f"nested estimate of the procedure {result.estimate.macro_f1:.3f} (deployed: {result.family}, "
             f"{result.method}, {result.variant}); the selection score {result.best_score:.3f} chose it"
             if result.estimate else f"selection score {result.best_score:.3f} (no nested estimate)"))
    print("\nseconds: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items())
          + f"; total {time.perf_counter() - t0:.1f}")
    print(f"""
where everything lies:
  corpus       {out / 'corpus'} (manifest.csv, test_labels.csv, videos/)
  store        {store.root} (a DuckLake: catalog.sqlite, data/)
  model        {result.model_dir}
  reports      {', '.join(str(p) for p in result.paths.values())}
  submission   {sub_path}
query it:
  .venv/bin/python cli.py sql --store {store.root} "SELECT * FROM video_predictions WHERE method = '{result.method}'"
""")
    failed = report.failures or not manifest.ok
    if failed:
        print("some demo videos failed to embed (see above)", file=sys.stderr)
    return 1 if failed else 0
