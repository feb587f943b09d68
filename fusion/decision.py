"""A decision rule for macro-F1: per-class offsets added to the model's log-probabilities.

A classifier fitted for log-loss predicts the frequent classes too often for macro-F1,
which weighs every class the same. Adding an offset ``b_k`` to every window's
``log p_k`` (then renormalising) moves the decision boundaries without refitting.
The offsets are fitted on out-of-fold predictions by coordinate ascent over a grid, and
the window -> video aggregation runs inside the loop, so the rule optimises the score
of the deployed pipeline. Fitted offsets overfit a few hundred videos, so whether they are
applied is decided on offsets fitted on the other folds (:func:`fusion.selection.choose_variant`),
and the nested estimate (:mod:`fusion.estimate`) measures that decision with the rest.
"""
from __future__ import annotations

import numpy as np

from .aggregate import Aggregator
from .metrics import macro_f1
from .oof import OOFPredictions

#: Offsets tried for each class (natural-log units): up to e^1.5 ~ 4.5x in odds.
GRID = np.round(np.linspace(-1.5, 1.5, 13), 4)


def apply_offsets(probs: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """float32 (n, k): ``softmax(log probs + offsets)``; ``probs`` unchanged when offsets is None."""
    if offsets is None:
        return probs
    logits = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None)) + np.asarray(offsets, np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _scorer(oof: OOFPredictions, y_video: np.ndarray, videos: np.ndarray, method: str,
            labels: np.ndarray, aggregator: Aggregator):
    """offsets -> macro-F1 of the aggregated predictions of ``videos``."""
    if oof.one_row_per_video:
        # One window per video (pooled families): every aggregation is the argmax.
        order = {v: i for i, v in enumerate(oof.video_id.astype(str))}
        rows = np.array([order.get(v, -1) for v in videos.astype(str)])
        logp = np.log(np.clip(oof.probs[np.maximum(rows, 0)].astype(np.float64), 1e-12, None))

        def score(b: np.ndarray) -> float:
            pred = np.where(rows >= 0, (logp + b).argmax(axis=1), -1)
            return macro_f1(y_video, pred, labels)
        return score

    def score(b: np.ndarray) -> float:
        pred = aggregator.predict_codes(apply_offsets(oof.probs, b), oof.video_id, oof.window_idx,
                                        videos, (method,))[method]
        return macro_f1(y_video, pred, labels)
    return score


def fit_offsets(oof: OOFPredictions, y_video: np.ndarray, videos: np.ndarray, method: str,
                labels: np.ndarray, aggregator: Aggregator | None = None, grid: np.ndarray = GRID,
                passes: int = 2) -> np.ndarray:
    """Offsets (float64 (n_classes,)) maximising macro-F1 over ``labels`` on ``oof``.

    Args:
        oof: out-of-fold window probabilities of the videos ``videos``.
        y_video: int (len(videos),) true class per video.
        method: the aggregation the model deploys.
        labels: the classes macro-F1 averages over (classes outside it keep offset 0).
    Coordinate ascent: each class in turn takes the grid value that scores best with the
    others fixed (ties keep the value nearest 0), ``passes`` times over the classes.
    """
    aggregator = aggregator or Aggregator()
    score = _scorer(oof, np.asarray(y_video), np.asarray(videos), method, labels, aggregator)
    b = np.zeros(oof.probs.shape[1])
    best = score(b)
    by_size = sorted(grid, key=abs)  # ties go to the smallest move
    for _ in range(passes):
        moved = False
        for k in labels:
            current = b[k]
            for value in by_size:
                if value == current:
                    continue
                b[k] = value
                s = score(b)
                if s > best + 1e-12:
                    best, current, moved = s, value, True
            b[k] = current
        if not moved:
            break
    return b
