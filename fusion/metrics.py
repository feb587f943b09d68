"""The project's one macro-F1 and the per-class scores it averages.

Every score of the project -- a fold's, the study's objective, the nested estimate and its
bootstrap, the report's per-class table, the demo's held-out score -- is computed here, from
one (optionally weighted) confusion count. It equals scikit-learn's
``f1_score(average="macro", labels=..., zero_division=0)`` (``tests/test_fusion_metrics.py``
checks, weighted and not); it is written out because the group bootstrap calls it thousands
of times per estimate and one ``bincount`` is far cheaper than scikit-learn's input checks.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["ClassScores", "class_scores", "macro_f1"]


class ClassScores(NamedTuple):
    """Per-class scores over a label set, each float (n_labels,) in the label set's order;
    ``support`` is the (weighted) number of videos of each class."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray


def _codes(y_true, y_pred, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer codes >= 0 for the three arrays, consistent across them.

    Integer input keeps its class indices, and a negative prediction ("no prediction") gets a
    code of its own that no label has; other input (class names) is coded by sorted value."""
    y_true, y_pred, labels = (np.asarray(a) for a in (y_true, y_pred, labels))
    if all(_integral(a) for a in (y_true, y_pred, labels)):
        y_true, y_pred, labels = (a.astype(np.int64) for a in (y_true, y_pred, labels))
        none = int(max(y_true.max(initial=0), y_pred.max(initial=0), labels.max(initial=0))) + 1
        return (np.where(y_true < 0, none, y_true), np.where(y_pred < 0, none, y_pred), labels)
    vocab = np.unique(np.concatenate([a.astype(str) for a in (y_true, y_pred, labels)]))
    return tuple(np.searchsorted(vocab, a.astype(str)) for a in (y_true, y_pred, labels))


def _integral(a: np.ndarray) -> bool:
    """Whether ``a`` holds class indices: integers, or floats with integral values (1.0 is
    class 1, as scikit-learn compares them)."""
    if a.size == 0 or a.dtype.kind in "iub":
        return True
    return a.dtype.kind == "f" and bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))


def class_scores(y_true, y_pred, labels, weight: np.ndarray | None = None) -> ClassScores:
    """Precision, recall, F1 and support of each class of ``labels``.

    Args:
        y_true, y_pred: (n,) class per video: class indices (-1 in ``y_pred``: no prediction,
            always wrong) or class names, consistently with ``labels``.
        labels: (k,) the classes to score. A prediction outside them is a false negative of
            its true class and a false positive of no class.
        weight: (n,) non-negative weight per video (bootstrap counts); None: all 1.
    Returns:
        :class:`ClassScores`; a score whose denominator is 0 is 0 (``zero_division=0``).
    """
    t, p, lab = _codes(y_true, y_pred, labels)
    k = int(max(t.max(initial=0), p.max(initial=0), lab.max(initial=0))) + 1
    w = np.ones(len(t)) if weight is None else np.asarray(weight, np.float64)
    cm = np.bincount(t * k + p, weights=w, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)[lab]
    support = cm.sum(axis=1)[lab]
    predicted = cm.sum(axis=0)[lab]
    return ClassScores(precision=_ratio(tp, predicted), recall=_ratio(tp, support),
                       f1=_ratio(2 * tp, support + predicted), support=support)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0."""
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def macro_f1(y_true, y_pred, labels=None, weight: np.ndarray | None = None) -> float:
    """The project's one macro-F1: the unweighted mean of the per-class F1 over ``labels``.

    ``labels`` is the label set, and it is part of the definition: the classes present among
    the labelled *training* videos -- of the whole study for cross-validation (the labelled
    set being cross-validated), of the training part of a split for a held-out test set
    scored after training. Not the classes of ``y_true`` or ``y_pred`` of the scored videos:
    scikit-learn's ``f1_score(average="macro")`` without ``labels`` averages over
    ``y_true`` union ``y_pred``, a different number whenever a fold or test set lacks a class
    or a prediction falls outside the training classes.

    * A class of ``labels`` that is never predicted correctly scores F1 0
      (``zero_division=0``), including one absent from the scored videos' ``y_true``: it
      still counts in the mean.
    * A prediction outside ``labels`` -- a class the training labels did not have, or -1 for
      "no prediction" (a video without output) -- is an error: a false negative of its
      true class, and it adds no class of its own to the mean.
    * It is computed once on the pooled predictions of every scored video (all out-of-fold
      predictions together, or the whole test set), never as a mean of per-fold scores.

    Args:
        y_true, y_pred: (n,) class per video; ``featurestore.schema.CLASSES`` indices (or
            names, consistently with ``labels``); -1 in ``y_pred``: no prediction.
        labels: the label set above. None falls back to the classes present in ``y_true``
            (only right when ``y_true`` holds exactly the training classes).
        weight: (n,) weight per video (the bootstrap's resample counts); None: all 1.
    Returns:
        The macro-F1 as a float in [0, 1] (0 for an empty label set).
    """
    if labels is None:
        labels = np.unique(np.asarray(y_true))
    f1 = class_scores(y_true, y_pred, labels, weight).f1
    return float(f1.mean()) if len(f1) else 0.0
