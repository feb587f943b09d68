"""The model registry: the store's ``models`` table and the model directories its rows name.

This is the only code that writes ``models`` rows and that decides where a store's model
files live; the rows are read by :mod:`featurestore.modeltable` (re-exported here), which the
store's own export uses too, and the file format itself is :mod:`fusion.modelio`'s. A row records the
model's id, family, default aggregation, selection score, directory (relative to the store,
so a moved store still finds it), the feature sets it was trained on, its lineage (JSON)
and the store snapshot its training data was read at.

A model is *current* when it was trained on the store's current labelled set: the lineage's
``labels_sha256`` equals :func:`labelled_set`'s hash now. Prediction and export default to
the newest current model, so a model trained before labels changed is never used silently.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

# The read side of the ``models`` table is the store's (the export needs it too); re-exported.
from featurestore.modeltable import (ModelLookupError, current_model, labelled_set, list_models,
                                     lookup_model, model_lineage, model_row)

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

    from .modelio import FusionModel

__all__ = ["ModelLookupError", "current_model", "labelled_set", "list_models",
           "load_store_model", "lookup_model", "model_dir", "model_encoder_ids", "model_lineage",
           "model_row", "new_model_dir", "resolve_model_path", "save_model"]


def model_encoder_ids(model: "FusionModel", row: dict | None = None) -> dict[str, str]:
    """``{modality: encoder_id}`` the model was trained on: the ``models`` row's ``encoders``
    map when given, else the model's own lineage."""
    ids = stored_encoder_ids(row) if row is not None else {}
    if not ids:
        ids = {m: e.get("encoder_id") for m, e in model.encoders.items()}
    return {m: ids[m] for m in model.modalities if ids.get(m)}


def stored_encoder_ids(row: dict) -> dict[str, str]:
    """A ``models`` row's ``encoders`` column: ``{modality: encoder_id}``."""
    value = row.get("encoders")
    return dict(json.loads(value) if isinstance(value, str) else value or {})


def resolve_model_path(store: "FeatureStore", path: str) -> Path:
    """A ``models.path`` value as a directory: relative paths are relative to the store."""
    p = Path(path)
    return p if p.is_absolute() else store.root / p


def model_dir(store: "FeatureStore", row: dict) -> Path:
    """The directory holding the files of the model of ``models`` row ``row``."""
    return resolve_model_path(store, row["path"])


def load_store_model(store: "FeatureStore", model_id: str | None = None,
                     device: str = "auto") -> tuple["FusionModel", dict]:
    """The named model, or the newest trained on the current labelled set, and its ``models`` row.

    Raises:
        ModelLookupError: no such model (the message lists the fitted ones).
        FileNotFoundError: the row's directory holds no model (names the model).
    """
    from .modelio import load_model

    row = lookup_model(store, model_id)
    try:
        model = load_model(model_dir(store, row), device=device)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"model {row['model_id']}: {exc}") from exc
    model.model_id = row["model_id"]
    return model, row


# ---------------------------------------------------------------- a new model
def new_model_dir(model_id: str, store: "FeatureStore | None" = None,
                  models_dir: str | Path | None = None) -> Path | None:
    """Where a new model's files go: ``models_dir/<model_id>``, else the store's models
    directory; None when there is neither (a bare connection: nothing is written)."""
    target = Path(models_dir) if models_dir is not None else (Path(store.models_dir) if store else None)
    return target / model_id if target is not None else None


def save_model(model: "FusionModel", directory: Path, store: "FeatureStore | None" = None,
               score: float | None = None, snapshot: int | None = None) -> Path:
    """Write ``model``'s files under ``directory`` (created) and, with a ``store``, add its row
    to the store's ``models`` table; returns the ``fusion_model.json`` path.

    Args:
        score: the selection score (the out-of-fold macro-F1 that chose the model).
        snapshot: the store snapshot its training data was read at (None: unknown).
    """
    path = model.save(directory)
    if store is not None:
        _register(store, model, score, Path(directory), snapshot)
    return path


def _register(store: "FeatureStore", model: "FusionModel", score: float | None, directory: Path,
              snapshot: int | None) -> None:
    """The model's ``models`` row; its directory relative to the store, so a moved store still finds it."""
    try:
        path = str(directory.resolve().relative_to(store.root))
    except ValueError:  # saved outside the store
        path = str(directory.resolve())
    encoder_ids = {m: e.get("encoder_id") for m, e in model.encoders.items()}
    store.put("models", [{"model_id": model.model_id, "family": model.family, "method": model.method,
                          "cv_macro_f1": score, "path": path,
                          "encoders": json.dumps(encoder_ids, default=str),
                          "lineage": json.dumps(model.lineage, default=str),
                          "snapshot_id": snapshot, "created_at": datetime.now(timezone.utc)}])
