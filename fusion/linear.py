"""Multinomial logistic regression with imputation + presence mask, scikit-learn style.

Meant for the pooled (one row per video) family: with ~500 videos a well
regularised linear model is hard to beat.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from featurestore.schema import N_CLASSES

from .preprocess import Imputer, expand_proba, sample_weights


class LogRegClassifier(ClassifierMixin, BaseEstimator):
    """L2 logistic regression on standardised, imputed features.

    Args:
        C: inverse regularisation strength. class_weight: None | 'balanced' | 'sqrt'.
        blocks: (start, stop) column ranges of each modality (presence columns).
        max_iter: L-BFGS iterations. n_classes: width of ``predict_proba``.
        n_jobs: BLAS threads during fit/predict (1 is fastest at this size).
    """

    def __init__(self, C: float = 0.1, class_weight: str | None = "balanced",
                 blocks: list[tuple[int, int]] | None = None, max_iter: int = 500,
                 n_classes: int = N_CLASSES, n_jobs: int = 1, random_state: int = 0):
        self.C = C
        self.class_weight = class_weight
        self.blocks = blocks
        self.max_iter = max_iter
        self.n_classes = n_classes
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "LogRegClassifier":
        """Fit on X (n, d) (NaN allowed), y (n,) int. ``groups`` is accepted and unused."""
        y = np.asarray(y, dtype=np.int64)
        self.classes_ = np.arange(self.n_classes)
        self.present_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        w = sample_weights(y, self.n_classes, self.class_weight, sample_weight)
        self.imputer_ = Imputer(self.blocks).fit(X)
        Z = self.imputer_.transform(X)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        if len(self.present_) == 1:
            self.model_ = None
            return self
        # One BLAS thread: L-BFGS on a few hundred rows is latency-bound, and a second
        # OpenBLAS thread made it ~25x slower in CPU time on a 2-core box.
        with warnings.catch_warnings(), threadpool_limits(self.n_jobs):
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_.fit(Z, y, sample_weight=w)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """float32 (n, n_classes) class probabilities; zero for classes absent in training."""
        Z = self.imputer_.transform(X)
        if self.model_ is None:
            return expand_proba(np.ones((len(Z), 1), np.float32), self.present_, self.n_classes)
        with threadpool_limits(self.n_jobs):
            proba = self.model_.predict_proba(Z).astype(np.float32)
        return expand_proba(proba, self.model_.classes_, self.n_classes)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)
