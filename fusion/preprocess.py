"""Shared pieces of the estimators: imputation + presence mask, class weights, inner split."""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

CLASS_WEIGHTS = (None, "balanced", "sqrt")


class Imputer:
    """Train-mean imputation, standardisation and a per-modality presence mask.

    ``transform`` maps (n, d) with NaN blocks to (n, d + n_blocks): the standardised
    imputed values, then one 0/1 column per block saying whether it was present.
    A block is one modality's columns; a row counts as present in a block when
    none of its values there is NaN.
    """

    def __init__(self, blocks: list[tuple[int, int]] | None = None, standardise: bool = True):
        self.blocks = blocks
        self.standardise = standardise

    def _blocks(self, d: int) -> list[tuple[int, int]]:
        return list(self.blocks) if self.blocks else [(0, d)]

    def fit(self, X: np.ndarray) -> "Imputer":
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: mean -> 0 below
            mean = np.nanmean(X, axis=0)
            mean = np.where(np.isfinite(mean), mean, 0.0)
            filled = np.where(np.isnan(X), mean, X)
            scale = filled.std(axis=0) if self.standardise else np.ones(X.shape[1])
        self.mean_ = mean.astype(np.float32)
        self.scale_ = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected X of shape (n, {self.n_features_in_}), got {X.shape}")
        masks = [(~np.isnan(X[:, a:b]).any(axis=1)).astype(np.float32) for a, b in self._blocks(X.shape[1])]
        out = (np.where(np.isnan(X), self.mean_, X) - self.mean_) / self.scale_
        return np.concatenate([out, np.stack(masks, axis=1)], axis=1).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def state(self) -> dict:
        """JSON-able fitted state (for model files)."""
        return {"blocks": self.blocks, "standardise": self.standardise,
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "n_features_in": self.n_features_in_}

    @classmethod
    def from_state(cls, state: dict) -> "Imputer":
        imp = cls([tuple(b) for b in state["blocks"]] if state["blocks"] else None, state["standardise"])
        imp.mean_ = np.asarray(state["mean"], np.float32)
        imp.scale_ = np.asarray(state["scale"], np.float32)
        imp.n_features_in_ = int(state["n_features_in"])
        return imp


def class_weight_vector(y: np.ndarray, n_classes: int, mode: str | None,
                        unit_weight: np.ndarray | None = None) -> np.ndarray:
    """Per-class weights (n_classes,) averaging 1 over the samples.

    ``balanced``: inverse class frequency; ``sqrt``: its square root (milder);
    None: all ones. ``unit_weight`` (n,) counts each sample's share (e.g. 1/windows
    of its video) so frequencies are measured in videos, not windows.
    """
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got {mode!r}")
    w = np.ones(n_classes)
    if mode is None:
        return w
    unit = np.ones(len(y)) if unit_weight is None else np.asarray(unit_weight, float)
    freq = np.bincount(y, weights=unit, minlength=n_classes)
    present = freq > 0
    inv = np.zeros(n_classes)
    inv[present] = freq[present].sum() / (present.sum() * freq[present])
    if mode == "sqrt":
        inv = np.sqrt(inv)
    w[present] = inv[present]
    return w


def sample_weights(y: np.ndarray, n_classes: int, class_weight: str | None,
                   sample_weight: np.ndarray | None) -> np.ndarray:
    """Final per-sample weights: ``sample_weight`` x class weight, normalised to mean 1."""
    base = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    w = base * class_weight_vector(y, n_classes, class_weight, base)[y]
    return w * (len(w) / w.sum())


def inner_split(y: np.ndarray, groups: np.ndarray | None, fraction: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, valid_rows) for early stopping; grouped when ``groups`` is given.

    Grouped split keeps all windows of a video on one side, so early stopping
    sees videos the model has not trained on (as in the outer CV).
    """
    rows = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) >= 4:
        gss = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(gss.split(rows, y, groups))
    try:
        sss = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(sss.split(rows, y))
    except ValueError:  # a class with a single member cannot be stratified
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(y))
        k = max(1, int(round(fraction * len(y))))
        return np.sort(perm[k:]), np.sort(perm[:k])


def present_classes(y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes present in ``y``, ``y`` re-coded to 0..len(present)-1): estimators train
    only on the classes they saw and :func:`expand_proba` maps back to all ``n_classes``."""
    present = np.unique(y)
    remap = np.full(n_classes, -1)
    remap[present] = np.arange(len(present))
    return present, remap[y]


def expand_proba(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, len(present)) probabilities over the trained classes -> (n, n_classes), zeros elsewhere."""
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float32)
    out[:, present] = proba
    return out
