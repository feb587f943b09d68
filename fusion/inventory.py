"""What the store's ``models`` table says about each fitted model, for ``cli.py models``.

:func:`models_table` lists every model (one row each: when, what, its estimate, its feature
sets); :func:`model_report` gathers one model's report: the nested estimate with its interval,
the per-class table drawn from its saved nested predictions, its lineage, feature sets and the
store snapshot it was trained on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from featurestore.store import FeatureStore

from . import registry
from ._sql import read_sql
from .estimate import PREDICTIONS_FILE
from .registry import ModelLookupError

__all__ = ["ModelReport", "model_report", "models_table"]


def _catalog(store: FeatureStore) -> tuple[list[dict], str | None]:
    """Every ``models`` row (newest first) and the SHA-256 of the current labelled set."""
    con = store.connect()
    try:
        cur = con.execute(read_sql("queries", "model_catalog"))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        _, sha = registry.labelled_set(con)
    finally:
        con.close()
    return rows, sha


def _feature_sets(row: dict) -> str:
    """``audio=ID,text=ID``: the encoder configuration each modality was read from."""
    return ",".join(f"{m}={e}" for m, e in sorted(registry.stored_encoder_ids(row).items()) if e)


def _summary(row: dict, current_sha: str | None) -> dict:
    """One ``models list`` row of a ``models`` row."""
    lineage = registry.model_lineage(row)
    est = lineage.get("estimate") or {}
    lo, hi = (est.get("interval") or [None, None])[:2]
    return {"model_id": row["model_id"], "created": row.get("created_at"),
            "family": row.get("family"), "variant": lineage.get("variant"), "method": row.get("method"),
            "estimate": est.get("macro_f1"), "interval_low": lo, "interval_high": hi,
            "selection_score": row.get("cv_macro_f1"), "n_labelled": lineage.get("n_labelled"),
            # The model predict and export use when none is named: trained on today's labels.
            "current": current_sha is not None and lineage.get("labels_sha256") == current_sha,
            "feature_sets": _feature_sets(row), "snapshot_id": row.get("snapshot_id")}


def models_table(store: FeatureStore) -> pd.DataFrame:
    """Every fitted model of ``store``, newest first: id, created, family and variant, the
    nested estimate (macro-F1 and interval; None when trained with ``--estimate off``), the
    selection score, whether it is trained on the current labels, feature sets and snapshot."""
    rows, sha = _catalog(store)
    columns = ["model_id", "created", "family", "variant", "method", "estimate", "interval_low",
               "interval_high", "selection_score", "n_labelled", "current", "feature_sets", "snapshot_id"]
    return pd.DataFrame([_summary(r, sha) for r in rows], columns=columns)


@dataclass
class ModelReport:
    """One model's report (``cli.py models show``)."""

    summary: dict
    lineage: dict
    estimate: dict | None
    per_class: pd.DataFrame | None          # None: no nested predictions saved
    feature_sets: pd.DataFrame
    snapshot: dict
    model_dir: Path
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able: every part, the per-class table and feature sets as lists of rows."""
        return {"model": self.summary, "estimate": self.estimate,
                "per_class": None if self.per_class is None else self.per_class.to_dict("records"),
                "feature_sets": self.feature_sets.to_dict("records"), "snapshot": self.snapshot,
                "model_dir": str(self.model_dir), "lineage": self.lineage, "notes": self.notes}

    def to_text(self) -> str:
        """The report as a reader wants it: headline, estimate, per-class table, lineage."""
        s = self.summary
        lines = [f"model {s['model_id']}: {s['family']} ({s['variant'] or 'single'}), aggregation "
                 f"{s['method']}, created {s['created']}"
                 + ("; the current model (trained on the store's labels)" if s["current"] else "")]
        est = self.estimate
        if est:
            lo, hi = est["interval"]
            lines.append(f"nested estimate: macro-F1 {est['macro_f1']:.3f}, {est.get('level', 0.95):.0%} "
                         f"interval {lo:.3f}-{hi:.3f} over {est.get('n_videos')} labelled videos "
                         f"({est.get('outer_folds')} outer folds)")
        else:
            lines.append("nested estimate: none (trained with --estimate off)")
        if s["selection_score"] is not None:
            lines.append(f"selection score (optimistic: it chose the model): {s['selection_score']:.3f}")
        if self.per_class is not None:
            lines += ["", "per class, from the nested predictions (each video predicted by the "
                      "procedure run without it):", self.per_class.round(3).to_string(index=False)]
        lines += ["", "feature sets:", self.feature_sets.to_string(index=False) if len(self.feature_sets)
                  else "(none recorded)"]
        snap = ", ".join(f"{k} {v}" for k, v in self.snapshot.items())
        lines += ["", f"trained on store snapshot: {snap or 'unknown'}"]
        keep = ("study", "trial", "n_folds", "seed", "n_videos", "n_windows", "n_labelled",
                "labels_sha256", "decision_rule", "group_norm", "text_unit", "text_origins", "trained_at")
        lines += ["", "lineage:"] + [f"  {k}: {json.dumps(self.lineage[k], default=str)}"
                                     for k in keep if self.lineage.get(k) is not None]
        lines += [f"model files: {self.model_dir}"] + self.notes
        return "\n".join(lines)


def _per_class(model_dir: Path) -> pd.DataFrame | None:
    """Precision, recall, F1 and support per class of the saved nested predictions."""
    from .report import per_class_table, read_nested

    path = model_dir / PREDICTIONS_FILE
    if not path.exists():
        return None
    nested = read_nested(path)
    return per_class_table(nested["y_true"], nested["y_pred"])


def _encoder_rows(store: FeatureStore, row: dict) -> pd.DataFrame:
    """The model's feature sets: modality, encoder_id and, where stored, name and dim."""
    ids = {m: e for m, e in registry.stored_encoder_ids(row).items() if e}
    con = store.connect()
    try:
        found = con.execute(read_sql("queries", "encoder_lineage"), [list(ids.values())]).fetchall()
    finally:
        con.close()
    by_id = {r[0]: {"name": r[1], "dim": r[3]} for r in found}
    return pd.DataFrame([{"modality": m, "encoder_id": e, **by_id.get(e, {"name": None, "dim": None})}
                         for m, e in sorted(ids.items())], columns=["modality", "encoder_id", "name", "dim"])


def model_report(store: FeatureStore, model_id: str) -> ModelReport:
    """The report of model ``model_id`` of ``store``.

    Raises :class:`fusion.registry.ModelLookupError` naming the fitted models when there is none
    of that id.
    """
    rows, sha = _catalog(store)
    row = next((r for r in rows if r["model_id"] == model_id), None)
    if row is None:
        known = ", ".join(r["model_id"] for r in rows[:10]) or "none (run `tune-fusion` first)"
        raise ModelLookupError(f"no model {model_id!r} in the store {store.root}; fitted models "
                               f"(newest first): {known}; `models list` shows them")
    lineage = registry.model_lineage(row)
    directory = registry.model_dir(store, row)
    notes = []
    per_class = _per_class(directory)
    if per_class is None and lineage.get("estimate"):
        notes.append(f"note: {directory / PREDICTIONS_FILE} is missing, so there is no per-class table")
    snapshot = dict(lineage.get("store_snapshot") or {})
    if row.get("snapshot_id") is not None:
        snapshot["snapshot_id"] = int(row["snapshot_id"])
    return ModelReport(summary=_summary(row, sha), lineage=lineage, estimate=lineage.get("estimate"),
                       per_class=per_class, feature_sets=_encoder_rows(store, row), snapshot=snapshot,
                       model_dir=directory, notes=notes)
