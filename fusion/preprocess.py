"""Shared pieces of the estimators: labels, input checks, imputation + presence mask, class
weights, the inner split."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

CLASS_WEIGHTS = (None, "balanced", "sqrt")


class LabelSpaceMixin:
    """Labels, input checks and tags shared by the fusion classifiers (mixed in before
    ``ClassifierMixin, BaseEstimator``).

    Two label spaces, chosen by the ``n_classes`` parameter:

    * an int (the project's use, ``schema.N_CLASSES``): ``y`` holds class indices
      0..n_classes-1 and ``predict_proba`` always has ``n_classes`` columns, zero for a
      class a fit did not see, so the probabilities of models fitted on different folds
      line up column for column;
    * None (scikit-learn's convention): the classes are those of ``y`` (any labels),
      ``classes_`` lists them and ``predict_proba`` has one column each.

    Inputs may hold NaN (a missing modality), never inf; ``n_features_in_`` is checked.
    """

    def _validate_fit(self, X, y, dtype=(np.float32, np.float64)) -> tuple[np.ndarray, np.ndarray]:
        """(X (n, d) float array, y as int64 codes 0..n_classes_-1); sets ``classes_``,
        ``n_classes_`` and ``n_features_in_``."""
        X, y = validate_data(self, X, y, dtype=list(dtype), ensure_all_finite="allow-nan")
        check_classification_targets(y)
        if self.n_classes is None:
            self.classes_, codes = np.unique(y, return_inverse=True)
        else:
            codes = np.asarray(y)
            if (not np.issubdtype(codes.dtype, np.number) or np.any(codes != np.round(codes))
                    or codes.min() < 0 or codes.max() >= self.n_classes):
                raise ValueError(f"y must hold class indices 0..{self.n_classes - 1} (schema.CLASSES order) "
                                 f"with n_classes={self.n_classes}; got values {np.unique(codes)[:10]}. "
                                 "Pass n_classes=None to learn the classes from y")
            self.classes_ = np.arange(self.n_classes)
        self.n_classes_ = len(self.classes_)
        return X, np.asarray(codes, dtype=np.int64)

    def _validate_predict(self, X, dtype=(np.float32, np.float64)) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=list(dtype), ensure_all_finite="allow-nan",
                             ensure_min_samples=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n,) the most probable class of each row (an entry of ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def __setstate__(self, state: dict) -> None:
        if "classes_" in state and "n_classes_" not in state:  # pickled by model format 1
            state = {**state, "n_classes_": len(state["classes_"])}
        super().__setstate__(state)


def _block_present(X: np.ndarray) -> np.ndarray:
    """float32 (n, 1): 1 where a row has no NaN in ``X`` (the columns of one modality's block)."""
    return (~np.isnan(np.asarray(X, dtype=np.float64)).any(axis=1)).astype(np.float32)[:, None]


class Imputer(TransformerMixin, BaseEstimator):
    """Train-mean imputation, standardisation and a per-modality presence mask.

    ``transform`` maps (n, d) with NaN blocks to float32 (n, d + n_blocks): the standardised
    imputed values, then one 0/1 column per block saying whether it was present. A block is
    one modality's columns; a row counts as present in a block when none of its values
    there is NaN.

    The work is scikit-learn's, one ``ColumnTransformer`` (``transformer_``): over every
    column ``SimpleImputer(strategy="mean", keep_empty_features=True)`` then
    ``StandardScaler`` (centring only without ``standardise``; a column NaN in every training
    row is imputed 0 and left unscaled), and per block a ``FunctionTransformer`` making its
    presence column. What this thin class adds is what scikit-learn has no word for:
    ``SimpleImputer(add_indicator=True)`` / ``MissingIndicator`` flag each *column*, while a
    modality is missing as a whole, so the models get one flag per block (per-column flags
    would add 384 identical columns for a text block alone); and a JSON state for model
    files (:meth:`state`, :meth:`from_state`).
    """

    def __init__(self, blocks: list[tuple[int, int]] | None = None, standardise: bool = True):
        self.blocks = blocks
        self.standardise = standardise

    def _blocks(self, d: int) -> list[tuple[int, int]]:
        return [tuple(b) for b in self.blocks] if self.blocks else [(0, d)]

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Imputer":
        """Learn each column's mean and spread from X (n, d) float, NaN where missing."""
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        d = X.shape[1]
        values = Pipeline([("impute", SimpleImputer(strategy="mean", keep_empty_features=True)),
                           ("scale", StandardScaler(with_std=self.standardise))])
        presence = [(f"present{i}", FunctionTransformer(_block_present), slice(a, b))
                    for i, (a, b) in enumerate(self._blocks(d))]
        self.transformer_ = ColumnTransformer([("values", values, slice(0, d)), *presence],
                                              sparse_threshold=0.0).fit(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """float32 (n, d + n_blocks): the standardised imputed values, then the presence columns."""
        check_is_fitted(self)
        X = check_array(X, dtype=np.float32, ensure_all_finite="allow-nan", ensure_min_samples=0)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but Imputer is expecting {self.n_features_in_} "
                             f"features as input: expected X of shape (n, {self.n_features_in_}), got {X.shape}")
        return np.asarray(self.transformer_.transform(X), dtype=np.float32)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float32"]  # what the models and torch take
        return tags

    def _values(self) -> Pipeline:
        check_is_fitted(self)
        return self.transformer_.named_transformers_["values"]

    @property
    def mean_(self) -> np.ndarray:
        """float32 (d,): each column's training mean (0 for a column without any value)."""
        return self._values().named_steps["impute"].statistics_.astype(np.float32)

    @property
    def scale_(self) -> np.ndarray:
        """float32 (d,): what each centred column is divided by (1 where constant, or all 1
        without ``standardise``)."""
        scale = self._values().named_steps["scale"].scale_
        return (np.ones(self.n_features_in_) if scale is None else scale).astype(np.float32)

    def state(self) -> dict:
        """JSON-able fitted state (for model files)."""
        return {"blocks": self.blocks, "standardise": self.standardise,
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "n_features_in": self.n_features_in_}

    @classmethod
    def from_state(cls, state: dict) -> "Imputer":
        """The imputer of a :meth:`state` (model format 1's hand-written imputer saved the same).

        The steps are refitted on the two rows ``mean - scale`` and ``mean + scale``, whose
        column means and (population) spreads are ``mean`` and ``scale``: public API only,
        no fitted attribute of scikit-learn's set by hand.
        """
        blocks = [tuple(b) for b in state["blocks"]] if state["blocks"] else None
        mean = np.asarray(state["mean"], np.float64)
        scale = np.asarray(state["scale"], np.float64)
        if not len(mean) == len(scale) == int(state["n_features_in"]):
            raise ValueError(f"imputer state for {state['n_features_in']} features has {len(mean)} means "
                             f"and {len(scale)} scales")
        return cls(blocks, state["standardise"]).fit(np.stack([mean - scale, mean + scale]))

    def __setstate__(self, state: dict) -> None:
        if "transformer_" not in state and "mean_" in state:
            # Pickled by model format 1 (the hand-written imputer: mean_, scale_ arrays).
            state = Imputer.from_state({"blocks": state["blocks"], "standardise": state["standardise"],
                                        "mean": state["mean_"], "scale": state["scale_"],
                                        "n_features_in": state["n_features_in_"]}).__getstate__()
        super().__setstate__(state)


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
    """Final per-sample weights: ``sample_weight`` x class weight, normalised to mean 1.

    Raises ValueError for weights that are not (n,) finite and non-negative, or all zero.
    """
    base = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    if base.shape != (len(y),) or not np.all(np.isfinite(base)) or np.any(base < 0):
        raise ValueError(f"sample_weight must be {len(y)} finite non-negative numbers, got shape {base.shape}")
    if not base.any():
        raise ValueError("sample weights are all zero: at least one sample must weigh more than zero")
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
