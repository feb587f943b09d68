"""The model registry: the store's ``models`` table and the model directories its rows name.

This is the only code that reads or writes ``models`` rows and that decides where a store's
model files live; the file format itself is :mod:`fusion.modelio`'s. A row records the
model's id, family, default aggregation, selection score, directory (relative to the store,
so a moved store still finds it), the feature sets it was trained on, its lineage (JSON)
and the store snapshot its training data was read at.

A model is *current* when it was trained on the store's current labelled set: the lineage's
``labels_sha256`` equals :func:`labelled_set`'s hash now. Prediction and export default to
the newest current model, so a model trained before labels changed is never used silently.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from featurestore.sqlfiles import define_rules, read_sql
from featurestore.store import StoreError

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

    from .modelio import FusionModel

__all__ = ["ModelLookupError", "current_model", "labelled_set", "list_models",
           "load_store_model", "lookup_model", "model_dir", "model_encoder_ids", "model_lineage",
           "model_row", "new_model_dir", "resolve_model_path", "save_model"]


class ModelLookupError(StoreError):
    """No such fitted model in the store (the message lists the fitted ones)."""


# ---------------------------------------------------------------- what a model was trained on
def labelled_set(con: duckdb.DuckDBPyConnection) -> tuple[int, str | None]:
    """(number, SHA-256) of the labelled training videos (the ``training_videos`` view of ``sql/schema.sql``:
    what ``tune-fusion`` learns from), hashed over sorted ``video_id<TAB>label`` lines.

    A model records the pair it was trained on; (0, None) where the relation lacks the
    columns (a bare connection)."""
    define_rules(con)      # trains(): a bare connection has no store catalog that defines it
    try:
        rows = con.execute(read_sql("queries", "training_videos")).fetchall()
    except duckdb.Error:
        return 0, None
    text = "\n".join(f"{v}\t{label}" for v, label, *_ in sorted(rows, key=lambda r: str(r[0])))
    return len(rows), hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_lineage(row: dict) -> dict:
    """The lineage JSON of a ``models`` row as a dict ({} when absent or unreadable)."""
    try:
        return json.loads(row.get("lineage") or "{}")
    except (TypeError, ValueError):
        return {}


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


# ---------------------------------------------------------------- lookups
def list_models(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every ``models`` row, newest first (``sql/queries.sql``: models, newest first by ``model_recency``)."""
    cur = con.execute(read_sql("queries", "models"))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def current_model(con: duckdb.DuckDBPyConnection) -> dict:
    """The newest model trained on the store's current labelled set (its ``models`` row).

    Raises :class:`ModelLookupError` naming every fitted model, what each was trained on,
    and what to do, when none was trained on the current labelled set.
    """
    n, sha = labelled_set(con)
    models = list_models(con)
    for row in models:
        if sha is not None and model_lineage(row).get("labels_sha256") == sha:
            return row
    if not models:
        raise ModelLookupError("the store has no fitted model; run `cli.py tune-fusion --store ...` first")
    listed = "; ".join(f"{r['model_id']} (trained {str(r.get('created_at') or '?')[:19]} on "
                       f"{model_lineage(r).get('n_labelled', '?')} labelled videos)" for r in models[:10])
    more = f" and {len(models) - 10} more" if len(models) > 10 else ""
    raise ModelLookupError(
        f"no model was trained on the store's current labelled set ({n} labelled training videos): "
        f"labels were added or changed since. Fitted models: {listed}{more}. Run `cli.py tune-fusion` "
        "to train on the current labels, or name one with --model ID")


def model_row(con: duckdb.DuckDBPyConnection, model_id: str | None) -> dict:
    """The named model's ``models`` row, or :func:`current_model` when ``model_id`` is None.

    Raises :class:`ModelLookupError` naming the fitted models when there is no such model.
    """
    if model_id is None:
        return current_model(con)
    cur = con.execute(read_sql("queries", "model"), [model_id])
    names = [d[0] for d in cur.description]
    found = cur.fetchone()
    if found is None:
        known = [r["model_id"] for r in list_models(con)]
        raise ModelLookupError(f"no model {model_id!r} in the store; fitted models (newest first): "
                               f"{', '.join(known) or 'none'}")
    return dict(zip(names, found))


def lookup_model(store: "FeatureStore", model_id: str | None = None) -> dict:
    """:func:`model_row` on a connection of its own (opened and closed here)."""
    con = store.connect()
    try:
        return model_row(con, model_id)
    finally:
        con.close()


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
