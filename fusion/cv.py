"""Leakage-safe cross-validation at the video level: the groups, the folds, and the loop.

Windows of one video are strongly correlated, and re-uploads of one reel share
their speech and pixels, so folds are built over *groups* of videos: a video,
plus every video that ``featurestore.duplicates`` calls its duplicate (same
media, identical or near-identical transcript, near-identical pooled vectors:
the definition the data audit uses too), plus every video with the same
manifest ``group`` (creator account / speaker). No group is ever split between
the training and validation side of a fold.

:class:`TuneData` is what a study cross-validates on (the windows, labels, groups and
folds, computed once), and :func:`cross_validate` scores one configuration of
:mod:`fusion.space` on its folds: out-of-fold window probabilities, turned into video
labels by the store's own aggregation SQL, scored by the one macro-F1.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from tqdm.auto import tqdm

from featurestore import duplicates
from featurestore.duplicates import video_evidence
from featurestore.errors import InputError
from featurestore.pooling import pooled_means

from .aggregate import Aggregator
from .data import WindowData, load_window_data, pool_numpy
from .metrics import macro_f1
from .modelio import POOLED_FAMILIES
from .oof import OOFPredictions
from .space import Config, make_estimator

if TYPE_CHECKING:
    import optuna

__all__ = ["CVResult", "GroupReport", "TuneData", "cross_validate", "fit_final", "fit_videos",
           "leakage_groups", "predict_videos", "prepare", "subsample_windows", "video_evidence",
           "video_folds"]


@dataclass
class GroupReport:
    """How the CV groups were formed.

    ``merged``: rule of ``featurestore.duplicates.RULES`` -> videos that rule alone merged;
    ``thresholds``: the duplicate thresholds used; ``pairs``: the duplicate pairs
    (``duplicates.duplicate_pairs``; not part of :meth:`as_dict`).
    """

    n_videos: int
    n_groups: int
    merged: dict[str, int]
    thresholds: dict[str, float | int] = field(default_factory=dict)
    deciding_modalities: list[str] = field(default_factory=list)
    pairs: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    def describe(self) -> str:
        """One line, e.g. "498 videos -> 470 groups (merged: 28 by transcript, ...)"."""
        m = self.merged
        speaker = (f", {m[SPEAKER_RULE]} by inferred speaker" if SPEAKER_RULE in m else "")
        return (f"{self.n_videos} videos -> {self.n_groups} groups (merged: "
                f"{m.get('transcript', 0)} by transcript, {m.get('near_transcript', 0)} by near transcript, "
                f"{m.get('vectors', 0)} by pooled vectors, {m.get('media', 0)} by media, "
                f"{m.get('manifest_group', 0)} by manifest group{speaker})")

    def as_dict(self) -> dict:
        """JSON-able: counts, merges per rule, thresholds, deciding modalities, the description."""
        return {"n_videos": int(self.n_videos), "n_groups": int(self.n_groups),
                "merged": {k: int(v) for k, v in self.merged.items()},
                "thresholds": dict(self.thresholds), "deciding_modalities": list(self.deciding_modalities),
                "n_pairs": int(len(self.pairs)), "description": self.describe()}


#: GroupReport.merged's key for videos merged because one voice speaks in them
#: (featurestore.speakers' inferred groups; ``--speaker-groups``).
SPEAKER_RULE = "inferred_speaker"
SPEAKER_GROUPS = ("auto", "on", "off")


def wants_speaker_groups(data: WindowData, speaker_groups: str = "auto") -> bool:
    """Whether CV groups merge videos of one inferred speaker: 'on', 'off', or 'auto': when some
    video has an inferred speaker group but no manifest group (one the manifest cannot keep
    together)."""
    if speaker_groups not in SPEAKER_GROUPS:
        raise InputError(f"speaker_groups={speaker_groups!r}; choose from {SPEAKER_GROUPS}")
    if speaker_groups != "auto":
        return speaker_groups == "on"
    return "speaker_source" in data.videos and bool((data.videos["speaker_source"] == "inferred").any())


def merge_speakers(codes: np.ndarray, inferred) -> tuple[np.ndarray, int]:
    """Leakage groups ``codes`` (int (n,)) joined wherever videos share an inferred speaker group
    (``inferred``: n values, None where a video has none). Returns (codes numbered by first
    video, n minus the number of components of the speaker edges alone: the videos that rule
    alone merged, counted as ``duplicates.leakage_groups`` counts its rules)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    n = len(codes)
    keys = pd.Series([k if isinstance(k, str) else None for k in inferred], dtype=object)
    has = keys.notna().to_numpy()
    _, key_code = np.unique(keys[has].astype(str), return_inverse=True)
    n_keys = int(key_code.max()) + 1 if has.any() else 0
    rows = np.flatnonzero(has)
    alone = n - connected_components(coo_matrix((np.ones(len(rows)), (rows, n + key_code)),
                                                shape=(n + n_keys,) * 2), directed=False)[0]
    n_old = int(codes.max()) + 1 if n else 0
    a = np.r_[np.arange(n), rows]
    b = np.r_[n + n_keys + codes, n + key_code]
    size = n + n_keys + n_old
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(size, size)), directed=False)
    _, first = np.unique(comp[:n], return_index=True)
    renumber = {c: k for k, c in enumerate(comp[:n][np.sort(first)])}
    return np.array([renumber[c] for c in comp[:n]], np.int64), int(alone)


