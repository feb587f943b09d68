"""Fusion of window embeddings into video emotion labels.

Public API:
    tune_fusion(store_or_con, ...) -> TuneResult   Optuna search + refit + save
    load_model(path) -> FusionModel                a saved model (predict_proba, method, dims)
    load_window_data(con, labelled=..., modalities=...) -> WindowData
    aggregation_sql(method) / aggregate_windows(...)   the window -> video SQL

The names are imported on first use (PEP 562), so ``import fusion`` loads neither torch,
LightGBM, Optuna nor matplotlib: prediction with a logistic-regression model never does.

Modules, one concept each: ``space`` (search space), ``cv`` (leakage groups, folds, the
cross-validation loop), ``study`` (Optuna storage and trials), ``selection`` (choosing and
confirming a trial, ensembles of trials), ``registry`` (the store's ``models`` table),
``lineage`` (what a model was trained on), ``modelio`` (the fitted model and its files),
``predict``, ``report``, ``result``; estimators in ``linear``, ``gbm``, ``mlp``, ``stacking``;
``tune`` runs the whole procedure.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "Aggregator": "aggregate", "aggregate_windows": "aggregate", "aggregation_sql": "aggregate",
    "macro_f1": "metrics",
    "WindowData": "data", "load_window_data": "data", "pool_numpy": "data",
    "FAMILIES": "modelio", "FusionModel": "modelio", "load_model": "modelio",
    "TuneResult": "result",
    "tune_fusion": "tune",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ imports on demand
    from .aggregate import Aggregator, aggregate_windows, aggregation_sql  # noqa: F401
    from .metrics import macro_f1  # noqa: F401
    from .data import WindowData, load_window_data, pool_numpy  # noqa: F401
    from .modelio import FAMILIES, FusionModel, load_model  # noqa: F401
    from .result import TuneResult  # noqa: F401
    from .tune import tune_fusion  # noqa: F401


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
