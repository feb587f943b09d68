"""Leakage-safe cross-validation at the video level.

Windows of one video are strongly correlated, and re-uploads of one reel share
their speech and pixels, so folds are built over *groups* of videos:
a video, plus every video with the same transcript, the same pooled embedding,
or the same manifest ``group`` (creator account / speaker). No group is ever
split between the training and validation side of a fold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ._sql import fetch_arrow, read_sql, relation_columns
from .data import WindowData, pool_numpy


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    def union(self, a: int, b: int) -> bool:
        """Merge the sets of ``a`` and ``b``; True when they were different sets."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True

    def union_keys(self, keys: list | np.ndarray) -> int:
        """Merge all indices sharing a key (None/NaN keys ignored); returns merges made."""
        first: dict = {}
        merges = 0
        for i, k in enumerate(keys):
            if k is None or (isinstance(k, float) and np.isnan(k)):
                continue
            if k in first:
                merges += self.union(first[k], i)
            else:
                first[k] = i
        return merges

    def labels(self) -> np.ndarray:
        """int64 (n,): dense group id per element (0..n_groups-1, in first-seen order)."""
        roots = np.array([self.find(i) for i in range(len(self.parent))])
        _, codes = np.unique(roots, return_inverse=True)
        return codes.astype(np.int64)


@dataclass
class GroupReport:
    """How the CV groups were formed (counts of videos and merges)."""

    n_videos: int
    n_groups: int
    merged_by_transcript: int
    merged_by_embedding: int
    merged_by_manifest_group: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def video_transcripts(con, video_ids: np.ndarray) -> list[str | None]:
    """Normalised full transcript per video (``sql/fusion_video_transcripts.sql``), None if silent.

    Returns all None when the connection has no ``windows`` relation with transcripts.
    """
    cols = relation_columns(con, "windows")
    if cols is None or "transcript" not in cols:
        return [None] * len(video_ids)
    t = fetch_arrow(con, read_sql("fusion_video_transcripts")).to_pandas()
    lookup = dict(zip(t["video_id"].astype(str), t["transcript"]))
    return [lookup.get(v) for v in video_ids]


def _embedding_keys(data: WindowData) -> list[bytes | None]:
    """Per video, the bytes of its pooled mean vector rounded to 5 decimals (None if empty)."""
    pooled = pool_numpy(data.X, data.video_code, data.n_videos, data.slices, stats="mean")
    frac_cols = np.cumsum([d + 1 for d in data.dims.values()]) - 1
    means = np.delete(pooled, frac_cols, axis=1)
    keys: list[bytes | None] = []
    rounded = np.round(means.astype(np.float64), 5)
    empty = np.isnan(rounded).all(axis=1)
    rounded = np.where(np.isnan(rounded), np.inf, rounded)  # NaN != NaN would defeat equality
    for row, is_empty in zip(rounded, empty):
        keys.append(None if is_empty else row.tobytes())
    return keys


def leakage_groups(data: WindowData, transcripts: list[str | None] | None = None) -> tuple[np.ndarray, GroupReport]:
    """Group id per video (rows of ``data.videos``) that CV must never split.

    Videos are merged (union-find) when their transcripts are identical, their pooled
    embeddings are identical, or they share a non-NULL manifest ``group``.

    Returns:
        (int64 (n_videos,) group ids, GroupReport).
    """
    n = data.n_videos
    uf = UnionFind(n)
    transcripts = transcripts if transcripts is not None else [None] * n
    by_text = uf.union_keys([t if t else None for t in transcripts])
    by_emb = uf.union_keys(_embedding_keys(data))
    manifest = data.videos["group"].tolist() if "group" in data.videos else [None] * n
    by_group = uf.union_keys([None if (g is None or pd.isna(g) or str(g).strip() == "") else str(g)
                              for g in manifest])
    codes = uf.labels()
    return codes, GroupReport(n_videos=n, n_groups=int(codes.max()) + 1 if n else 0,
                              merged_by_transcript=by_text, merged_by_embedding=by_emb,
                              merged_by_manifest_group=by_group)


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
