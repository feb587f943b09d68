"""Leakage-safe cross-validation at the video level.

Windows of one video are strongly correlated, and re-uploads of one reel share
their speech and pixels, so folds are built over *groups* of videos: a video,
plus every video that ``featurestore.duplicates`` calls its duplicate (same
media, identical or near-identical transcript, near-identical pooled vectors:
the definition the data audit uses too), plus every video with the same
manifest ``group`` (creator account / speaker). No group is ever split between
the training and validation side of a fold.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from featurestore import duplicates
from featurestore.duplicates import video_evidence
from featurestore.pooling import pooled_means

from .data import WindowData

__all__ = ["GroupReport", "leakage_groups", "video_evidence", "video_folds", "subsample_windows"]


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
        return (f"{self.n_videos} videos -> {self.n_groups} groups (merged: "
                f"{m.get('transcript', 0)} by transcript, {m.get('near_transcript', 0)} by near transcript, "
                f"{m.get('vectors', 0)} by pooled vectors, {m.get('media', 0)} by media, "
                f"{m.get('manifest_group', 0)} by manifest group)")

    def as_dict(self) -> dict:
        """JSON-able: counts, merges per rule, thresholds, deciding modalities, the description."""
        return {"n_videos": int(self.n_videos), "n_groups": int(self.n_groups),
                "merged": {k: int(v) for k, v in self.merged.items()},
                "thresholds": dict(self.thresholds), "deciding_modalities": list(self.deciding_modalities),
                "n_pairs": int(len(self.pairs)), "description": self.describe()}


def leakage_groups(data: WindowData, evidence: pd.DataFrame | None = None) -> tuple[np.ndarray, GroupReport]:
    """Group id per video (rows of ``data.videos``) that CV must never split.

    Args:
        data: the windows; each video's mean-pooled vector per modality is compared
            (``featurestore.pooling.pooled_means``, centred over ``data``'s videos).
        evidence: :func:`video_evidence` rows (video_id, transcript, sha256, path) for the
            videos; None (or a video missing from it) compares vectors only.
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
        raise ValueError(f"only {n_groups} independent video group(s) for {n_folds}-fold CV; "
                         "label more videos or lower n_folds")
    rows = np.arange(len(labels))
    if np.bincount(labels).max() < n_folds:
        # No class has a member per fold (a tiny labelled set): stratifying is impossible, and
        # scikit-learn refuses; plain grouped folds still keep every group on one side.
        from sklearn.model_selection import GroupKFold
        return [(tr, va) for tr, va in GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
                .split(rows, labels, groups)]
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    import warnings
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
