"""Per-video pooling of window vectors: the one implementation training, serving and the
audit share.

Training holds every window vector in memory already (``fusion.data.WindowData``), and
serving pools windows of loose files that are in no store, so pooling is numpy over those
arrays rather than SQL over the store. It lives here, below ``fusion``, because the data
audit (``featurestore.audit``) must compare exactly the vectors CV compares.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

POOL_STATS = ("mean", "mean+std")


def pooled_feature_names(dims: dict[str, int], stats: str) -> list[str]:
    """Column names of :func:`pool_numpy`'s output."""
    names: list[str] = []
    for m, d in dims.items():
        names += [f"{m}_mean_{i}" for i in range(d)]
        if stats == "mean+std":
            names += [f"{m}_std_{i}" for i in range(d)]
        names.append(f"{m}_frac")
    return names


def assemble_pooled(blocks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                    stats: str) -> np.ndarray:
    """float32 (n_videos, p) in :func:`pooled_feature_names` order from per-modality
    ``(mean (n, d), std (n, d), share of windows present (n,))`` blocks."""
    parts = []
    for mean, std, frac in blocks.values():
        parts.append(mean)
        if stats == "mean+std":
            parts.append(std)
        parts.append(frac[:, None])
    return np.concatenate(parts, axis=1).astype(np.float32)


def pool_numpy(X: np.ndarray, video_code: np.ndarray, n_videos: int,
               slices: dict[str, slice], stats: str = "mean+std") -> np.ndarray:
    """Each video's pooled window vectors.

    Args:
        X: float32 (n_windows, d) with NaN rows per missing modality.
        video_code: int (n_windows,) in [0, n_videos).
        slices: modality -> its columns of ``X``.
    Returns:
        float32 (n_videos, p): per modality the mean (and std with ``stats='mean+std'``) of
        the windows that have it (NaN where none do), then the share of windows that have it.
    """
    if stats not in POOL_STATS:
        raise ValueError(f"stats must be one of {POOL_STATS}, got {stats!r}")
    counts = np.bincount(video_code, minlength=n_videos).astype(np.float64)
    blocks = {}
    for m, s in slices.items():
        block = X[:, s].astype(np.float64)
        present = ~np.isnan(block).any(axis=1)
        # Sparse (video x window) indicator: one matmul sums every video's windows at once.
        ind = sparse.csr_matrix((np.ones(int(present.sum())),
                                 (video_code[present], np.arange(int(present.sum())))),
                                shape=(n_videos, int(present.sum())))
        rows = block[present]
        n_present = np.asarray(ind.sum(axis=1)).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (ind @ rows) / n_present[:, None]
            centred = rows - mean[video_code[present]]
            std = np.sqrt((ind @ (centred * centred)) / n_present[:, None])
        blocks[m] = (mean, std, n_present / np.maximum(counts, 1))
    return assemble_pooled(blocks, stats)


def pooled_means(X: np.ndarray, video_code: np.ndarray, n_videos: int,
                 slices: dict[str, slice]) -> dict[str, np.ndarray]:
    """Per modality, float32 (n_videos, d): each video's mean window vector, an all-NaN row
    where no window of the video has the modality (:func:`pool_numpy` without the shares)."""
    pooled = pool_numpy(X, video_code, n_videos, slices, stats="mean")
    out, start = {}, 0
    for m, s in slices.items():
        d = s.stop - s.start
        out[m] = pooled[:, start:start + d]
        start += d + 1                       # the modality's share-of-windows column
    return out
