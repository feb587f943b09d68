"""``tune-fusion``: Optuna search over fusion model family x hyperparameters x aggregation.

Objective: video-level macro-F1 of out-of-fold predictions, where window
probabilities are turned into video labels by the same SQL the store runs
(``sql/aggregate_<method>.sql``). Folds are stratified by label and grouped
so that re-uploads / same speaker never straddle a fold (see ``fusion.cv``).
The best configuration is refitted on every labelled video and saved with
its lineage and a report.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from tqdm.auto import tqdm

from featurestore.export import labelled_set
from featurestore.schema import AGGREGATIONS, CLASSES

from ._sql import fetch_arrow, read_sql, relation_columns
from .aggregate import Aggregator, macro_f1
from .cv import GroupReport, leakage_groups, subsample_windows, video_evidence, video_folds
from .data import WindowData, load_store_window_data, load_window_data, pool_numpy, pool_video_vectors
from .decision import apply_offsets, fit_offsets
from .ensemble import MAX_CANDIDATES, EnsembleSelection, combine, select_ensemble, video_probs
from .estimate import NestedEstimate, nested_estimate
from .gbm import LGBMClassifier
from .groupnorm import normalise, store_group_stats, wants_group_norm
from .linear import LogRegClassifier
from .mlp import MLPClassifier
from .modelio import ENSEMBLE, FAMILIES, POOLED_FAMILIES, WINDOW_FAMILIES, FusionModel
from .oof import ARTIFACT_DIR, OOFArchive, OOFPredictions
from .stacking import SpecialistStack
from .report import confusion, per_class_table, write_report

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# ------------------------------------------------------------------ data for a study
@dataclass
class TuneData:
    """Everything a trial needs, computed once per study.

    ``labels`` is the label set of the study's one macro-F1: the classes present among
    its labelled videos (:func:`fusion.aggregate.macro_f1` over them, on pooled
    out-of-fold predictions of every video).
    """

    data: WindowData
    y_video: np.ndarray            # int (n_videos,)
    y_window: np.ndarray           # int (n_windows,)
    groups: np.ndarray             # int (n_videos,) leakage groups
    group_report: GroupReport
    folds: list[tuple[np.ndarray, np.ndarray]]
    labels: np.ndarray             # classes present among the videos (macro-F1 labels)
    con: Any
    aggregator: Aggregator = field(default_factory=Aggregator)
    _pooled: dict[str, np.ndarray] = field(default_factory=dict)
    _parent: tuple["TuneData", np.ndarray] | None = None
    #: Pool ``data.X`` itself (numpy, as serving does) rather than the store's vectors by SQL:
    #: needed when ``data.X`` was transformed (per-group normalisation).
    pool_in_numpy: bool = False

    @property
    def video_ids(self) -> np.ndarray:
        return self.data.videos["video_id"].to_numpy(dtype=str)

    def pooled(self, stats: str) -> np.ndarray:
        """Video-level pooled features (SQL, cached per ``stats``)."""
        if stats not in self._pooled:
            if self._parent is not None:  # a subset pools nothing itself: rows of its parent's
                parent, rows = self._parent
                self._pooled[stats] = parent.pooled(stats)[rows]
            elif self.pool_in_numpy:
                d = self.data
                self._pooled[stats] = pool_numpy(d.X, d.video_code, d.n_videos, d.slices, stats)
            else:
                self._pooled[stats] = pool_video_vectors(self.con, self.data, stats)
        return self._pooled[stats]

    def fingerprint(self) -> dict:
        """What the study's trials were scored on; a resumed study must see the same."""
        labels = "\n".join(f"{v}\t{y}" for v, y in zip(self.video_ids, self.y_video))
        return {"n_videos": int(self.data.n_videos), "n_windows": int(len(self.data.X)),
                "dims": self.data.dims, "n_groups": self.group_report.n_groups,
                "labels_sha256": hashlib.sha256(labels.encode()).hexdigest(), "group_norm": self.pool_in_numpy,
                "groups_sha256": hashlib.sha256(np.ascontiguousarray(self.groups, np.int64).tobytes()).hexdigest()}

    def subset(self, rows: np.ndarray, n_folds: int, seed: int) -> "TuneData":
        """The study data of videos ``rows`` only (an outer fold's training side), with its
        own grouped folds: leakage groups are kept, so no group straddles the inner folds.
        With fewer groups than ``n_folds`` (6 actors, 5 outer folds: 4 or 5 inside), the inner
        study has one fold per group."""
        rows = np.sort(np.asarray(rows))
        data = self.data.take_videos(rows)
        y = self.y_video[rows]
        _, groups = np.unique(self.groups[rows], return_inverse=True)
        n_groups = int(groups.max()) + 1
        report = replace(self.group_report, n_videos=len(rows), n_groups=n_groups)
        return TuneData(data=data, y_video=y, y_window=y[data.video_code], groups=groups,
                        group_report=report, folds=video_folds(y, groups, min(n_folds, n_groups), seed),
                        labels=np.unique(y), con=self.con, aggregator=self.aggregator,
                        _parent=(self, rows))


def prepare(con, n_folds: int = 5, seed: int = 0, data: WindowData | None = None) -> TuneData:
    """Load labelled windows (unless ``data`` holds them), form leakage groups and the video folds."""
    data = data if data is not None else load_window_data(con, labelled=True)
    y_video = data.video_labels()
    groups, report = leakage_groups(data, video_evidence(con, data.videos["video_id"].to_numpy()))
    folds = video_folds(y_video, groups, n_folds, seed)
    return TuneData(data=data, y_video=y_video, y_window=y_video[data.video_code], groups=groups,
                    group_report=report, folds=folds, labels=np.unique(y_video), con=con)


# ------------------------------------------------------------------ search space
#: Bumped whenever ``suggest`` or what its trials fit changes; benchmarks put it in their
#: study names so that a re-run never resumes a study sampled from another space.
SEARCH_SPACE_VERSION = 4

@dataclass
class Config:
    """One point of the search space (what a trial fits)."""

    family: str
    method: str
    params: dict
    max_windows: int | None = None
    pool_stats: str | None = None

    def as_dict(self) -> dict:
        return {"family": self.family, "method": self.method, "params": self.params,
                "max_windows": self.max_windows, "pool_stats": self.pool_stats}


