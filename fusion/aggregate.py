"""Window -> video aggregation: the owner of ``sql/aggregate.sql``, which the store's
``video_predictions`` view runs too.

Tuning registers out-of-fold window probabilities as an Arrow relation named
``window_predictions`` in an in-memory DuckDB and runs the very SQL that the
store's ``video_predictions`` view runs, so the tuned score is the score of
the deployed decision rule.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from featurestore.errors import InputError
from featurestore.schema import AGGREGATIONS, CLASSES
from featurestore.sqlfiles import define_rules, read_sql, run_script

# The one macro-F1 is fusion.metrics'; re-exported where the scoring code has always found it.
from .metrics import macro_f1  # noqa: F401


def install_aggregations(con: duckdb.DuckDBPyConnection, temp: bool = False) -> None:
    """Define ``aggregate_windows`` and the ``video_predictions`` view on ``con`` (the store
    runs this in its catalog; ``temp``: as TEMP objects on a connection without one). Needs a
    relation ``window_predictions`` and the rules of ``schema.sql``."""
    run_script(con, "aggregate", "install", temp=temp)


def aggregation_sql(method: str) -> str:
    """A SELECT of ``method``'s video rows ``(model_id, video_id, method, emotion, confidence,
    probs)`` from relation ``window_predictions``, on a connection where
    :func:`install_aggregations` ran (the store's, or an :class:`Aggregator`'s)."""
    _check_methods([method])
    # Returned as text to nest in other queries, so the checked method name is spliced.
    return f"SELECT * FROM aggregate_windows(['{method}'])"


def _check_methods(methods) -> None:
    bad = [m for m in methods if m not in AGGREGATIONS]
    if bad:
        raise InputError(f"unknown aggregation method {', '.join(map(repr, bad))}; "
                         f"one of {', '.join(AGGREGATIONS)}")


def window_predictions_table(probs: np.ndarray, video_id: np.ndarray, window_idx: np.ndarray,
                             model_id: str = "oof") -> pa.Table:
    """Arrow table shaped like the store's ``window_predictions`` (probs FLOAT[n_classes])."""
    probs = np.ascontiguousarray(probs, dtype=np.float32)
    n, k = probs.shape
    return pa.table({
        "model_id": pa.array([model_id] * n, pa.string()),
        "video_id": pa.array(np.asarray(video_id).astype(str), pa.string()),
        "window_idx": pa.array(np.asarray(window_idx, dtype=np.int32), pa.int32()),
        "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel(), pa.float32()), k),
    })


class Aggregator:
    """Runs the aggregation SQL on in-memory window probabilities (one DuckDB kept open)."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None):
        self.con = con if con is not None else duckdb.connect(":memory:")
        define_rules(self.con)
        # The macro binds window_predictions when it is created: an empty stand-in first.
        self.con.register("window_predictions", window_predictions_table(
            np.zeros((0, len(CLASSES)), np.float32), np.zeros(0, str), np.zeros(0, np.int32)))
        try:
            install_aggregations(self.con, temp=True)
        finally:
            self.con.unregister("window_predictions")

    def run(self, probs: np.ndarray, video_id: np.ndarray, window_idx: np.ndarray,
            methods: tuple[str, ...] = AGGREGATIONS, model_id: str = "oof") -> pd.DataFrame:
        """Video predictions for every method: DataFrame of the SQL's output columns.

        Args:
            probs: float (n_windows, n_classes) in ``schema.CLASSES`` order.
            video_id, window_idx: (n_windows,) keys of each row.
        """
        table = window_predictions_table(probs, video_id, window_idx, model_id)
        self.con.register("window_predictions", table)
        try:
            _check_methods(methods)
            return self.con.execute(read_sql("aggregate", "video_labels"), [list(methods)]).df()
        finally:
            self.con.unregister("window_predictions")

    def predict_codes(self, probs: np.ndarray, video_id: np.ndarray, window_idx: np.ndarray,
                      videos: np.ndarray, methods: tuple[str, ...] = AGGREGATIONS) -> dict[str, np.ndarray]:
        """method -> int (len(videos),) predicted class index for each of ``videos`` (-1 if absent)."""
        out = self.run(probs, video_id, window_idx, methods)
        lookup = {c: i for i, c in enumerate(CLASSES)}
        videos = np.asarray(videos).astype(str)
        result = {}
        for m in methods:
            part = out[out["method"] == m]
            pred = dict(zip(part["video_id"], part["emotion"].map(lookup)))
            result[m] = np.array([pred.get(v, -1) for v in videos], dtype=np.int64)
        return result


def aggregate_windows(probs: np.ndarray, video_id: np.ndarray, window_idx: np.ndarray,
                      method: str = "mean", model_id: str = "model") -> pd.DataFrame:
    """One-shot aggregation of window probabilities to one row per video (see :class:`Aggregator`)."""
    return Aggregator().run(probs, video_id, window_idx, (method,), model_id)