def leakage_groups(data: WindowData, evidence: pd.DataFrame | None = None,
                   speaker_groups: str = "off") -> tuple[np.ndarray, GroupReport]:
    """Group id per video (rows of ``data.videos``) that CV must never split.

    Args:
        data: the windows; each video's mean-pooled vector per modality is compared
            (``featurestore.pooling.pooled_means``, centred over ``data``'s videos).
        evidence: :func:`video_evidence` rows (video_id, transcript, sha256, path) for the
            videos; None (or a video missing from it) compares vectors only.
        speaker_groups: also keep videos of one inferred speaker together
            (:func:`wants_speaker_groups`: 'auto', 'on', 'off').
    Returns:
        (int64 (n_videos,) group ids, GroupReport).
    """
    n = data.n_videos
    ids = data.videos["video_id"].astype(str).tolist()
    if evidence is not None:
        missing = [c for c in ("video_id", "transcript") if c not in evidence]
        if missing:
            raise ValueError(f"evidence lacks column(s) {missing}; it has {list(evidence.columns)} "
                             "(build it with video_evidence(con, video_ids))")
        ev = evidence.drop_duplicates("video_id").assign(video_id=lambda d: d["video_id"].astype(str)) \
            .set_index("video_id").reindex(ids)
        ev = ev.astype(object).where(ev.notna(), None)
        transcripts, media, paths = (ev[c].tolist() if c in ev else None
                                     for c in ("transcript", "sha256", "path"))
    else:
        transcripts = media = paths = None
    vectors = pooled_means(data.X, data.video_code, n, data.slices)
    pairs = duplicates.duplicate_pairs(ids, transcripts, vectors, media, paths)
    manifest = data.videos["group"].tolist() if "group" in data.videos else None
    codes, merged = duplicates.leakage_groups(ids, pairs, manifest)
    if wants_speaker_groups(data, speaker_groups) and "inferred_group" in data.videos:
        codes, merged[SPEAKER_RULE] = merge_speakers(codes, data.videos["inferred_group"].tolist())
    thresholds = {"transcript_jaccard": duplicates.TRANSCRIPT_JACCARD,
                  "vector_cosine": duplicates.VECTOR_COSINE,
                  "min_deciding_dim": duplicates.MIN_DECIDING_DIM}
    deciding = [m for m, d in data.dims.items() if d >= duplicates.MIN_DECIDING_DIM]
    return codes, GroupReport(n_videos=n, n_groups=int(codes.max()) + 1 if n else 0, merged=merged,
                              thresholds=thresholds, deciding_modalities=deciding, pairs=pairs)


