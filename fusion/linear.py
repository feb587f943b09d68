"""Multinomial logistic regression with imputation + presence mask, scikit-learn style,
optionally blended with a cosine nearest-neighbour vote.

Meant for the pooled (one row per video) family: with ~500 videos a well
regularised linear model is hard to beat, but it smooths over small clusters (reels of
one series or creator, which share phrasing and, often, a label); a neighbour vote
keeps them. On the 498 public transcripts (grouped 5-fold CV, 8 fold seeds) the blend
``knn_weight=0.3, knn_k=10`` scored 0.233 against 0.208 for the linear model alone
(``python -m bench.logreg_c --knn``).

The vote is scikit-learn's ``KNeighborsClassifier`` (cosine metric, soft voting) with
:class:`SimilarityWeights` as its ``weights``; the class weights, which a neighbour weight
cannot see, multiply its class probabilities afterwards (the same as weighting every
neighbour by its class's weight, since the vote is normalised).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from featurestore.schema import N_CLASSES

from .preprocess import Imputer, LabelSpaceMixin, class_weight_vector, expand_proba, sample_weights


class SimilarityWeights:
    """``KNeighborsClassifier(weights=...)`` for a cosine metric: each neighbour weighs
    ``exp(temperature * cosine similarity)``.

    Called with the (n_queries, k) cosine distances ``1 - similarity``; each row is shifted
    by its nearest neighbour's distance, which keeps ``exp`` finite and leaves the
    normalised vote unchanged. A class (not a closure) so fitted models pickle.
    """

    def __init__(self, temperature: float):
        self.temperature = float(temperature)

    def __call__(self, distances: np.ndarray) -> np.ndarray:
        d = np.asarray(distances, dtype=np.float64)
        return np.exp(-self.temperature * (d - d.min(axis=1, keepdims=True)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimilarityWeights) and other.temperature == self.temperature

    def __repr__(self) -> str:
        return f"SimilarityWeights(temperature={self.temperature})"


class LogRegClassifier(LabelSpaceMixin, ClassifierMixin, BaseEstimator):
    """L2 logistic regression on standardised, imputed features.

    Args:
        C: inverse regularisation strength. class_weight: None | 'balanced' | 'sqrt'.
        blocks: (start, stop) column ranges of each modality (presence columns).
        max_iter: L-BFGS iterations. n_classes: width of ``predict_proba`` (classes are indices
            0..n_classes-1), or None for the classes of ``y`` (``fusion.preprocess.LabelSpaceMixin``).
        n_jobs: BLAS threads during fit/predict (1 is fastest at this size).
        knn_weight: share of the neighbour vote in ``predict_proba`` (0: the linear model
            alone). The vote: the ``knn_k`` training rows nearest by cosine similarity of
            the standardised imputed rows (missing values at the training mean), each
            weighted by ``exp(knn_temperature * similarity)`` times its class weight (as
            ``class_weight``), normalised to class probabilities.
    """

    def __init__(self, C: float = 0.1, class_weight: str | None = "balanced",
                 blocks: list[tuple[int, int]] | None = None, max_iter: int = 500,
                 n_classes: int | None = N_CLASSES, n_jobs: int = 1, random_state: int = 0,
                 knn_weight: float = 0.0, knn_k: int = 10, knn_temperature: float = 10.0):
        self.C = C
        self.class_weight = class_weight
        self.blocks = blocks
        self.max_iter = max_iter
        self.n_classes = n_classes
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.knn_weight = knn_weight
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "LogRegClassifier":
        """Fit on X (n, d) (NaN allowed), y (n,) class indices. ``groups`` is accepted and unused."""
        X, y = self._validate_fit(X, y)
        self.present_ = np.unique(y)
        w = sample_weights(y, self.n_classes_, self.class_weight, sample_weight)
        if not 0.0 <= self.knn_weight <= 1.0:
            raise ValueError(f"knn_weight must be in [0, 1], got {self.knn_weight!r}")
        self.imputer_ = Imputer(self.blocks).fit(X)
        Z = self.imputer_.transform(X)
        if self.knn_weight > 0:
            self.knn_ = KNeighborsClassifier(n_neighbors=min(int(self.knn_k), len(y)), metric="cosine",
                                             algorithm="brute", weights=SimilarityWeights(self.knn_temperature))
            # Neighbours by the standardised imputed values (Z's first columns, no presence
            # flags): standardising keeps one modality's large units (pitch in semitones,
            # centroid in Hz) from deciding who is near.
            self.knn_.fit(Z[:, :self.n_features_in_], y)
            self.vote_class_weight_ = class_weight_vector(y, self.n_classes_, self.class_weight)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        self.n_iter_ = 0
        if len(self.present_) == 1:
            self.model_ = None
            return self
        # One BLAS thread: L-BFGS on a few hundred rows is latency-bound, and a second
        # OpenBLAS thread made it ~25x slower in CPU time on a 2-core box.
        with warnings.catch_warnings(), threadpool_limits(self.n_jobs):
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_.fit(Z, y, sample_weight=w)
        self.n_iter_ = int(np.max(self.model_.n_iter_))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """float32 (n, n_classes_) class probabilities; zero for classes absent in training."""
        X = self._validate_predict(X)
        Z = self.imputer_.transform(X)
        if self.model_ is None:
            return expand_proba(np.ones((len(Z), 1), np.float32), self.present_, self.n_classes_)
        with threadpool_limits(self.n_jobs):
            proba = self.model_.predict_proba(Z).astype(np.float32)
        proba = expand_proba(proba, self.model_.classes_, self.n_classes_)
        if self.knn_weight > 0:
            proba = (1.0 - self.knn_weight) * proba + self.knn_weight * self._neighbour_vote(Z)
        return proba.astype(np.float32)

    def _neighbour_vote(self, Z: np.ndarray) -> np.ndarray:
        """float32 (n, n_classes): the class-weighted vote of each row's nearest training rows
        (``Z``: the imputer's output for the rows)."""
        knn = self.knn_.predict_proba(Z[:, :self.n_features_in_])
        vote = expand_proba(knn, self.knn_.classes_, self.n_classes_).astype(np.float64) * self.vote_class_weight_
        return (vote / np.maximum(vote.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def __setstate__(self, state: dict) -> None:
        if "neighbours_" in state:
            # Pickled by model format 1, whose vote was written out here: its unit-length
            # training rows (cosine needs no more), their labels and class weights.
            state = dict(state)
            rows, y, w = state.pop("neighbours_"), state.pop("neighbour_y_"), state.pop("neighbour_w_")
            knn = KNeighborsClassifier(n_neighbors=min(int(state["knn_k"]), len(y)), metric="cosine",
                                       algorithm="brute", weights=SimilarityWeights(state["knn_temperature"]))
            class_weight = np.ones(len(state["classes_"]))
            class_weight[y] = w   # every row of a class carries the class's weight
            state.update(knn_=knn.fit(rows, y), vote_class_weight_=class_weight)
        super().__setstate__(state)
