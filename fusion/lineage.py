"""What a model was trained on: the store snapshot, the feature sets, the labels, the study.

Tuning reads a store at one snapshot (:func:`open_source`), so every query of a study sees
the same data while other processes keep writing. The lineage written with the model
(:func:`build_lineage`, stored in its file and its ``models`` row) names that snapshot, the
encoders of every modality, the labelled set (:func:`fusion.registry.labelled_set`: how the
registry tells a current model from a stale one), the CV groups and folds, the study and
trial, the estimate and which variant was deployed.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from featurestore.schema import CLASSES

from ._sql import fetch_arrow, read_sql, relation_columns
from .registry import labelled_set

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

    from .cv import TuneData
    from .estimate import NestedEstimate
    from .selection import Selection

__all__ = ["TrainingSource", "build_lineage", "current_encoders", "open_source", "store_snapshot"]


class TrainingSource(NamedTuple):
    """Where a study reads its data (unpacks as ``store, con, root, snapshot, served``).

    ``store`` and ``root`` are None for a bare DuckDB connection; ``snapshot`` is the store
    snapshot every query reads; ``served``: ``{modality: encoder_id}`` of ``fusion_vectors``.
    """

    store: "FeatureStore | None"
    con: Any
    root: Path | None
    snapshot: int | None
    served: dict[str, str]


def open_source(store_or_con, encoders: dict[str, str] | None = None) -> TrainingSource:
    """A FeatureStore, its directory or a DuckDB connection as a :class:`TrainingSource`.

    A store is read at its current snapshot, so the model's lineage can name it.
    ``encoders`` overrides the store's named feature sets on that connection.
    """
    if isinstance(store_or_con, (str, Path)):
        from featurestore.store import FeatureStore
        store_or_con = FeatureStore(store_or_con, create=False)
    if hasattr(store_or_con, "current_snapshot") and hasattr(store_or_con, "models_dir"):
        store = store_or_con
        snapshot = store.current_snapshot()
        served = {m: c["encoder_id"] for m, c in store.feature_sets(snapshot=snapshot).items()}
        served.update(encoders or {})
        con = store.connect(snapshot=snapshot, encoders=served if encoders else None)
        return TrainingSource(store, con, Path(store.root), snapshot, served)
    return TrainingSource(None, store_or_con, None, None, {})


def store_snapshot(con, snapshot: int | None = None) -> dict:
    """What a model was trained on, for its lineage: the store snapshot id and row counts."""
    t = fetch_arrow(con, read_sql("queries", "store_counts"))
    out = {k: v[0] for k, v in t.to_pydict().items()}
    if snapshot is not None:
        out["snapshot_id"] = int(snapshot)
    return out


def current_encoders(con, dims: dict[str, int], served: dict[str, str]) -> dict:
    """modality -> {encoder_id, name, dim, ...} of the feature sets ``fusion_vectors`` served
    (``served``: modality -> encoder_id), with their lineage from the ``encoders`` table."""
    found: dict = {}
    if relation_columns(con, "encoders") is not None:
        for m in dims:
            if served.get(m):
                rows = con.execute(read_sql("queries", "served_encoder"), [served[m]]).to_arrow_table().to_pylist()
                found[m] = rows[0] if rows else {"encoder_id": served[m]}
    return {m: {**found.get(m, {}), "dim": d} for m, d in dims.items()}


def build_lineage(source: TrainingSource, td: "TuneData", sel: "Selection", *, study_name: str,
                  storage: str | None, n_folds: int, seed: int, confirm_repeats: int,
                  y_pred: np.ndarray, confusion: np.ndarray, nested: "NestedEstimate | None",
                  rule: dict, variant: str, group_norm: bool) -> dict:
    """The lineage of a model tuned on ``td`` from ``source``, as JSON-able dict.

    Args:
        y_pred: int (n_videos,) the deployed variant's out-of-fold prediction per video;
            ``confusion``: (8, 8) confusion matrix of the nested estimate's predictions when
            there is one (``confusion_of`` says which), else of ``y_pred``.
        rule: the decision rule (``{"applied", "offsets", "reason"}``); variant: 'single',
            'rule' or 'ensemble'; group_norm: whether vectors were normalised per group.
    """
    config, dims = sel.config, td.data.dims
    n_labelled, labels_sha = labelled_set(source.con)
    ens = sel.ensemble
    lineage = {
        "study": study_name, "storage": storage, "trial": sel.trial,
        "cv_macro_f1": sel.score, "macro_f1_labels": [CLASSES[k] for k in td.labels],
        "confusion": confusion.tolist(), "classes": list(CLASSES),
        "confusion_of": "nested estimate (outer folds)" if nested else "selection (optimistic)",
        "params": sel.params, "config": config.as_dict(), "n_folds": n_folds, "seed": seed,
        "groups": td.group_report.as_dict(), "n_videos": td.data.n_videos,
        "n_windows": int(len(td.data.X)), "columns": list(dims), "dims": dims,
        "labels_sha256": labels_sha, "n_labelled": n_labelled,
        "estimate": nested.as_dict() if nested else None, "decision_rule": rule, "variant": variant,
        "group_norm": group_norm,
        "ensemble": ({"weights": {str(t): w for t, w in ens.weights.items()},
                      "members": {str(t): sel.member_configs[t].as_dict() for t in ens.weights},
                      "oof_macro_f1": ens.score, "best_single_oof_macro_f1": ens.best_single,
                      "deployed": variant == "ensemble"} if ens is not None else None),
        "store_snapshot": store_snapshot(source.con, source.snapshot),
        "trained_at": datetime.now(timezone.utc).isoformat(),
    }
    if sel.confirmation is not None:
        c = sel.confirmation
        lineage["confirmation"] = {"fold_seeds": [seed + 1000 * r for r in range(confirm_repeats + 1)],
                                   "mean_macro_f1": c.mean, "scores": c.scores, "candidates": c.candidates}
    if "text" in dims and source.store is not None:
        from featurestore.embed import matching_text_unit, text_origins
        # How new files' ASR text must be windowed to look like the training windows.
        lineage["text_unit"] = matching_text_unit(source.store)
        # Where the training text came from, so predictions on other text can say so.
        lineage["text_origins"] = text_origins(source.store)
    return lineage