def suggest(trial: optuna.Trial, families: tuple[str, ...]) -> Config:
    """The search space, define-by-run: each family asks only for its own hyperparameters."""
    family = trial.suggest_categorical("family", list(families))
    cw = trial.suggest_categorical("class_weight", ["none", "sqrt", "balanced"])
    params: dict[str, Any] = {"class_weight": None if cw == "none" else cw}
    if family == "mlp":
        params.update(
            depth=trial.suggest_int("mlp_depth", 1, 3),
            hidden=trial.suggest_categorical("mlp_hidden", [64, 128, 256, 512]),
            dropout=trial.suggest_float("mlp_dropout", 0.0, 0.6),
            lr=trial.suggest_float("mlp_lr", 1e-4, 3e-3, log=True),
            weight_decay=trial.suggest_float("mlp_weight_decay", 1e-6, 1e-1, log=True),
            label_smoothing=trial.suggest_float("mlp_label_smoothing", 0.0, 0.2),
        )
    elif family in ("lightgbm", "pooled-lightgbm"):
        pooled = family == "pooled-lightgbm"
        p = "plgbm_" if pooled else "lgbm_"
        params.update(
            num_leaves=trial.suggest_int(p + "num_leaves", 4, 31 if pooled else 63, log=True),
            learning_rate=trial.suggest_float(p + "learning_rate", 0.02, 0.3, log=True),
            feature_fraction=trial.suggest_float(p + "feature_fraction", 0.05, 0.6),
            bagging_fraction=trial.suggest_float(p + "bagging_fraction", 0.5, 1.0),
            min_child_samples=trial.suggest_int(p + "min_child_samples", 3 if pooled else 10,
                                                40 if pooled else 300, log=True),
            lambda_l1=trial.suggest_float(p + "lambda_l1", 1e-3, 10.0, log=True),
            lambda_l2=trial.suggest_float(p + "lambda_l2", 1e-3, 10.0, log=True),
        )
    elif family == "pooled-logreg":
        params.update(C=trial.suggest_float("logreg_C", 1e-4, 10.0, log=True),
                      knn_weight=trial.suggest_float("logreg_knn_weight", 0.0, 0.6),
                      knn_k=trial.suggest_categorical("logreg_knn_k", [5, 10, 20]))
    elif family == "stacked":
        fusion = trial.suggest_categorical("stack_fusion", ["stack", "late"])
        params.update(fusion=fusion, specialist_C=trial.suggest_float("stack_specialist_C", 1e-3, 1.0, log=True))
        if fusion == "stack":
            params.update(fusion_C=trial.suggest_float("stack_fusion_C", 1e-2, 10.0, log=True))
    else:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    if family in WINDOW_FAMILIES:
        method = trial.suggest_categorical("method", list(AGGREGATIONS))
        max_windows = trial.suggest_categorical("max_windows", [4, 8, 16, 32])
        return Config(family, method, params, max_windows=max_windows)
    pool_stats = trial.suggest_categorical("pool_stats", ["mean", "mean+std"])
    # One probability vector per video: every aggregation returns it, 'mean' keeps its confidence.
    return Config(family, "mean", params, pool_stats=pool_stats)


def default_trials(families: tuple[str, ...]) -> list[dict]:
    """Sensible starting points (one per family), enqueued when a study is new."""
    base = {
        "mlp": {"family": "mlp", "class_weight": "balanced", "mlp_depth": 1, "mlp_hidden": 256,
                "mlp_dropout": 0.3, "mlp_lr": 1e-3, "mlp_weight_decay": 1e-3,
                "mlp_label_smoothing": 0.05, "method": "mean", "max_windows": 16},
        "lightgbm": {"family": "lightgbm", "class_weight": "balanced", "lgbm_num_leaves": 15,
                     "lgbm_learning_rate": 0.1, "lgbm_feature_fraction": 0.2,
                     "lgbm_bagging_fraction": 0.8, "lgbm_min_child_samples": 40,
                     "lgbm_lambda_l1": 0.01, "lgbm_lambda_l2": 1.0, "method": "mean", "max_windows": 16},
        "pooled-lightgbm": {"family": "pooled-lightgbm", "class_weight": "balanced",
                            "plgbm_num_leaves": 7, "plgbm_learning_rate": 0.05,
                            "plgbm_feature_fraction": 0.2, "plgbm_bagging_fraction": 0.8,
                            "plgbm_min_child_samples": 8, "plgbm_lambda_l1": 0.01,
                            "plgbm_lambda_l2": 1.0, "pool_stats": "mean"},
        # C: 0.01, 0.05 and 0.2 score within noise of each other on the real transcripts
        # (python -m bench.logreg_c); 0.05 was best in grouped CV, and blending in a
        # 10-neighbour vote at 0.3 beat the linear model alone on every fold seed.
        "pooled-logreg": {"family": "pooled-logreg", "class_weight": "balanced", "logreg_C": 0.05,
                          "logreg_knn_weight": 0.3, "logreg_knn_k": 10, "pool_stats": "mean"},
        # One specialist per modality, fused by one fitted weight each over their cross-fitted
        # probabilities: a strong small modality is not drowned by a large silent one. Late
        # fusion scored 0.468 against 0.385 for stacking on the Java-SED talking faces
        # (actor-grouped CV, python -m bench.javanese); the study searches both.
        "stacked": {"family": "stacked", "class_weight": "balanced", "stack_fusion": "late",
                    "stack_specialist_C": 0.05, "pool_stats": "mean"},
    }
    return [base[f] for f in families if f in base]


def make_estimator(config: Config, blocks: list[tuple[int, int]], seed: int,
                   names: list[str] | None = None):
    """Unfitted estimator for ``config`` (``blocks`` = column ranges of the modalities ``names``)."""
    p = dict(config.params)
    if config.family == "mlp":
        return MLPClassifier(blocks=blocks, random_state=seed, max_epochs=40, patience=6, **p)
    if config.family == "lightgbm":
        return LGBMClassifier(random_state=seed, n_estimators=300, early_stopping_rounds=20, **p)
    if config.family == "pooled-lightgbm":
        return LGBMClassifier(random_state=seed, n_estimators=500, early_stopping_rounds=40,
                              val_fraction=0.2, **p)
    if config.family == "pooled-logreg":
        return LogRegClassifier(blocks=blocks, random_state=seed, **p)
    if config.family == "stacked":
        return SpecialistStack(blocks=blocks, names=names, random_state=seed, **p)
    raise ValueError(f"unknown family {config.family!r}")


