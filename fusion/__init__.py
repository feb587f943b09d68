"""Fusion of window embeddings into video emotion labels.

Public API:
    tune_fusion(store_or_con, ...) -> TuneResult   Optuna search + refit + save
    load_model(path) -> FusionModel                a saved model (predict_proba, method, dims)
    load_window_data(con, labelled=..., modalities=...) -> WindowData
    aggregation_sql(method) / aggregate_windows(...)   the window -> video SQL
"""
from .aggregate import Aggregator, aggregate_windows, aggregation_sql, macro_f1
from .data import WindowData, load_window_data, pool_numpy, pool_video_vectors
from .modelio import FAMILIES, FusionModel, load_model
from .tune import TuneResult, tune_fusion

__all__ = [
    "Aggregator", "FAMILIES", "FusionModel", "TuneResult", "WindowData", "aggregate_windows",
    "aggregation_sql", "load_model", "load_window_data", "macro_f1", "pool_numpy",
    "pool_video_vectors", "tune_fusion",
]