def video_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int = 5,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, grouped, shuffled K folds over videos.

    Args:
        labels: int (n_videos,) class index per video.
        groups: int (n_videos,) leakage group per video.
    Returns:
        n_folds (train_video_rows, valid_video_rows) pairs of int arrays.
    Raises:
        ValueError: fewer groups than folds (names both counts).
    """
    n_groups = len(np.unique(groups))
    if n_groups < n_folds:
        raise InputError(f"only {n_groups} independent video group(s) for {n_folds}-fold CV; "
                         "label more videos or lower n_folds")
    rows = np.arange(len(labels))
    if np.bincount(labels).max() < n_folds:
        # No class has a member per fold (a tiny labelled set): stratifying is impossible, and
        # scikit-learn refuses; plain grouped folds still keep every group on one side.
        return [(tr, va) for tr, va in GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
                .split(rows, labels, groups)]
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Rare classes (fewer members than folds) are expected; sklearn warns about them.
        warnings.simplefilter("ignore", UserWarning)
        return [(tr, va) for tr, va in cv.split(rows, labels, groups)]


def subsample_windows(video_code: np.ndarray, max_per_video: int | None) -> np.ndarray:
    """Row indices keeping at most ``max_per_video`` evenly spaced windows per video.

    Neighbouring windows overlap by half and mostly repeat each other, so a cap
    speeds training several-fold at little cost. ``video_code`` must be grouped
    (all windows of a video contiguous, as in :class:`WindowData`).
    """
    n = len(video_code)
    if max_per_video is None or n == 0:
        return np.arange(n)
    starts = np.r_[0, np.flatnonzero(np.diff(video_code)) + 1]
    lengths = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, lengths)
    size = np.repeat(lengths, lengths)
    k = max_per_video
    # Keep the first window of each of k equal-width bins of the video.
    bin_now = rank * k // size
    bin_prev = (rank - 1) * k // size
    keep = (size <= k) | (rank == 0) | (bin_now != bin_prev)
    return np.flatnonzero(keep)


# ------------------------------------------------------------------ the data a study runs on
@dataclass
class TuneData:
    """Everything a trial needs, computed once per study.

    ``labels`` is the label set of the study's one macro-F1: the classes present among
    its labelled videos (:func:`fusion.metrics.macro_f1` over them, on pooled
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
    #: Whether ``data.X`` was normalised per group (``fusion.groupnorm``); recorded with the model.
    group_norm: bool = False

    @property
    def video_ids(self) -> np.ndarray:
        return self.data.videos["video_id"].to_numpy(dtype=str)

    def pooled(self, stats: str) -> np.ndarray:
        """Video-level pooled features of ``data.X`` (``featurestore.pooling``, the same code
        serving runs), cached per ``stats``."""
        if stats not in self._pooled:
            if self._parent is not None:  # a subset pools nothing itself: rows of its parent's
                parent, rows = self._parent
                self._pooled[stats] = parent.pooled(stats)[rows]
            else:
                d = self.data
                self._pooled[stats] = pool_numpy(d.X, d.video_code, d.n_videos, d.slices, stats)
        return self._pooled[stats]

    def fingerprint(self) -> dict:
        """What the study's trials were scored on; a resumed study must see the same."""
        labels = "\n".join(f"{v}\t{y}" for v, y in zip(self.video_ids, self.y_video))
        return {"n_videos": int(self.data.n_videos), "n_windows": int(len(self.data.X)),
                "dims": self.data.dims, "n_groups": self.group_report.n_groups,
                "labels_sha256": hashlib.sha256(labels.encode()).hexdigest(), "group_norm": self.group_norm,
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


def prepare(con, n_folds: int = 5, seed: int = 0, data: WindowData | None = None,
            speaker_groups: str = "auto") -> TuneData:
    """Load labelled windows (unless ``data`` holds them), form leakage groups (``speaker_groups``:
    see :func:`leakage_groups`) and the video folds."""
    data = data if data is not None else load_window_data(con, labelled=True)
    y_video = data.video_labels()
    groups, report = leakage_groups(data, video_evidence(con, data.videos["video_id"].to_numpy()),
                                    speaker_groups)
    folds = video_folds(y_video, groups, n_folds, seed)
    return TuneData(data=data, y_video=y_video, y_window=y_video[data.video_code], groups=groups,
                    group_report=report, folds=folds, labels=np.unique(y_video), con=con)


# ------------------------------------------------------------------ fitting and scoring a configuration
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


def fit_final(td: TuneData, config: Config, seed: int = 0) -> Any:
    """Fit ``config`` on every labelled video (the deployed estimator)."""
    return fit_videos(td, config, np.arange(td.data.n_videos), seed)


def cross_validate(td: TuneData, config: Config, seed: int = 0, trial: "optuna.Trial | None" = None,
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
                    from optuna import TrialPruned
                    raise TrialPruned()
    finally:
        bar.close()
    oof = OOFPredictions.concat(parts)
    preds = td.aggregator.predict_codes(oof.probs, oof.video_id, oof.window_idx, vid_all)
    scores = {m: macro_f1(td.y_video, p, td.labels) for m, p in preds.items()}
    return CVResult(scores, preds, oof, time.perf_counter() - t0)
