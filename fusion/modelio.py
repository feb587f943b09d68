"""A fitted fusion model: estimator + the facts needed to use it (modalities, dims, method).

On disk (``<models_dir>/<model_id>/``):
    fusion_model.json   family, default aggregation method, modalities + dims,
                        encoder lineage, params, CV lineage
    mlp.pt + mlp.json   for the MLP (state dict + config), or
    estimator.joblib    for LightGBM / logistic regression
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from featurestore.errors import InputError
from featurestore.schema import AGGREGATIONS, CLASSES, N_CLASSES

from .aggregate import aggregate_windows
from .data import pool_numpy
from .decision import apply_offsets
from .ensemble import combine, video_probs
from .oof import OOFPredictions

WINDOW_FAMILIES = ("mlp", "lightgbm")
POOLED_FAMILIES = ("pooled-lightgbm", "pooled-logreg", "stacked")
FAMILIES = WINDOW_FAMILIES + POOLED_FAMILIES
#: A weighted ensemble of fitted models of the families above (:mod:`fusion.ensemble`).
ENSEMBLE = "ensemble"
#: 2: the imputer is scikit-learn's (``fusion.preprocess.Imputer`` wraps a ColumnTransformer)
#: and the neighbour vote a KNeighborsClassifier. Files of format 1 still load: their pickled
#: imputers and votes are rebuilt on unpickling (``__setstate__`` of both classes), and the
#: MLP's imputer state is the same JSON in both.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MODEL_FILE = "fusion_model.json"


@dataclass
class FusionModel:
    """A fitted fusion model.

    Attributes:
        family: one of ``FAMILIES``. ``pooled-*`` families classify a video from its pooled
            window vectors and give every window of the video that probability vector.
        method: default window -> video aggregation (``aggregate_windows`` in ``sql/aggregate.sql``).
        estimator: fitted scikit-learn-style classifier (``predict_proba`` -> (n, 8)).
        modalities: modalities of ``fusion_vectors`` the model reads, in column order of X.
        dims: modality -> expected dim.
        encoders: modality -> encoder lineage (id/name) that produced the training vectors.
        pool_stats: 'mean' | 'mean+std' for pooled families, else None.
        offsets: per-class offsets added to the estimator's log-probabilities (the decision
            rule for macro-F1, :mod:`fusion.decision`), or None.
    """

    family: str
    method: str
    estimator: Any
    modalities: tuple[str, ...]
    dims: dict[str, int]
    params: dict = field(default_factory=dict)
    encoders: dict = field(default_factory=dict)
    pool_stats: str | None = None
    model_id: str | None = None
    lineage: dict = field(default_factory=dict)
    classes: tuple[str, ...] = CLASSES
    offsets: np.ndarray | None = None
    members: list["FusionModel"] = field(default_factory=list)
    member_weights: list[float] = field(default_factory=list)
    #: Trained on vectors standardised per manifest group (:mod:`fusion.groupnorm`): inputs
    #: must be normalised the same way before ``predict_proba`` (``fusion.predict`` does).
    group_norm: bool = False

    def __post_init__(self) -> None:
        # One shape of encoder lineage, {modality: {"encoder_id", "name", ...}}: model files
        # of format 1 stored the bare id.
        self.encoders = {m: dict(v) if isinstance(v, dict) else {"encoder_id": str(v)}
                         for m, v in (self.encoders or {}).items()}

    @property
    def pooled(self) -> bool:
        """True when every window of a video gets the video's probabilities (needs video_id)."""
        return self.family in POOLED_FAMILIES or self.family == ENSEMBLE

    @property
    def n_features(self) -> int:
        return int(sum(self.dims.values()))

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for m in self.modalities:
            out[m] = slice(start, start + self.dims[m])
            start += self.dims[m]
        return out

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X has shape {X.shape}; this model expects (n_windows, {self.n_features}) "
                             f"= {self.dims} in that order; load vectors with "
                             f"fusion.data.load_window_data(con, labelled=False, modalities={self.modalities!r})")
        return X

    def predict_proba(self, X: np.ndarray, video_id: np.ndarray | None = None) -> np.ndarray:
        """Window probabilities, float32 (n_windows, 8) in ``schema.CLASSES`` order.

        Args:
            X: float (n_windows, sum(dims)), NaN where a modality is missing.
            video_id: (n_windows,) required by pooled families, which pool each video's
                windows (``featurestore.pooling.pool_numpy``, as training did) and repeat its video
                probabilities on every window, so any aggregation method returns them.
        """
        X = self._check(X)
        if not self.pooled:
            return apply_offsets(self.estimator.predict_proba(X), self.offsets)
        if video_id is None:
            raise ValueError(f"family {self.family!r} pools windows per video: pass video_id (n_windows,)")
        uniq, codes = np.unique(np.asarray(video_id).astype(str), return_inverse=True)
        if self.family == ENSEMBLE:
            # Each member's video probabilities (the mean over the video's windows, as the
            # 'mean' aggregation gives), weighted: the probabilities ensemble selection chose on.
            window_idx = np.zeros(len(X), np.int32)   # unused by the per-video mean
            parts = [video_probs(OOFPredictions(member.predict_proba(X, video_id), np.asarray(video_id).astype(str),
                                                window_idx), uniq) for member in self.members]
            return apply_offsets(combine(parts, self.member_weights), self.offsets)[codes]
        feats = pool_numpy(X, codes, len(uniq), self.slices(), self.pool_stats or "mean+std")
        return apply_offsets(self.estimator.predict_proba(feats), self.offsets)[codes]

    def predict_videos(self, X: np.ndarray, video_id: np.ndarray, window_idx: np.ndarray,
                       method: str | None = None) -> pd.DataFrame:
        """Video labels via the aggregation SQL: (model_id, video_id, method, emotion, confidence, probs)."""
        probs = self.predict_proba(X, video_id)
        return aggregate_windows(probs, video_id, window_idx, method or self.method,
                                 self.model_id or "model")

    # ------------------------------------------------------------------ IO
    def save(self, directory: str | Path) -> Path:
        """Write the model under ``directory`` (created); returns the ``fusion_model.json`` path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        members = []
        if self.family == ENSEMBLE:
            estimator_file = None
            for i, (member, w) in enumerate(zip(self.members, self.member_weights)):
                member.save(directory / "members" / f"m{i}")
                members.append({"path": f"members/m{i}", "weight": float(w)})
        elif self.family == "mlp":
            self.estimator.save(directory)
            estimator_file = "mlp.json"
        else:
            joblib.dump(self.estimator, directory / "estimator.joblib")
            estimator_file = "estimator.joblib"
        meta = {
            "format_version": FORMAT_VERSION, "model_id": self.model_id, "family": self.family,
            "method": self.method, "classes": list(self.classes), "modalities": list(self.modalities),
            "dims": self.dims, "encoders": self.encoders, "pool_stats": self.pool_stats,
            "params": self.params, "estimator_file": estimator_file, "lineage": self.lineage,
            "offsets": None if self.offsets is None else [float(b) for b in self.offsets],
            "members": members, "group_norm": self.group_norm,
        }
        path = directory / MODEL_FILE
        path.write_text(json.dumps(meta, indent=2, default=_json_default))
        return path


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def load_model(path: str | Path, device: str = "auto") -> FusionModel:
    """Load a model saved by :meth:`FusionModel.save` (``path`` = its directory or JSON file).

    Raises:
        FileNotFoundError: no ``fusion_model.json`` there.
        ValueError: a format this version cannot read, classes other than ``schema.CLASSES``,
            or an unknown family.
    """
    path = Path(path)
    meta_path = path / MODEL_FILE if path.is_dir() else path
    if not meta_path.exists():
        raise FileNotFoundError(f"no {MODEL_FILE} at {path}; pass a directory written by tune-fusion")
    meta = json.loads(meta_path.read_text())
    version = meta.get("format_version", 1)
    if version not in READABLE_FORMATS:
        raise InputError(f"{meta_path}: model file format {version}; this version of the project reads "
                         f"formats {list(READABLE_FORMATS)}: upgrade it (the file is newer) or retrain")
    if tuple(meta["classes"]) != CLASSES:
        raise InputError(f"{meta_path}: model classes {meta['classes']} differ from schema.CLASSES "
                         f"{list(CLASSES)}; retrain the model")
    family = meta["family"]
    if family not in FAMILIES + (ENSEMBLE,):
        raise InputError(f"{meta_path}: unknown family {family!r}; expected one of {FAMILIES + (ENSEMBLE,)}")
    if meta["method"] not in AGGREGATIONS:
        raise InputError(f"{meta_path}: unknown aggregation {meta['method']!r}")
    directory = meta_path.parent
    members = [load_model(directory / m["path"], device=device) for m in meta.get("members") or []]
    if family == ENSEMBLE:
        estimator = None
    elif family == "mlp":
        from .mlp import MLPClassifier
        estimator = MLPClassifier.load(directory, device=device)
    else:
        estimator = joblib.load(directory / meta["estimator_file"])
    if estimator is not None and getattr(estimator, "n_classes", N_CLASSES) != N_CLASSES:
        raise InputError(f"{meta_path}: estimator predicts {estimator.n_classes} classes, expected {N_CLASSES}")
    return FusionModel(family=family, method=meta["method"], estimator=estimator,
                       modalities=tuple(meta["modalities"]), dims={k: int(v) for k, v in meta["dims"].items()},
                       params=meta.get("params", {}), encoders=meta.get("encoders", {}),
                       pool_stats=meta.get("pool_stats"), model_id=meta.get("model_id"),
                       lineage=meta.get("lineage", {}),
                       offsets=None if meta.get("offsets") is None else np.asarray(meta["offsets"], np.float64),
                       members=members, member_weights=[float(m["weight"]) for m in meta.get("members") or []],
                       group_norm=bool(meta.get("group_norm", False)))