def _pooled_blocks(dims: dict[str, int], stats: str) -> list[tuple[int, int]]:
    """Column ranges of each modality's block in the pooled feature layout."""
    blocks, start = [], 0
    for d in dims.values():
        width = d * (2 if stats == "mean+std" else 1) + 1
        blocks.append((start, start + width - 1))  # the share column is never NaN
        start += width
    return blocks


def _window_blocks(data: WindowData) -> list[tuple[int, int]]:
    return [(s.start, s.stop) for s in data.slices.values()]


# ------------------------------------------------------------------ cross-validation
@dataclass
class CVResult:
    """Out-of-fold results of one configuration."""

    method_scores: dict[str, float]           # method -> OOF video macro-F1 (the study's labels)
    oof_pred: dict[str, np.ndarray]           # method -> int (n_videos,) predicted class
    oof: OOFPredictions                       # the out-of-fold window probabilities
    seconds: float


def fit_videos(td: TuneData, config: Config, rows: np.ndarray, seed: int) -> Any:
    """``config`` fitted on videos ``rows``. Early-stopping splits inside the estimators are
    drawn over the study's leakage groups, so a duplicate never sits on both sides of them."""
    data = td.data
    if config.family in POOLED_FAMILIES:
        est = make_estimator(config, _pooled_blocks(data.dims, config.pool_stats), seed, list(data.dims))
        return est.fit(td.pooled(config.pool_stats)[rows], td.y_video[rows], groups=td.groups[rows])
    win = np.flatnonzero(np.isin(data.video_code, rows))
    win = win[subsample_windows(data.video_code[win], config.max_windows)]
    codes = data.video_code[win]
    weight = 1.0 / np.bincount(codes, minlength=data.n_videos)[codes]  # every video weighs the same
    est = make_estimator(config, _window_blocks(data), seed)
    return est.fit(data.X[win], td.y_window[win], sample_weight=weight, groups=td.groups[codes])


