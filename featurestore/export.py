"""Submission export: ``video_predictions`` -> an ``id,emotion`` CSV by SQL ``COPY``.

Every video of the split gets exactly one row, in manifest order. A video
that failed to embed, or that the model has no prediction for, gets the
training class prior (the most frequent training label) and is listed in
:attr:`ExportResult.fallbacks`, so nothing is dropped silently.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import duckdb
import pandas as pd

# A submission only asks the store's ``models`` table which model and default aggregation to
# export; the registry that writes those rows sits above, in fusion.
from .modeltable import ModelLookupError, model_row
from .schema import AGGREGATIONS, CLASSES, SPLITS
from .sqlfiles import read_sql, sql_literal
from .store import FeatureStore, StoreError


class ExportError(StoreError):
    """The submission cannot be written as asked (nothing was written)."""


@dataclass
class ExportResult:
    """What :func:`export_submission` wrote.

    ``fallbacks`` has one row per video that got the prior instead of a
    prediction: ``video_id, manifest_row, status, reason``.
    """

    path: Path
    split: str
    model_id: str
    method: str
    prior: str
    n_rows: int
    fallbacks: pd.DataFrame = field(repr=False)

    @property
    def n_predicted(self) -> int:
        return self.n_rows - len(self.fallbacks)

    def summary(self) -> str:
        """A few lines for the CLI: where, which model/method, and every fallback row."""
        lines = [f"wrote {self.path}: {self.n_rows} rows (split {self.split}, model {self.model_id}, "
                 f"method {self.method}); {self.n_predicted} predicted, "
                 f"{len(self.fallbacks)} given the training prior {self.prior!r}"]
        for r in self.fallbacks.itertuples(index=False):
            lines.append(f"  {r.video_id} (manifest row {r.manifest_row}): {r.reason}")
        return "\n".join(lines)


# ---------------------------------------------------------------- prior
def train_prior(con: duckdb.DuckDBPyConnection) -> str:
    """Most frequent label of the labelled training videos (``sql/export.sql``: train_prior);
    ties to the first class name."""
    row = con.execute(read_sql("export", "train_prior")).fetchone()
    if row is None:
        raise ExportError("the store has no labelled training video, so there is no class prior "
                          "for videos without a prediction; embed the training manifest into this store")
    return row[0]


# ---------------------------------------------------------------- export
def export_submission(store: FeatureStore, split: str, out_csv: str | Path,
                      method: str | None = None, model_id: str | None = None,
                      video_ids: Sequence[str] | None = None) -> ExportResult:
    """Write the submission CSV ``id,emotion`` for every video of ``split``.

    Parameters
    ----------
    store : the feature store holding ``videos`` and ``window_predictions``.
    split : ``"train"`` or ``"test"``; one row per video of that split, in manifest order.
    out_csv : target path; written to a temporary file beside it and renamed, so a
        reader never sees half a file and a failed export leaves an old file intact.
    method : window->video aggregation (one of ``schema.AGGREGATIONS``); default the
        model's own ``method``.
    model_id : default the newest model trained on the current labelled set. A model that is not
        in ``models`` (predictions written by hand) needs an explicit ``method``.
    video_ids : export only these videos, in this order (a manifest's,
        :func:`featurestore.manifest.manifest_ids`); each must be a video of ``split`` in the
        store. Default: every video of the split the store holds, in manifest order.
    """
    if split not in SPLITS:
        raise ExportError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if method is not None and method not in AGGREGATIONS:
        raise ExportError(f"unknown aggregation method {method!r}; use one of {', '.join(AGGREGATIONS)}")
    out = Path(out_csv)
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a file name such as {out / 'submission.csv'}")
    out.parent.mkdir(parents=True, exist_ok=True)

    con = store.connect()
    try:
        ids = None if video_ids is None else list(dict.fromkeys(map(str, video_ids)))
        if ids is None:
            n_videos, n_with_windows = con.execute(read_sql("export", "split_counts"), [split]).fetchone()
        else:
            n_videos, n_with_windows, missing = con.execute(
                read_sql("export", "manifest_split_counts"), {"split": split, "ids": ids}).fetchone()
            if missing:
                raise ExportError(f"{len(missing)} of the manifest's {len(ids)} video(s) are not {split} "
                                  f"videos of the store {store.root} (first: {missing[0]!r}); embed that "
                                  f"manifest with --split {split} first")
        if n_videos == 0:
            raise ExportError(f"the store {store.root} has no {split} videos; embed the {split} manifest first")
        model_id, method = _resolve_model_method(con, split, model_id, method, n_with_windows > 0)
        prior = train_prior(con)
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            # COPY's target file cannot be a prepared parameter: the one spliced literal.
            con.execute(f"COPY ({read_sql('export', 'submission_rows').rstrip(';')}) "
                        f"TO {sql_literal(str(tmp))} (FORMAT csv, HEADER, DELIMITER ',')",
                        {"prior": prior, "model_id": model_id, "method": method, "split": split, "ids": ids})
            n_rows = _check_written(con, tmp, split, n_videos)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        fallbacks = con.execute(read_sql("export", "fallbacks"),
                                {"model_id": model_id, "method": method, "split": split, "ids": ids}).df()
    finally:
        con.close()
    return ExportResult(path=out.resolve(), split=split, model_id=model_id, method=method,
                        prior=prior, n_rows=n_rows, fallbacks=fallbacks)


def _resolve_model_method(con: duckdb.DuckDBPyConnection, split: str, model_id: str | None,
                          method: str | None, has_windows: bool) -> tuple[str, str]:
    coverage = dict(con.execute(read_sql("export", "model_coverage"), [split]).fetchall())
    if model_id is not None and method is not None and model_id in coverage:
        return model_id, method            # hand-written predictions need no models row
    try:
        row = model_row(con, model_id)
    except ModelLookupError:
        if model_id in coverage:
            raise ExportError(f"model {model_id} has predictions but no row in `models`, so it has no "
                              f"default aggregation; pass method= (one of {', '.join(AGGREGATIONS)})") from None
        raise
    model_id = row["model_id"]
    if model_id not in coverage and has_windows:
        others = ", ".join(f"{m} ({n} videos)" for m, n in coverage.items()) or "none"
        raise ExportError(f"model {model_id} has no predictions for the {split} videos; run "
                          f"`cli.py predict --split {split}` first (models with {split} predictions: {others})")
    method = method or row["method"]
    if method not in AGGREGATIONS:
        raise ExportError(f"model {model_id} records aggregation {method!r}, not one of "
                          f"{', '.join(AGGREGATIONS)}; pass method= explicitly")
    return model_id, method


def _check_written(con: duckdb.DuckDBPyConnection, path: Path, split: str, n_videos: int) -> int:
    """Read the written CSV back: one row per video, distinct ids, class names only."""
    n, n_ids, bad = con.execute(read_sql("export", "check"), [list(CLASSES), str(path)]).fetchone()
    if bad:
        raise ExportError(f"aggregation produced emotion value(s) {bad} that are not class names {CLASSES}")
    if n != n_videos or n_ids != n_videos:
        raise ExportError(f"the {split} export has {n} rows and {n_ids} distinct ids for {n_videos} videos; "
                          "the store's videos or predictions are inconsistent (see `cli.py audit`)")
    return int(n)
