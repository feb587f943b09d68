"""The search space of ``tune-fusion``: what a trial may fit, written define-by-run.

A trial first picks a model family and a class weighting, then asks only for that family's
hyperparameters (one plain function per family below), then how windows become a video:
window families pick an aggregation and a window cap, pooled families a pooling. The same
functions rebuild a finished trial's configuration from its stored params
(:func:`config_from_trial`), so the space has one definition.

Changing a name, a range or the order of the questions changes what a seeded sampler
draws: bump :data:`SEARCH_SPACE_VERSION` then.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from featurestore.schema import AGGREGATIONS

from .modelio import FAMILIES, WINDOW_FAMILIES

if TYPE_CHECKING:
    import optuna

__all__ = ["SEARCH_SPACE_VERSION", "Config", "config_from_trial", "default_trials", "make_estimator",
           "suggest"]

#: Bumped whenever ``suggest`` or what its trials fit changes; benchmarks put it in their
#: study names so that a re-run never resumes a study sampled from another space.
SEARCH_SPACE_VERSION = 4


@dataclass
class Config:
    """One point of the search space (what a trial fits)."""

    family: str
    method: str
    params: dict
    max_windows: int | None = None
    pool_stats: str | None = None

    def as_dict(self) -> dict:
        return {"family": self.family, "method": self.method, "params": self.params,
                "max_windows": self.max_windows, "pool_stats": self.pool_stats}


# ------------------------------------------------------------------ one function per family
def _mlp(trial: "optuna.Trial") -> dict[str, Any]:
    return {
        "depth": trial.suggest_int("mlp_depth", 1, 3),
        "hidden": trial.suggest_categorical("mlp_hidden", [64, 128, 256, 512]),
        "dropout": trial.suggest_float("mlp_dropout", 0.0, 0.6),
        "lr": trial.suggest_float("mlp_lr", 1e-4, 3e-3, log=True),
        "weight_decay": trial.suggest_float("mlp_weight_decay", 1e-6, 1e-1, log=True),
        "label_smoothing": trial.suggest_float("mlp_label_smoothing", 0.0, 0.2),
    }


def _trees(trial: "optuna.Trial", prefix: str, max_leaves: int,
           min_child: tuple[int, int]) -> dict[str, Any]:
    """LightGBM's space; windows and pooled videos differ only in tree size and leaf counts."""
    return {
        "num_leaves": trial.suggest_int(f"{prefix}_num_leaves", 4, max_leaves, log=True),
        "learning_rate": trial.suggest_float(f"{prefix}_learning_rate", 0.02, 0.3, log=True),
        "feature_fraction": trial.suggest_float(f"{prefix}_feature_fraction", 0.05, 0.6),
        "bagging_fraction": trial.suggest_float(f"{prefix}_bagging_fraction", 0.5, 1.0),
        "min_child_samples": trial.suggest_int(f"{prefix}_min_child_samples", *min_child, log=True),
        "lambda_l1": trial.suggest_float(f"{prefix}_lambda_l1", 1e-3, 10.0, log=True),
        "lambda_l2": trial.suggest_float(f"{prefix}_lambda_l2", 1e-3, 10.0, log=True),
    }


def _lightgbm(trial: "optuna.Trial") -> dict[str, Any]:
    """Trees over windows: thousands of rows, so larger trees and leaves than pooled."""
    return _trees(trial, "lgbm", 63, (10, 300))


def _pooled_lightgbm(trial: "optuna.Trial") -> dict[str, Any]:
    """Trees over one row per video: a few hundred rows, so small trees and leaves."""
    return _trees(trial, "plgbm", 31, (3, 40))


def _pooled_logreg(trial: "optuna.Trial") -> dict[str, Any]:
    return {
        "C": trial.suggest_float("logreg_C", 1e-4, 10.0, log=True),
        "knn_weight": trial.suggest_float("logreg_knn_weight", 0.0, 0.6),
        "knn_k": trial.suggest_categorical("logreg_knn_k", [5, 10, 20]),
    }


def _stacked(trial: "optuna.Trial") -> dict[str, Any]:
    fusion = trial.suggest_categorical("stack_fusion", ["stack", "late"])
    params: dict[str, Any] = {"fusion": fusion,
                              "specialist_C": trial.suggest_float("stack_specialist_C", 1e-3, 1.0, log=True)}
    if fusion == "stack":  # late fusion has no regression of its own to regularise
        params["fusion_C"] = trial.suggest_float("stack_fusion_C", 1e-2, 10.0, log=True)
    return params


_FAMILY_SPACES: dict[str, Callable[["optuna.Trial"], dict[str, Any]]] = {
    "mlp": _mlp, "lightgbm": _lightgbm, "pooled-lightgbm": _pooled_lightgbm,
    "pooled-logreg": _pooled_logreg, "stacked": _stacked,
}


