"""Report files written beside a tuned model: confusion matrix, per-class scores, history.

Figures are drawn without touching matplotlib's global state: the confusion matrix on a
``Figure`` with its own Agg canvas (no pyplot, no backend switch), the optimisation history
by Optuna's ``plot_optimization_history``, which draws through pyplot: its style sheet is
confined to an ``rc_context`` and its figure closed once saved. matplotlib and Optuna are
imported when a report is written.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from featurestore.schema import CLASSES

if TYPE_CHECKING:
    import optuna

__all__ = ["confusion", "per_class_table", "plot_confusion", "plot_history", "write_report"]


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1, support per class of ``schema.CLASSES`` plus a macro row.

    The macro row averages only classes with support (as the tuning objective does).
    """
    labels = np.arange(len(CLASSES))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    table = pd.DataFrame({"class": CLASSES, "precision": p, "recall": r, "f1": f, "support": s})
    has = s > 0
    macro = pd.DataFrame([{"class": "macro (classes present)", "precision": p[has].mean(),
                           "recall": r[has].mean(), "f1": f[has].mean(), "support": int(s.sum())}])
    return pd.concat([table, macro], ignore_index=True)


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """int (8, 8) confusion matrix, rows = true class, columns = predicted, ``schema.CLASSES`` order."""
    return confusion_matrix(y_true, y_pred, labels=np.arange(len(CLASSES)))


def plot_confusion(cm: np.ndarray, path: Path, title: str) -> Path:
    """Save the confusion matrix (counts, row-normalised colour) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_history(study: "optuna.Study", path: Path) -> Path:
    """Save Optuna's optimisation history of ``study`` (each complete trial's out-of-fold
    macro-F1 and the best so far) as a PNG."""
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = plot_optimization_history(study, target_name="video macro-F1 (out of fold)")
        fig = ax.figure
        try:
            ax.set_title("tune-fusion optimisation history")
            fig.set_size_inches(8, 4.5)
            fig.savefig(path, dpi=110, bbox_inches="tight")
        finally:
            plt.close(fig)
    return path


def write_report(directory: Path, y_true: np.ndarray, y_pred: np.ndarray, study: "optuna.Study",
                 title: str) -> dict[str, Path]:
    """Write confusion.png, per_class.csv and optimization_history.png under ``directory``.

    ``y_true``, ``y_pred``: int (n_videos,) class indices (the deployed variant's out-of-fold
    predictions); ``study``: the Optuna study whose trials chose the model.
    """
    directory.mkdir(parents=True, exist_ok=True)
    table = per_class_table(y_true, y_pred)
    paths = {
        "confusion_png": plot_confusion(confusion(y_true, y_pred), directory / "confusion.png", title),
        "per_class_csv": directory / "per_class.csv",
        "history_png": plot_history(study, directory / "optimization_history.png"),
    }
    table.to_csv(paths["per_class_csv"], index=False, float_format="%.4f")
    return paths