def predict_videos(td: TuneData, config: Config, estimator: Any,
                   rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probs (n, 8), video_id, window_idx) of every window of videos ``rows``; pooled families
    give one row per video (window_idx 0), which every aggregation maps to its argmax."""
    data = td.data
    if config.family in POOLED_FAMILIES:
        return (estimator.predict_proba(td.pooled(config.pool_stats)[rows]), td.video_ids[rows],
                np.zeros(len(rows), np.int32))
    win = np.flatnonzero(np.isin(data.video_code, rows))
    return estimator.predict_proba(data.X[win]), data.video_id[win], data.window_idx[win]


def cross_validate(td: TuneData, config: Config, seed: int = 0, trial: optuna.Trial | None = None,
                   progress: bool = False) -> CVResult:
    """K-fold OOF evaluation of ``config``; reports the running score to ``trial`` for pruning.

    After fold f, ``trial.report`` gets the macro-F1 (trial's method) of all videos
    predicted so far; a pruned trial raises ``optuna.TrialPruned``.
    """
    t0 = time.perf_counter()
    vid_all = td.video_ids
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    done_v: list[np.ndarray] = []
    bar = tqdm(total=len(td.folds), desc=f"  {config.family}", leave=False, disable=not progress)
    try:
        for f, (tr_v, va_v) in enumerate(td.folds):
            parts.append(predict_videos(td, config, fit_videos(td, config, tr_v, seed), va_v))
            done_v.append(va_v)
            bar.update(1)
            if trial is not None:
                seen = np.concatenate(done_v)
                oof = OOFPredictions.concat(parts)
                pred = td.aggregator.predict_codes(oof.probs, oof.video_id, oof.window_idx,
                                                   vid_all[seen], (config.method,))
                trial.report(macro_f1(td.y_video[seen], pred[config.method], td.labels), f)
                if trial.should_prune():
                    raise optuna.TrialPruned()
    finally:
        bar.close()
    oof = OOFPredictions.concat(parts)
    preds = td.aggregator.predict_codes(oof.probs, oof.video_id, oof.window_idx, vid_all)
    scores = {m: macro_f1(td.y_video, p, td.labels) for m, p in preds.items()}
    return CVResult(scores, preds, oof, time.perf_counter() - t0)


def fit_final(td: TuneData, config: Config, seed: int = 0) -> Any:
    """Fit ``config`` on every labelled video (the deployed estimator)."""
    return fit_videos(td, config, np.arange(td.data.n_videos), seed)


# ------------------------------------------------------------------ study plumbing
def config_from_trial(trial: optuna.trial.FrozenTrial, families: tuple[str, ...] = FAMILIES) -> Config:
    """Rebuild the Config a finished trial evaluated (replays its params through ``suggest``)."""
    fixed = optuna.trial.FixedTrial(trial.params)
    return suggest(fixed, families)


def resolve_storage(storage: str | None, root: Path | None):
    """Optuna storage: explicit URL/path, else ``<store>/optuna.db`` (SQLite), else in memory.

    RDB storages (sqlite://, postgresql://, mysql://) get a heartbeat, so a trial of a
    killed process is marked FAILED (and retried once) instead of staying RUNNING forever.
    A path ending in ``.log``/``.journal`` uses Optuna's journal file storage.
    """
    if storage is None:
        if root is None:
            return None
        storage = f"sqlite:///{Path(root).resolve() / 'optuna.db'}"
    if isinstance(storage, str) and "://" in storage:
        return _rdb_storage(storage)
    if str(storage).endswith((".log", ".journal")):
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(str(storage)))
    raise ValueError(f"storage {storage!r}: give a database URL (sqlite:///path, postgresql://...) "
                     "or a journal file path ending in .log")


def _rdb_storage(url: str, attempts: int = 5):
    """RDBStorage with heartbeat; retried when another worker is creating the tables right now.

    Workers started together on an empty database race to create Optuna's schema; the
    loser gets an IntegrityError/ProgrammingError ("already exists") and simply retries.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=30, grace_period=120,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def _describe_storage(storage) -> str | None:
    if storage is None:
        return None
    url = getattr(storage, "url", None)
    if url:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    return type(storage).__name__


@dataclass
class TuneResult:
    """Outcome of :func:`tune_fusion`.

    Attributes:
        best_score: OOF video macro-F1 of the chosen (trial, method) on the study's fold
            partition: the score that chose it, so optimistic; ``estimate`` is the honest one.
        best_params: the chosen trial's Optuna params (plus the chosen ``method``).
        family, method: chosen model family and aggregation.
        table: best score per (family, method) over finished trials, with trial counts.
        model: the refitted :class:`FusionModel`.
        model_id, model_dir: where it was saved (None when no models dir was available).
        paths: report files (confusion_png, per_class_csv, history_png, model_json).
        per_class: precision/recall/F1 per class of the chosen configuration (OOF).
        groups: CV group counts. n_trials: finished trials in the study.
        confirmation: the best trials re-scored on other fold partitions (None when off).
        estimate: the nested estimate of the whole procedure (None with ``estimate='off'``).
        decision_rule: ``{"applied", "offsets", "reason"}``.
    """

    best_score: float
    best_params: dict
    family: str
    method: str
    table: pd.DataFrame
    model: FusionModel | None
    model_id: str
    model_dir: Path | None
    paths: dict[str, Path]
    per_class: pd.DataFrame
    groups: dict
    study_name: str
    storage: str | None
    n_trials: int
    seconds: float
    confirmation: Confirmation | None = None
    estimate: NestedEstimate | None = None
    decision_rule: dict = field(default_factory=dict)
    variant: str = "single"
    ensemble: EnsembleSelection | None = None

    def summary(self) -> str:
        """Human-readable summary (what ``cli.py tune-fusion`` prints)."""
        lines = [f"study {self.study_name!r} ({self.storage or 'in memory'}): {self.n_trials} finished trial(s) "
                 f"in {self.seconds:.1f} s",
                 f"CV groups: {self.groups['description']}",
                 "", "best video macro-F1 (out of fold) per model family and aggregation:",
                 self.table.to_string(index=False, float_format=lambda v: f"{v:.4f}"), "",
                 f"chosen: {self.family} + {self.method}: macro-F1 {self.best_score:.4f} on the folds "
                 "that chose it (optimistic)",
                 *([f"  the best of the {len(self.confirmation.candidates)} best trials over "
                    f"{len(self.confirmation.scores)} fold partitions: mean macro-F1 "
                    f"{self.confirmation.mean:.4f} ({', '.join(f'{x:.3f}' for x in self.confirmation.scores)})"]
                   if self.confirmation else []),
                 *([self.estimate.describe()] if self.estimate else
                   ["a tuning-only run (--no-refit): the confirmation, the estimate and the model are "
                    "left to a run of the same study without it"] if self.model is None else
                   ["no estimate of the whole procedure (--estimate off): the score above chose the "
                    "model and overstates what unseen videos will give"]),
                 *([f"ensemble selection over the trials: {self.ensemble.n_members} member(s), OOF macro-F1 "
                    f"{self.ensemble.score:.4f} vs {self.ensemble.best_single:.4f} for the best trial"]
                   if self.ensemble else []),
                 f"decision rule: {'applied' if self.decision_rule.get('applied') else 'not applied'} "
                 f"({self.decision_rule.get('reason', '')})",
                 f"deployed: {self.variant}" + (f" ({self.model_id})" if self.model is not None else ""),
                 f"params: {json.dumps(self.best_params, default=str)}", "",
                 self.per_class.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        if self.model_dir is not None:
            lines += ["", f"model {self.model_id} saved in {self.model_dir}"]
            lines += [f"  {k}: {v}" for k, v in self.paths.items()]
        return "\n".join(lines)


def _trials_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in FINISHED:
            continue
        rows.append({"number": t.number, "state": t.state.name,
                     "value": t.value if t.state == TrialState.COMPLETE else np.nan,
                     "family": t.params.get("family"), "method": t.user_attrs.get("method"),
                     "method_scores": t.user_attrs.get("method_scores")})
    return pd.DataFrame(rows, columns=["number", "state", "value", "family", "method", "method_scores"])


def summary_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Best OOF score per (family, method) over complete trials (every method is scored per trial)."""
    rows = []
    done = trials[trials["state"] == "COMPLETE"]
    for _, t in done.iterrows():
        for m, s in (t["method_scores"] or {}).items():
            rows.append({"family": t["family"], "method": m, "score": s, "trial": t["number"]})
    if not rows:
        return pd.DataFrame(columns=["family", "method", "best_macro_f1", "trial", "n_trials"])
    df = pd.DataFrame(rows)
    best = df.loc[df.groupby(["family", "method"])["score"].idxmax()]
    counts = done.groupby("family").size().rename("n_trials")
    out = best.rename(columns={"score": "best_macro_f1"}).merge(counts, left_on="family", right_index=True)
    return out.sort_values("best_macro_f1", ascending=False).reset_index(drop=True)


def _choose(table: pd.DataFrame, trials: pd.DataFrame) -> pd.Series:
    """The best (family, method) row; among equal scores the trial's own method wins.

    Pooled families give every window the video's probabilities, so all methods tie
    there and the trial's own method ('mean', which keeps a graded confidence) is kept.
    """
    top = table[table["best_macro_f1"] >= table["best_macro_f1"].max() - 1e-12]
    own = dict(zip(trials["number"], trials["method"]))
    preferred = top[[own.get(t) == m for t, m in zip(top["trial"], top["method"])]]
    return (preferred if len(preferred) else top).iloc[0]


@dataclass
class Confirmation:
    """The best candidates re-scored on other fold partitions (see :func:`confirm_best`)."""

    trial: int
    family: str
    method: str
    scores: list[float]           # macro-F1 on the study's partition, then on each other one
    candidates: list[dict]        # every candidate: trial, family, method, scores, mean

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def confirm_best(td: TuneData, study: optuna.Study, trials: pd.DataFrame, families: tuple[str, ...],
                 seed: int, top: int = 5, repeats: int = 2, progress: bool = False,
                 min_gain: float = 0.01) -> Confirmation | None:
    """Pick among the ``top`` best trials (and the best default trial of
    :func:`default_trials`, when not among them) by their mean macro-F1 over the study's
    fold partition and ``repeats`` other ones; the best default gives way only to a trial
    whose mean beats it by more than ``min_gain``.

    With a few hundred videos one partition's score is noisy (±0.01–0.02 between fold
    seeds for one configuration), so the study's single best trial is partly luck. Each
    candidate is a trial with its best aggregation method; the other partitions are
    grouped and stratified like the study's, with seeds ``seed + 1000 * r``. Whether this
    rule helps is for the nested estimate to say: it runs inside every outer fold.
    """
    done = trials[trials["state"] == "COMPLETE"]
    if top < 2 or repeats < 1 or len(done) < 2:
        return None
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    defaults = default_trials(families)
    rows = []
    for _, t in done.iterrows():
        scores = t["method_scores"] or {}
        if scores:
            method = max(scores, key=lambda m: (scores[m], m == t["method"]))
            params = by_number[int(t["number"])].params
            is_default = any(all(params.get(k) == v for k, v in d.items()) for d in defaults)
            rows.append((float(scores[method]), int(t["number"]), method, is_default))
    rows.sort(key=lambda r: (-r[0], r[1]))
    chosen = rows[:top]
    if not any(r[3] for r in chosen):  # the best-scoring default joins the candidates
        chosen += [r for r in rows[top:] if r[3]][:1]
    n_folds = len(td.folds)
    partitions = [replace(td, folds=video_folds(td.y_video, td.groups, n_folds, seed + 1000 * r))
                  for r in range(1, repeats + 1)]
    candidates = []
    for score, number, method, is_default in tqdm(chosen, desc="confirm best trials", leave=False,
                                                  disable=not progress):
        config = config_from_trial(by_number[number], families)
        config.method = method
        extra = [cross_validate(p, config, seed).method_scores[method] for p in partitions]
        candidates.append({"trial": number, "family": config.family, "method": method,
                           "default": is_default, "scores": [score, *extra],
                           "mean": float(np.mean([score, *extra]))})
    best = max(candidates, key=lambda c: c["mean"])
    anchors = [c for c in candidates if c["default"]]
    if anchors:
        anchor = max(anchors, key=lambda c: c["mean"])
        if best["mean"] <= anchor["mean"] + min_gain:
            best = anchor
    return Confirmation(best["trial"], best["family"], best["method"], best["scores"], candidates)


# ------------------------------------------------------------------ one study: search and selection
@dataclass
class Selection:
    """The configuration a study chose, with its out-of-fold predictions on the study's folds."""

    trial: int
    config: Config                 # ``config.method`` is the chosen aggregation
    score: float                   # macro-F1 on the study's partition (what chose it)
    oof: OOFPredictions
    oof_pred: np.ndarray           # int (n_videos,) predicted class per video (the chosen method)
    params: dict
    confirmation: Confirmation | None = None
    n_trials: int = 0              # finished trials of the study
    ensemble: EnsembleSelection | None = None
    member_configs: dict[int, Config] = field(default_factory=dict)  # trial -> config, ensemble members


def open_study(study_name: str, storage, seed: int, families: tuple[str, ...], n_trials: int,
               td: TuneData) -> optuna.Study:
    """Create or resume ``study_name``; a resumed study must have the same settings and data.

    Raises:
        ValueError: the study was created with other settings, or on other data (other
            videos, labels, leakage groups or vectors): its scores and out-of-fold
            predictions would not describe the data it would now be chosen on.
    """
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                             n_startup_trials=max(len(families) + 2, min(10, n_trials // 3)))
        study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                    pruner=pruner, direction="maximize", load_if_exists=True)
    settings = {"seed": seed, "n_folds": len(td.folds), "families": list(families),
                "search_space": SEARCH_SPACE_VERSION}
    fingerprint = td.fingerprint()
    old, old_data = study.user_attrs.get("settings"), study.user_attrs.get("data")
    if old is None:
        study.set_user_attr("settings", settings)
        study.set_user_attr("data", fingerprint)
        if not study.get_trials(deepcopy=False):
            for params in default_trials(families):
                study.enqueue_trial(params, skip_if_exists=True)
        return study
    if old != settings:
        raise ValueError(f"study {study_name!r} was created with {old}, not {settings}: its scores "
                         "are not comparable; use the same settings or a new --study name")
    if old_data != fingerprint:
        changed = [k for k in fingerprint if (old_data or {}).get(k) != fingerprint[k]]
        raise ValueError(
            f"study {study_name!r} was scored on other data ({(old_data or {}).get('n_videos')} labelled "
            f"videos, {(old_data or {}).get('n_windows')} windows) than the store holds now "
            f"({fingerprint['n_videos']} videos, {fingerprint['n_windows']} windows; changed: "
            f"{', '.join(changed)}): its trials' scores and out-of-fold predictions describe the old "
            "data; start a new study (omit --study, or give a new name)")
    return study


def run_study(td: TuneData, study: optuna.Study, families: tuple[str, ...], n_trials: int,
              seed: int, archive: OOFArchive, timeout: float | None = None, progress: bool = False) -> None:
    """Run ``study`` until it has ``n_trials`` finished trials (or ``timeout`` seconds pass)."""
    def objective(trial: optuna.Trial) -> float:
        config = suggest(trial, families)
        trial.set_user_attr("method", config.method)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        res = cross_validate(td, config, seed, trial=trial, progress=progress)
        trial.set_user_attr("method_scores", res.method_scores)
        trial.set_user_attr("seconds", round(res.seconds, 2))
        archive.save(trial, res.oof)
        return res.method_scores[config.method]

    n_done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    remaining = max(0, n_trials - n_done)
    if not remaining:
        return
    bar = tqdm(total=remaining, desc=f"tune-fusion {study.study_name}", disable=not progress)

    def on_trial(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bar.update(1)
        try:
            bar.set_postfix(best=f"{study_.best_value:.4f}", last=trial.params.get("family"))
        except ValueError:  # no complete trial yet
            pass

    try:
        study.optimize(objective, n_trials=remaining, timeout=timeout,
                       callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED), on_trial])
    finally:
        bar.close()


def select(td: TuneData, study: optuna.Study, families: tuple[str, ...], seed: int, archive: OOFArchive,
           confirm_top: int = 5, confirm_repeats: int = 2, progress: bool = False,
           ensemble: bool = True) -> Selection:
    """The study's choice: its best (trial, method), or the confirmed one (:func:`confirm_best`).

    Raises:
        RuntimeError: no trial completed.
    """
    trials = _trials_frame(study)
    table = summary_table(trials)
    if table.empty:
        raise RuntimeError(f"study {study.study_name!r} has no complete trial; raise --timeout or --trials")
    row = _choose(table, trials)
    number, method, score = int(row["trial"]), str(row["method"]), float(row["best_macro_f1"])
    confirmed = confirm_best(td, study, trials, families, seed, confirm_top, confirm_repeats, progress=progress)
    if confirmed is not None:
        number, method = confirmed.trial, confirmed.method
        score = confirmed.scores[0]
    trial = study.get_trials(deepcopy=False)[number]
    config = config_from_trial(trial, families)
    config.method = method
    try:
        oof = archive.load(study.study_name, trial)
    except LookupError:  # a trial of another worker without an artifact store: score it again
        oof = cross_validate(td, config, seed).oof
    pred = td.aggregator.predict_codes(oof.probs, oof.video_id, oof.window_idx, td.video_ids, (method,))[method]
    ensemble, member_configs = _ensemble(td, study, trials, families, archive) if ensemble else (None, {})
    return Selection(trial=number, config=config, score=score, oof=oof, oof_pred=pred,
                     params={**trial.params, "method": method}, confirmation=confirmed,
                     n_trials=int(len(trials)), ensemble=ensemble, member_configs=member_configs)


def _ensemble(td: TuneData, study: optuna.Study, trials: pd.DataFrame, families: tuple[str, ...],
              archive: OOFArchive) -> tuple[EnsembleSelection | None, dict[int, Config]]:
    """Ensemble selection over the best complete trials whose out-of-fold predictions are kept."""
    done = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    probs, configs = {}, {}
    for number in done["number"].astype(int).tolist()[:MAX_CANDIDATES]:
        try:
            oof = archive.load(study.study_name, by_number[number])
        except LookupError:
            continue
        probs[number] = video_probs(oof, td.video_ids)
        configs[number] = config_from_trial(by_number[number], families)
    if len(probs) < 2:
        return None, {}
    ens = select_ensemble(probs, td.y_video, td.labels)
    return ens, {t: configs[t] for t in ens.weights}


def fit_ensemble_members(td: TuneData, sel: Selection, rows: np.ndarray, seed: int) -> list[tuple[Config, Any, float]]:
    """(config, estimator fitted on videos ``rows``, weight) of each member of ``sel.ensemble``."""
    return [(sel.member_configs[t], fit_videos(td, sel.member_configs[t], rows, seed), w)
            for t, w in sel.ensemble.weights.items()]


def predict_ensemble(td: TuneData, members: list[tuple[Config, Any, float]], rows: np.ndarray) -> np.ndarray:
    """float32 (len(rows), k): the members' weighted video probabilities for videos ``rows``."""
    parts = []
    for config, est, _ in members:
        probs, vid, widx = predict_videos(td, config, est, rows)
        parts.append(video_probs(OOFPredictions(probs, vid, widx), td.video_ids[rows]))
    return combine(parts, [w for _, _, w in members])


def tune_and_select(td: TuneData, families: tuple[str, ...], n_trials: int, seed: int,
                    confirm_top: int = 5, confirm_repeats: int = 2, name: str = "inner",
                    timeout: float | None = None) -> Selection:
    """A fresh in-memory study on ``td``: the same search, defaults and selection as
    :func:`tune_fusion` (the nested estimate runs this inside every outer fold)."""
    archive = OOFArchive()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(name, None, seed, families, n_trials, td)
    run_study(td, study, families, n_trials, seed, archive, timeout)
    return select(td, study, families, seed, archive, confirm_top, confirm_repeats)


def decision_offsets(td: TuneData, sel: Selection) -> np.ndarray:
    """Per-class log-probability offsets fitted on the selection's out-of-fold predictions."""
    return fit_offsets(sel.oof, td.y_video, td.video_ids, sel.config.method, td.labels, td.aggregator)


def _store_parts(store_or_con, encoders: dict[str, str] | None = None):
    """(store or None, connection, store root or None, snapshot id or None,
    ``{modality: encoder_id}`` served) from a FeatureStore,
    a path or a connection.

    A store is read at one snapshot (the current one when tuning starts), so every query of
    the study sees the same data while other processes keep writing, and the model's lineage
    can name it. ``encoders`` overrides the store's named feature sets on that connection.
    """
    if isinstance(store_or_con, (str, Path)):
        from featurestore.store import FeatureStore
        store_or_con = FeatureStore(store_or_con, create=False)
    if hasattr(store_or_con, "current_snapshot") and hasattr(store_or_con, "models_dir"):
        store = store_or_con
        snapshot = store.current_snapshot()
        served = {m: c["encoder_id"] for m, c in store.feature_sets(snapshot=snapshot).items()}
        served.update(encoders or {})
        con = store.connect(snapshot=snapshot, encoders=served if encoders else None)
        return store, con, Path(store.root), snapshot, served
    return None, store_or_con, None, None, {}


def store_snapshot(con, snapshot: int | None = None) -> dict:
    """What a model was trained on, for its lineage: the store snapshot id and row counts."""
    t = fetch_arrow(con, read_sql("fusion_store_counts"))
    out = {k: v[0] for k, v in t.to_pydict().items()}
    if snapshot is not None:
        out["snapshot_id"] = int(snapshot)
    return out


def current_encoders(con, dims: dict[str, int], served: dict[str, str]) -> dict:
    """modality -> {encoder_id, name, dim, ...} of the feature sets ``fusion_vectors`` served
    (``served``: modality -> encoder_id), with their lineage from the ``encoders`` table."""
    found: dict = {}
    if relation_columns(con, "encoders") is not None:
        for m in dims:
            if served.get(m):
                rows = con.execute(read_sql("fusion_served_encoder"), [served[m]]).to_arrow_table().to_pylist()
                found[m] = rows[0] if rows else {"encoder_id": served[m]}
    return {m: {**found.get(m, {}), "dim": d} for m, d in dims.items()}


ESTIMATES = ("nested", "off")
DECISION_RULES = ("auto", "on", "off")


# ------------------------------------------------------------------ public entry point
def tune_fusion(store_or_con, n_trials: int = 30, timeout: float | None = None, seed: int = 0,
                study_name: str | None = None, storage: str | None = None, n_folds: int = 5,
                families: tuple[str, ...] | list[str] | None = None, show_progress: bool = True,
                *, models_dir: str | Path | None = None, refit: bool = True,
                confirm_top: int = 5, confirm_repeats: int = 2,
                encoders: dict[str, str] | None = None, estimate: str = "nested",
                estimate_trials: int | None = None, decision_rule: str = "auto",
                ensemble: str = "auto", group_norm: str = "auto") -> TuneResult:
    """Tune, estimate, refit and save the fusion model.

    Args:
        store_or_con: a ``featurestore.store.FeatureStore``, its directory, or a DuckDB
            connection exposing ``videos``, ``windows`` (optional) and ``fusion_vectors``.
        n_trials: finished (complete + pruned) trials the study should reach. A resumed
            study runs only the remainder; several workers sharing a storage split them.
        timeout: stop starting new trials after this many seconds.
        seed: seeds the folds, the sampler and every estimator.
        study_name: create or resume this study (default: a new ``fusion-<utc time>``). A
            resumed study must have been run on the same labelled videos, groups and vectors.
        storage: Optuna storage URL (``sqlite:///f.db``, ``postgresql://user@host/db``) or
            journal file path; default ``<store>/optuna.db``, or in memory for a bare connection.
        n_folds: CV folds (over leakage groups of videos); also the nested estimate's outer folds.
        families: subset of ``fusion.modelio.FAMILIES`` (default: all).
        show_progress: tqdm bars for trials and folds.
        models_dir: where to save the refitted model (default: ``store.models_dir``);
            with a bare connection and no models_dir nothing is written.
        refit: refit the chosen configuration on all labelled videos (else model is None,
            and neither the estimate nor the decision rule runs: a tuning-only worker).
        confirm_top, confirm_repeats: the ``confirm_top`` best trials are scored again on
            ``confirm_repeats`` other fold partitions and the best mean wins
            (:func:`confirm_best`); 0 keeps the study's single best trial. Only with ``refit``.
        encoders: ``{modality: encoder_id}`` feature sets to train on instead of the store's
            named choice (``use-encoders``) for those modalities; recorded in the lineage.
        estimate: 'nested' runs the whole procedure (a study of ``estimate_trials`` trials,
            the same selection, the decision rule, the refit) inside each of ``n_folds`` outer
            folds and scores the outer videos (:mod:`fusion.estimate`); it costs about
            ``n_folds * estimate_trials / n_trials`` times the study. 'off' skips it.
        estimate_trials: trials of each inner study (default ``min(n_trials, 10)``); with
            ``timeout``, each inner study also stops after ``timeout * estimate_trials / n_trials`` s.
        decision_rule: 'on' fits per-class log-probability offsets for macro-F1
            (:mod:`fusion.decision`) on the chosen trial's out-of-fold predictions; 'auto'
            does so only when the nested estimate measured a gain in 90 % of paired group
            resamples (:func:`fusion.estimate.paired_gain_low`); 'off' never.
        ensemble: 'auto' deploys the ensemble selected over the study's trials
            (:mod:`fusion.ensemble`) when the nested estimate scored it above the single
            model in 90 % of paired group resamples; 'on' whenever it has more than one
            member; 'off' never.
        group_norm: 'on' standardises every window vector by its manifest group's statistics
            over all of the group's stored windows (:mod:`fusion.groupnorm`; per speaker);
            'auto' does so when every labelled video has a group and there are two or more;
            'off' never. Needs a store.

    Returns:
        :class:`TuneResult`.

    Raises:
        ValueError: unknown family, too few groups for ``n_folds``, or a resumed study
            whose settings or data differ (its trials would not be comparable).
        RuntimeError: no trial finished (e.g. ``timeout`` too short).
    """
    t_start = time.perf_counter()
    families = tuple(families) if families else FAMILIES
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown model famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                         f"choose from {list(FAMILIES)}")
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate={estimate!r}; choose from {ESTIMATES}")
    if decision_rule not in DECISION_RULES:
        raise ValueError(f"decision_rule={decision_rule!r}; choose from {DECISION_RULES}")
    if ensemble not in DECISION_RULES:
        raise ValueError(f"ensemble={ensemble!r}; choose from {DECISION_RULES}")
    if group_norm not in DECISION_RULES:
        raise ValueError(f"group_norm={group_norm!r}; choose from {DECISION_RULES}")
    store, con, root, snapshot, served_ids = _store_parts(store_or_con, encoders)
    data = load_store_window_data(store, served_ids, snapshot=snapshot) if store is not None else None
    normalised = bool(data is not None and (group_norm == "on" or (group_norm == "auto" and wants_group_norm(data))))
    if group_norm == "on" and store is None:
        raise ValueError("group_norm='on' needs a feature store (the statistics come from all its windows)")
    if normalised:
        data = normalise(data, store_group_stats(store, served_ids, data.dims, snapshot))
    td = prepare(con, n_folds, seed, data)
    td.pool_in_numpy = normalised
    storage_obj = resolve_storage(storage, root)
    archive = OOFArchive(root / ARTIFACT_DIR if root is not None else None)
    study_name = study_name or f"fusion-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:4]}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(study_name, storage_obj, seed, families, n_trials, td)
    run_study(td, study, families, n_trials, seed, archive, timeout, show_progress)
    trials = _trials_frame(study)
    table = summary_table(trials)
    # Tuning-only workers (refit=False) leave confirmation and the estimate to the one that refits.
    sel = select(td, study, families, seed, archive, confirm_top if refit else 0, confirm_repeats,
                 progress=show_progress, ensemble=refit and ensemble != "off")
    config, method = sel.config, sel.config.method

    nested = None
    if refit and estimate == "nested":
        inner_trials = estimate_trials or min(n_trials, 10)
        # Under --timeout each inner study gets the study's time per trial, so the estimate
        # costs about what its trials would in the study.
        inner_timeout = timeout * inner_trials / max(n_trials, 1) if timeout else None
        nested = nested_estimate(td, lambda sub, name: tune_and_select(
            sub, families, inner_trials, seed, confirm_top, confirm_repeats, name, inner_timeout),
            fit_videos, predict_videos, decision_offsets, seed=seed, progress=show_progress,
            ensemble=(fit_ensemble_members, predict_ensemble))
    # The ensemble replaces the single trial only when the nested estimate says it is better.
    has_ensemble = refit and sel.ensemble is not None and sel.ensemble.n_members > 1
    use_ensemble = bool(has_ensemble and (ensemble == "on" or (
        ensemble == "auto" and nested is not None and nested.ensemble_helps)))
    rule = (_decide_rule(decision_rule, nested, refit) if not use_ensemble else
            {"applied": False, "offsets": None, "reason": "the ensemble is deployed" + (
                f" (nested estimate {nested.ensemble_gain:+.4f} over the single model, above "
                f"{nested.ensemble_gain_low:+.4f} in 90 % of paired group resamples)" if nested else "")})
    if rule["applied"]:
        rule["offsets"] = [round(float(b), 4) for b in decision_offsets(td, sel)]
    offsets = np.array(rule["offsets"]) if rule["applied"] else None
    variant = "ensemble" if use_ensemble else ("rule" if rule["applied"] else "single")
    y_pred = sel.oof_pred
    if offsets is not None:
        y_pred = td.aggregator.predict_codes(apply_offsets(sel.oof.probs, offsets), sel.oof.video_id,
                                             sel.oof.window_idx, td.video_ids, (method,))[method]
    if use_ensemble:
        y_pred = sel.ensemble.probs.argmax(axis=1)
    per_class = per_class_table(td.y_video, y_pred)

    model_id = f"fusion-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{config.family}-{method}-{uuid.uuid4().hex[:6]}"
    dims = td.data.dims
    n_labelled, labels_sha = labelled_set(con)
    lineage = {
        "study": study_name, "storage": _describe_storage(storage_obj), "trial": sel.trial,
        "cv_macro_f1": sel.score, "macro_f1_labels": [CLASSES[k] for k in td.labels],
        "confusion": confusion(td.y_video, y_pred).tolist(), "classes": list(CLASSES),
        "params": sel.params, "config": config.as_dict(), "n_folds": n_folds, "seed": seed,
        "groups": td.group_report.as_dict(), "n_videos": td.data.n_videos,
        "n_windows": int(len(td.data.X)), "columns": list(dims), "dims": dims,
        "labels_sha256": labels_sha, "n_labelled": n_labelled,
        "estimate": nested.as_dict() if nested else None, "decision_rule": rule, "variant": variant,
        "group_norm": normalised,
        "ensemble": ({"weights": {str(t): w for t, w in sel.ensemble.weights.items()},
                      "members": {str(t): sel.member_configs[t].as_dict() for t in sel.ensemble.weights},
                      "oof_macro_f1": sel.ensemble.score, "best_single_oof_macro_f1": sel.ensemble.best_single,
                      "deployed": use_ensemble} if sel.ensemble is not None else None),
        "store_snapshot": store_snapshot(con, snapshot), "trained_at": datetime.now(timezone.utc).isoformat(),
    }
    if sel.confirmation is not None:
        c = sel.confirmation
        lineage["confirmation"] = {"fold_seeds": [seed + 1000 * r for r in range(confirm_repeats + 1)],
                                   "mean_macro_f1": c.mean, "scores": c.scores, "candidates": c.candidates}
    if "text" in dims and store is not None:
        from featurestore.embed import matching_text_unit, text_origins
        # How new files' ASR text must be windowed to look like the training windows.
        lineage["text_unit"] = matching_text_unit(store)
        # Where the training text came from, so predictions on other text can say so.
        lineage["text_origins"] = text_origins(store)
    served = current_encoders(con, dims, served_ids)
    model = None
    model_dir: Path | None = None
    paths: dict[str, Path] = {}
    if refit and use_ensemble:
        members = [FusionModel(family=c.family, method="mean", estimator=est, modalities=tuple(dims), dims=dims,
                               params=c.params, encoders=served, pool_stats=c.pool_stats,
                               model_id=f"{model_id}-trial{t}")
                   for t, (c, est, _) in zip(sel.ensemble.weights, fit_ensemble_members(
                       td, sel, np.arange(td.data.n_videos), seed))]
        model_id = model_id.replace(f"-{config.family}-{method}-", f"-{ENSEMBLE}-mean-")
        method = "mean"
        model = FusionModel(family=ENSEMBLE, method=method, estimator=None, modalities=tuple(dims), dims=dims,
                            params={}, encoders=served, model_id=model_id, lineage=lineage,
                            members=members, member_weights=list(sel.ensemble.weights.values()),
                            group_norm=normalised)
    elif refit:
        estimator = fit_final(td, config, seed)
        model = FusionModel(family=config.family, method=method, estimator=estimator,
                            modalities=tuple(dims), dims=dims, params=config.params, encoders=served,
                            pool_stats=config.pool_stats, model_id=model_id, lineage=lineage,
                            offsets=offsets, group_norm=normalised)
    if model is not None:
        target = Path(models_dir) if models_dir is not None else (Path(store.models_dir) if store else None)
        if target is not None:
            model_dir = target / model_id
            paths["model_json"] = model.save(model_dir)
            if nested is not None:
                paths["nested_predictions"] = nested.save_predictions(model_dir)
            headline = (nested.headline(variant) if nested else
                        f"OOF macro-F1 {sel.score:.3f} on the folds that chose it")
            paths.update(write_report(model_dir, td.y_video, y_pred, trials,
                                      f"{model.family} + {method}: {headline}"))
            if store is not None:
                _register_model(store, model, sel.score, model_dir, snapshot)
    return TuneResult(best_score=sel.score, best_params=sel.params,
                      family=model.family if model is not None else config.family, method=method,
                      table=table, model=model, model_id=model_id, model_dir=model_dir, paths=paths,
                      per_class=per_class, groups=td.group_report.as_dict(), study_name=study_name,
                      storage=_describe_storage(storage_obj), n_trials=int(len(trials)),
                      seconds=time.perf_counter() - t_start, confirmation=sel.confirmation,
                      estimate=nested, decision_rule=rule, variant=variant, ensemble=sel.ensemble)


def _decide_rule(mode: str, nested: NestedEstimate | None, refit: bool) -> dict:
    """Whether the decision rule is applied, and why (``{"applied", "offsets", "reason"}``)."""
    if not refit or mode == "off":
        return {"applied": False, "offsets": None, "reason": "off" if refit else "no refit"}
    if mode == "on":
        return {"applied": True, "offsets": None, "reason": "--decision-rule on"}
    if nested is None:
        return {"applied": False, "offsets": None,
                "reason": "auto without a nested estimate to measure it (--estimate off)"}
    return {"applied": nested.rule_helps, "offsets": None,
            "reason": f"auto: the nested estimate measured {nested.rule_gain:+.4f} macro-F1 with it, "
                      f"above {nested.rule_gain_low:+.4f} in 90 % of paired group resamples "
                      "(applied only when that is above 0)"}


def _register_model(store, model: FusionModel, score: float, model_dir: Path, snapshot: int | None) -> None:
    """The model's row in the store's ``models`` table (its directory relative to the store,
    so a moved store still finds it; the snapshot its training data was read at)."""
    try:
        path = str(Path(model_dir).resolve().relative_to(store.root))
    except ValueError:  # saved outside the store
        path = str(Path(model_dir).resolve())
    encoder_ids = {m: e.get("encoder_id") for m, e in (model.encoders or {}).items() if isinstance(e, dict)}
    store.put("models", [{"model_id": model.model_id, "family": model.family, "method": model.method,
                          "cv_macro_f1": score, "path": path,
                          "encoders": json.dumps(encoder_ids, default=str),
                          "lineage": json.dumps(model.lineage, default=str),
                          "snapshot_id": snapshot, "created_at": datetime.now(timezone.utc)}])