def suggest(trial: "optuna.Trial", families: tuple[str, ...]) -> Config:
    """The search space, define-by-run: each family asks only for its own hyperparameters.

    ``trial`` is an ``optuna.Trial`` (sampling) or ``optuna.trial.FixedTrial`` (replaying
    stored params). Raises ValueError for a family outside :data:`fusion.modelio.FAMILIES`.
    """
    family = trial.suggest_categorical("family", list(families))
    cw = trial.suggest_categorical("class_weight", ["none", "sqrt", "balanced"])
    if family not in _FAMILY_SPACES:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    params: dict[str, Any] = {"class_weight": None if cw == "none" else cw, **_FAMILY_SPACES[family](trial)}
    if family in WINDOW_FAMILIES:
        method = trial.suggest_categorical("method", list(AGGREGATIONS))
        max_windows = trial.suggest_categorical("max_windows", [4, 8, 16, 32])
        return Config(family, method, params, max_windows=max_windows)
    pool_stats = trial.suggest_categorical("pool_stats", ["mean", "mean+std"])
    # One probability vector per video: every aggregation returns it, 'mean' keeps its confidence.
    return Config(family, "mean", params, pool_stats=pool_stats)


def config_from_trial(trial: "optuna.trial.FrozenTrial", families: tuple[str, ...] = FAMILIES) -> Config:
    """Rebuild the Config a finished trial evaluated (replays its params through ``suggest``)."""
    import optuna

    return suggest(optuna.trial.FixedTrial(trial.params), families)


def default_trials(families: tuple[str, ...]) -> list[dict]:
    """Sensible starting points (one per family), enqueued when a study is new."""
    base = {
        "mlp": {"family": "mlp", "class_weight": "balanced", "mlp_depth": 1, "mlp_hidden": 256,
                "mlp_dropout": 0.3, "mlp_lr": 1e-3, "mlp_weight_decay": 1e-3,
                "mlp_label_smoothing": 0.05, "method": "mean", "max_windows": 16},
        "lightgbm": {"family": "lightgbm", "class_weight": "balanced", "lgbm_num_leaves": 15,
                     "lgbm_learning_rate": 0.1, "lgbm_feature_fraction": 0.2,
                     "lgbm_bagging_fraction": 0.8, "lgbm_min_child_samples": 40,
                     "lgbm_lambda_l1": 0.01, "lgbm_lambda_l2": 1.0, "method": "mean", "max_windows": 16},
        "pooled-lightgbm": {"family": "pooled-lightgbm", "class_weight": "balanced",
                            "plgbm_num_leaves": 7, "plgbm_learning_rate": 0.05,
                            "plgbm_feature_fraction": 0.2, "plgbm_bagging_fraction": 0.8,
                            "plgbm_min_child_samples": 8, "plgbm_lambda_l1": 0.01,
                            "plgbm_lambda_l2": 1.0, "pool_stats": "mean"},
        # C: 0.01, 0.05 and 0.2 score within noise of each other on the real transcripts
        # (python -m bench.logreg_c); 0.05 was best in grouped CV, and blending in a
        # 10-neighbour vote at 0.3 beat the linear model alone on every fold seed.
        "pooled-logreg": {"family": "pooled-logreg", "class_weight": "balanced", "logreg_C": 0.05,
                          "logreg_knn_weight": 0.3, "logreg_knn_k": 10, "pool_stats": "mean"},
        # One specialist per modality, fused by one fitted weight each over their cross-fitted
        # probabilities: a strong small modality is not drowned by a large silent one. Late
        # fusion scored above stacking on the raw Java-SED talking-face descriptors
        # (docs/benchmarks.md, section 6: python -m bench.javanese); the study searches both.
        "stacked": {"family": "stacked", "class_weight": "balanced", "stack_fusion": "late",
                    "stack_specialist_C": 0.05, "pool_stats": "mean"},
    }
    return [base[f] for f in families if f in base]


def make_estimator(config: Config, blocks: list[tuple[int, int]], seed: int,
                   names: list[str] | None = None):
    """Unfitted estimator for ``config`` (``blocks`` = column ranges of the modalities ``names``).

    The estimator modules are imported here, so that only the families a study fits load
    their libraries (torch for the MLP, LightGBM for the trees).
    """
    p = dict(config.params)
    if config.family == "mlp":
        from .mlp import MLPClassifier
        return MLPClassifier(blocks=blocks, random_state=seed, max_epochs=40, patience=6, **p)
    if config.family == "lightgbm":
        from .gbm import LGBMClassifier
        return LGBMClassifier(random_state=seed, n_estimators=300, early_stopping_rounds=20, **p)
    if config.family == "pooled-lightgbm":
        from .gbm import LGBMClassifier
        return LGBMClassifier(random_state=seed, n_estimators=500, early_stopping_rounds=40,
                              val_fraction=0.2, **p)
    if config.family == "pooled-logreg":
        from .linear import LogRegClassifier
        return LogRegClassifier(blocks=blocks, random_state=seed, **p)
    if config.family == "stacked":
        from .stacking import SpecialistStack
        return SpecialistStack(blocks=blocks, names=names, random_state=seed, **p)
    raise ValueError(f"unknown family {config.family!r}")
