"""Per-speaker (per manifest ``group``) normalisation of window vectors.

Emotion in speech is a departure from the speaker's own voice: a high pitch is anger for
one actor and neutral for another. Each window vector is therefore standardised, dimension
by dimension, by the mean and spread of all windows of its group (the manifest ``group``:
an actor, a speaker, a creator account) in the store: every video of the group, labelled or
not, test videos included. No label enters the statistics, so using the held-out groups'
own windows is fair (the model sees each new speaker's recordings before judging them, as a
listener does). Videos without a group share one pool (key ``""``).

Where the store has speaker groups (``featurestore.speakers``: the voice clustered where the
manifest names no speaker), a video's pool is its ``speaker_pool`` instead: its manifest group,
else its inferred voice group, and for a video without speech or of a speaker with fewer than
``featurestore.speakers.MIN_SPEAKER_WINDOWS`` stored windows the fallback pool ``"*"``, whose
statistics are those of every window (the pooled statistics).

On the Java-SED speech clips (1008, actors 1-6, 5-fold actor-grouped CV, pooled logistic
regression on the 128 audio descriptors) it lifts macro-F1 from 0.434 to 0.60
(``python -m bench.javanese --corpus speech``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from ._sql import read_sql
from .data import WindowData

#: --group-norm auto on speaker groups: the largest share of videos the fallback may normalise.
MAX_FALLBACK_SHARE = 0.10

NO_GROUP = ""
#: The fallback pool whose statistics are those of every window (featurestore.speakers.POOLED).
POOLED = "*"


def group_key(group) -> str:
    """The statistics pool of a video with manifest group ``group`` (None, NaN, blank: ``""``)."""
    if group is None or (isinstance(group, float) and np.isnan(group)) or str(group).strip() == "":
        return NO_GROUP
    return str(group)


def video_groups(data: WindowData) -> np.ndarray:
    """object (n_videos,): each video's statistics pool: its ``speaker_pool`` where the store has
    speaker groups, else its manifest group (``""`` where none)."""
    if "speaker_pool" in data.videos:
        return np.array([str(g) for g in data.videos["speaker_pool"]], dtype=object)
    if "group" not in data.videos:
        return np.full(data.n_videos, NO_GROUP, dtype=object)
    return np.array([group_key(g) for g in data.videos["group"]], dtype=object)


def window_groups(data: WindowData) -> np.ndarray:
    """str (n_windows,): the statistics pool of each window's video (:func:`video_groups`)."""
    if "group" not in data.videos and "speaker_pool" not in data.videos:
        return np.full(len(data.X), NO_GROUP, dtype=object)
    return video_groups(data)[data.video_code]


@dataclass
class GroupStats:
    """Per group: mean and spread (float64 (d,)) of every dimension over the group's windows."""

    mean: dict[str, np.ndarray]
    scale: dict[str, np.ndarray]
    n_windows: dict[str, int]

    @classmethod
    def fit(cls, X: np.ndarray, groups: np.ndarray) -> "GroupStats":
        """From float (n, d) ``X`` (NaN where a modality is missing) and (n,) group keys."""
        mean, scale, count = {}, {}, {}
        X = np.asarray(X, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN columns: a missing modality
            # POOLED (every window) always: the fallback of a video whose speaker is unknown.
            for g in [*np.unique(groups), POOLED]:
                rows = X if g == POOLED else X[groups == g]
                mu = np.nanmean(rows, axis=0)
                sd = np.nanstd(rows, axis=0)
                mean[g] = np.where(np.isfinite(mu), mu, 0.0)
                scale[g] = np.where(np.isfinite(sd) & (sd > 1e-8), sd, 1.0)
                count[g] = int(len(rows))
        return cls(mean, scale, count)

    def transform(self, X: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """float32 (n, d): each row standardised by its group's statistics.

        Raises:
            KeyError: a group the statistics were not computed over (name it, and what to do).
        """
        out = np.asarray(X, dtype=np.float32).copy()
        for g in np.unique(groups):
            if g not in self.mean:
                raise KeyError(f"group {g!r} has no statistics: compute them over every window of "
                               "the store (fusion.groupnorm.store_group_stats)")
            rows = groups == g
            out[rows] = ((out[rows] - self.mean[g]) / self.scale[g]).astype(np.float32)
        return out


def normalise(data: WindowData, stats: GroupStats) -> WindowData:
    """A copy of ``data`` with every window standardised by its group's statistics."""
    return replace(data, X=stats.transform(data.X, window_groups(data)))


def stats_for(all_windows: WindowData, modalities: dict[str, int]) -> GroupStats:
    """Group statistics over ``all_windows`` for the columns of ``modalities`` (in that order).

    Raises:
        ValueError: a modality missing from ``all_windows`` or of another dim.
    """
    cols = []
    for m, d in modalities.items():
        s = all_windows.slices.get(m)
        if s is None or s.stop - s.start != d:
            raise ValueError(f"modality {m!r} ({d}-D) is not among the store's window vectors "
                             f"{all_windows.dims}: the group statistics cannot be computed")
        cols.append(np.arange(s.start, s.stop))
    return GroupStats.fit(all_windows.X[:, np.concatenate(cols)], window_groups(all_windows))


def store_group_stats(store, encoders: dict[str, str], modalities: dict[str, int],
                      snapshot: int | None = None) -> GroupStats:
    """Group statistics over every stored window (all splits, labelled or not) of ``store``."""
    from .data import load_window_data
    everything = load_window_data(store, encoders=encoders, snapshot=snapshot, labelled=False)
    return stats_for(everything, modalities)


def store_video_pools(con) -> dict[str, str]:
    """video_id -> statistics pool of every video of the store on ``con``, as
    :func:`video_groups` gives them at training (speaker pools where the store has speaker groups)."""
    import pandas as pd

    from .data import with_speakers
    videos = with_speakers(con, con.execute(read_sql("queries", "video_manifest_groups")).to_arrow_table().to_pandas())
    if "speaker_pool" in videos:
        return dict(zip(videos["video_id"].astype(str), videos["speaker_pool"].astype(str)))
    return {str(v): group_key(g) for v, g in zip(videos["video_id"], videos["group"].where(pd.notna(videos["group"]), None))}


def wants_group_norm(data: WindowData) -> bool:
    """'auto': every labelled video has a manifest group, and there are at least two. With
    speaker groups: at least two speakers (manifest or inferred), and at most
    ``MAX_FALLBACK_SHARE`` of the videos normalised by the fallback pool."""
    if "speaker_pool" in data.videos:
        pools = video_groups(data)
        real = pools[pools != POOLED]
        return len(np.unique(real)) >= 2 and np.mean(pools == POOLED) <= MAX_FALLBACK_SHARE
    g = window_groups(data)
    return bool(len(g)) and not np.any(g == NO_GROUP) and len(np.unique(g)) >= 2
