"""Modality specialists and a fusion stage over their out-of-fold probabilities.

Early fusion concatenates a 3-D face vector, 128 audio descriptors and a 384-D text vector
into one row for one model, so a strong small signal drowns in a large block that carries
none. Here each modality has its own specialist (a regularised logistic regression on that
modality's pooled vector, :class:`fusion.linear.LogRegClassifier`), and a fusion stage
learns from the specialists' *out-of-fold* class probabilities, cross-fitted over the
training videos' leakage groups, how much each modality deserves:

* ``fusion="stack"``: a multinomial logistic regression over every specialist's
  log-probabilities times its presence flag, plus the presence flags;
* ``fusion="late"``: a weighted sum of the specialists' log-probabilities, one
  non-negative weight per modality fitted for log-loss (weights of missing modalities drop
  out), so a modality with no signal gets a weight near zero (``modality_weights_``).

At prediction the specialists are refitted on all training videos (``specialists_``).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from featurestore.schema import N_CLASSES

from .linear import LogRegClassifier
from .preprocess import LabelSpaceMixin, expand_proba, sample_weights

FUSIONS = ("stack", "late")
_EPS = 1e-6


class SpecialistStack(LabelSpaceMixin, ClassifierMixin, BaseEstimator):
    """Per-modality specialists fused over their cross-fitted probabilities.

    Args:
        blocks: (start, stop) column ranges of each modality in X (pooled layout: each
            block's values; a video has the modality where its block is not all NaN).
        names: modality name per block (for ``modality_weights_``).
        fusion: 'stack' or 'late' (module docstring).
        specialist_C: inverse regularisation of every specialist.
        fusion_C: inverse regularisation of the stacking regression ('stack' only).
        class_weight: None | 'balanced' | 'sqrt', for the specialists and the fusion stage.
        n_inner_folds: cross-fitting folds over ``groups`` inside ``fit``.
        n_classes: width of ``predict_proba`` (classes are indices 0..n_classes-1), or None for
            the classes of ``y`` (``fusion.preprocess.LabelSpaceMixin``).
    """

    def __init__(self, blocks: list[tuple[int, int]] | None = None, names: list[str] | None = None,
                 fusion: str = "stack", specialist_C: float = 0.05, fusion_C: float = 1.0,
                 class_weight: str | None = "balanced", n_inner_folds: int = 5,
                 n_classes: int | None = N_CLASSES, random_state: int = 0):
        self.blocks = blocks
        self.names = names
        self.fusion = fusion
        self.specialist_C = specialist_C
        self.fusion_C = fusion_C
        self.class_weight = class_weight
        self.n_inner_folds = n_inner_folds
        self.n_classes = n_classes
        self.random_state = random_state

    # ------------------------------------------------------------------ helpers
    def _blocks(self, d: int) -> list[tuple[int, int]]:
        return [tuple(b) for b in self.blocks] if self.blocks else [(0, d)]

    def _specialist(self) -> LogRegClassifier:
        return LogRegClassifier(C=self.specialist_C, class_weight=self.class_weight,
                                n_classes=self.n_classes_, random_state=self.random_state)

    @staticmethod
    def _present(X: np.ndarray, block: tuple[int, int]) -> np.ndarray:
        a, b = block
        return ~np.isnan(X[:, a:b]).all(axis=1)

    def _features(self, logps: list[np.ndarray], present: list[np.ndarray]) -> np.ndarray:
        """(n, n_blocks * (k + 1)): each specialist's log-probabilities (0 where missing)
        and its presence flag."""
        cols = []
        for lp, p in zip(logps, present):
            cols.append(np.where(p[:, None], lp, 0.0))
        cols.append(np.stack(present, axis=1).astype(np.float64))
        return np.concatenate(cols, axis=1)

    # ------------------------------------------------------------------ fit
    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "SpecialistStack":
        """Fit on X (n, d) pooled features (NaN where a modality is missing), y (n,) int,
        ``groups`` (n,) leakage groups for the cross-fitting (default: one per row)."""
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion={self.fusion!r}; choose from {FUSIONS}")
        X, y = self._validate_fit(X, y, dtype=(np.float32,))
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        self.present_classes_ = np.unique(y)
        blocks = self._blocks(X.shape[1])
        prior = np.bincount(y, minlength=self.n_classes_) + 1.0
        self.log_prior_ = np.log(prior / prior.sum())
        self.specialists_: list[LogRegClassifier | None] = []
        oof_logps, present = [], []
        for block in blocks:
            has = self._present(X, block)
            present.append(has)
            lp = np.tile(self.log_prior_, (len(y), 1))
            rows = np.flatnonzero(has)
            if len(np.unique(y[rows])) < 2:
                self.specialists_.append(None)
                oof_logps.append(lp)
                continue
            Xb = X[:, block[0]:block[1]]
            n_folds = min(self.n_inner_folds, len(np.unique(groups[rows])))
            if n_folds >= 2:
                for tr, va in GroupKFold(n_splits=n_folds).split(rows, y[rows], groups[rows]):
                    est = self._specialist().fit(Xb[rows[tr]], y[rows[tr]])
                    lp[rows[va]] = np.log(est.predict_proba(Xb[rows[va]]).astype(np.float64) + _EPS)
            self.specialists_.append(self._specialist().fit(Xb[rows], y[rows]))
            oof_logps.append(lp)
        w = sample_weights(y, self.n_classes_, self.class_weight, sample_weight)
        if self.fusion == "stack":
            Z = self._features(oof_logps, present)
            self.meta_ = LogisticRegression(C=self.fusion_C, max_iter=1000, random_state=self.random_state)
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.meta_.fit(Z, y, sample_weight=w) if len(self.present_classes_) > 1 else None
            k = self.n_classes_
            coef = np.abs(self.meta_.coef_) if hasattr(self.meta_, "coef_") else np.zeros((1, len(Z[0])))
            share = np.array([coef[:, i * k:(i + 1) * k].sum() for i in range(len(blocks))])
        else:
            self.weights_ = self._fit_late(oof_logps, present, y, w)
            share = self.weights_.copy()
        total = share.sum()
        names = self.names or [f"block{i}" for i in range(len(blocks))]
        self.modality_weights_ = {n: float(s / total) if total > 0 else 0.0 for n, s in zip(names, share)}
        return self

    def _fit_late(self, logps: list[np.ndarray], present: list[np.ndarray], y: np.ndarray,
                  w: np.ndarray) -> np.ndarray:
        """Non-negative weight per modality minimising the weighted log-loss of
        ``softmax(log_prior * [no modality] + sum_m w_m * present_m * log p_m)``."""
        L = np.stack([np.where(p[:, None], lp, 0.0) for lp, p in zip(logps, present)])  # (m, n, k)
        none = ~np.any(np.stack(present), axis=0)
        base = np.where(none[:, None], self.log_prior_, 0.0)
        rows = np.arange(len(y))

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            wm = np.log1p(np.exp(theta))                       # softplus: w >= 0
            s = base + np.tensordot(wm, L, axes=1)
            s -= s.max(axis=1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=1, keepdims=True)
            value = -(w * np.log(p[rows, y] + 1e-12)).sum() / w.sum()
            g = p.copy()
            g[rows, y] -= 1.0                                  # d loss / d s, per row
            grad_w = np.einsum("nk,mnk->m", g * w[:, None], L) / w.sum()
            return value, grad_w * (1.0 / (1.0 + np.exp(-theta)))
        theta0 = np.full(len(logps), np.log(np.expm1(1.0)))    # every weight 1
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B")
        return np.log1p(np.exp(res.x))

    # ------------------------------------------------------------------ predict
    def _logps(self, X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per block: (n, n_classes_) log-probabilities of its specialist (the log prior where
        the block is missing) and (n,) whether the specialist spoke."""
        logps, present = [], []
        for block, est in zip(self._blocks(self.n_features_in_), self.specialists_):
            has = self._present(X, block)
            lp = np.tile(self.log_prior_, (len(X), 1))
            if est is not None and has.any():
                lp[has] = np.log(est.predict_proba(X[has, block[0]:block[1]]).astype(np.float64) + _EPS)
            logps.append(lp)
            present.append(has & (est is not None))
        return logps, present

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """float32 (n, n_classes_); zero for classes absent in training."""
        X = self._validate_predict(X, dtype=(np.float32,))
        logps, present = self._logps(X)
        if self.fusion == "stack":
            if not hasattr(self.meta_, "coef_"):
                return expand_proba(np.ones((len(X), 1), np.float32), self.present_classes_, self.n_classes_)
            with threadpool_limits(1):
                proba = self.meta_.predict_proba(self._features(logps, present))
            return expand_proba(proba.astype(np.float32), self.meta_.classes_, self.n_classes_)
        none = ~np.any(np.stack(present), axis=0)
        s = np.where(none[:, None], self.log_prior_, 0.0)
        for wm, lp, p in zip(self.weights_, logps, present):
            s = s + wm * np.where(p[:, None], lp, 0.0)
        s[:, np.setdiff1d(np.arange(self.n_classes_), self.present_classes_)] = -np.inf
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
