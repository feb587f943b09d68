"""The store's ``models`` table, read side: which fitted models a store holds and which is current.

The model registry (:mod:`fusion.registry`) writes the rows and owns the model files; this
module only reads rows, so that the store's own consumers (the submission export) can ask
which model and default aggregation to use without importing the model layer above them.
:mod:`fusion.registry` re-exports every name here.

A model is *current* when it was trained on the store's current labelled set: the lineage's
``labels_sha256`` equals :func:`labelled_set`'s hash now.
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import duckdb

from .errors import StoreError
from .sqlfiles import define_rules, read_sql

if TYPE_CHECKING:
    from .store import FeatureStore

__all__ = ["ModelLookupError", "current_model", "labelled_set", "list_models", "lookup_model",
           "model_lineage", "model_row"]


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
