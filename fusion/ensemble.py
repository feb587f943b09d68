"""Ensemble selection over a study's trials (Caruana et al. 2004, as AutoGluon's weighted ensemble).

Greedy forward selection *with replacement* on the trials' out-of-fold video probabilities:
start from the best single trial, then repeatedly add the trial (any family, any fusion
style, possibly one already in) whose addition gives the best macro-F1 of the averaged
probabilities; the weights are how often each trial was added. The members are refitted on
all labelled videos and saved as one model. The ensemble is scored on the same folds that
chose it, so whether it is deployed is decided on weights selected on the other folds
(:func:`fusion.selection.choose_variant`), and the nested estimate (:mod:`fusion.estimate`)
measures that decision too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import macro_f1
from .oof import OOFPredictions

#: Additions (with replacement) and how many of the study's best trials may be members.
MAX_SIZE = 25
MAX_CANDIDATES = 20


def video_probs(oof: OOFPredictions, video_ids: np.ndarray) -> np.ndarray:
    """float64 (len(video_ids), k): the mean window probability of each video (what
    ``aggregate_windows`` returns as ``probs`` for 'mean'); NaN rows for videos without windows.

    The one aggregation rule lives in ``sql/aggregate.sql``; this is its 'mean' in numpy
    because greedy selection needs every trial's video probabilities and a SQL round trip per
    trial would dominate it. ``tests/test_fusion_ensemble_sql.py`` checks that the two agree.
    """
    index = {v: i for i, v in enumerate(np.asarray(video_ids).astype(str))}
    rows = np.array([index.get(v, -1) for v in oof.video_id.astype(str)])
    ok = rows >= 0
    k = oof.probs.shape[1]
    sums = np.zeros((len(index), k))
    np.add.at(sums, rows[ok], oof.probs[ok].astype(np.float64))
    counts = np.bincount(rows[ok], minlength=len(index)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return sums / counts[:, None]


@dataclass
class EnsembleSelection:
    """Trial number -> weight (summing to 1), and the ensemble's macro-F1 on the study's folds."""

    weights: dict[int, float]
    score: float
    best_single: float
    steps: list[float]
    probs: np.ndarray | None = None    # float32 (n_videos, k): the ensemble's out-of-fold probabilities

    @property
    def n_members(self) -> int:
        return len(self.weights)


def select_ensemble(probs: dict[int, np.ndarray], y: np.ndarray, labels: np.ndarray,
                    max_size: int = MAX_SIZE) -> EnsembleSelection:
    """Greedy forward selection with replacement over ``probs`` (trial -> (n_videos, k) video
    probabilities), maximising macro-F1 over ``labels`` of the averaged probabilities.

    The size with the best score wins (ties: the smaller ensemble).
    """
    if not probs:
        raise ValueError("no trial has out-of-fold probabilities to ensemble")
    trials = sorted(probs)
    P = {t: np.nan_to_num(probs[t], nan=0.0) for t in trials}

    def score(sum_p: np.ndarray) -> float:
        return macro_f1(y, sum_p.argmax(axis=1), labels)

    singles = {t: score(P[t]) for t in trials}
    first = max(trials, key=lambda t: (singles[t], -t))
    counts = {first: 1}
    total = P[first].copy()
    steps = [singles[first]]
    best_size, best_score = 1, singles[first]
    history = [dict(counts)]
    for size in range(2, max_size + 1):
        scored = [(score(total + P[t]), -t, t) for t in trials]
        s, _, t = max(scored)
        total += P[t]
        counts[t] = counts.get(t, 0) + 1
        steps.append(s)
        history.append(dict(counts))
        if s > best_score + 1e-12:
            best_size, best_score = size, s
    chosen = history[best_size - 1]
    n = sum(chosen.values())
    weights = {t: c / n for t, c in sorted(chosen.items())}
    return EnsembleSelection(weights=weights, score=best_score, best_single=singles[first], steps=steps,
                             probs=combine([P[t] for t in weights], list(weights.values())))


def combine(member_probs: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """float32 (n, k): the weighted mean of the members' video probabilities."""
    out = np.zeros_like(np.asarray(member_probs[0], np.float64))
    for p, w in zip(member_probs, weights):
        out += w * np.nan_to_num(np.asarray(p, np.float64), nan=0.0)
    return out.astype(np.float32)
