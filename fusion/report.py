"""Report files written beside a tuned model: confusion matrix, per-class scores, history.

The estimate's files (``confusion.png``, ``per_class.csv``, ``estimate.png``) are drawn from
the saved ``nested_predictions.parquet``: every labelled video predicted by the procedure run
without it. The selection's out-of-fold view (``confusion_selection.png``,
``per_class_selection.csv``) is from the folds that chose the model, and says so: it is
optimistic.

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
from sklearn.metrics import confusion_matrix

from featurestore.schema import CLASSES

from .metrics import class_scores, macro_f1

if TYPE_CHECKING:
    import optuna

__all__ = ["ESTIMATE_TITLE", "SELECTION_TITLE", "confusion", "per_class_table", "plot_confusion",
           "plot_estimate", "plot_history", "read_nested", "write_report"]

#: How each view is labelled in every file and figure title.
ESTIMATE_TITLE = "nested estimate (outer folds)"
SELECTION_TITLE = "selection (optimistic)"


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1, support per class of ``schema.CLASSES`` plus a macro row.

    ``y_true``, ``y_pred``: int (n,) class indices (-1: no prediction). The macro row
    averages only classes with support (as the tuning objective does); its F1 is
    :func:`fusion.metrics.macro_f1` over those classes.
    """
    labels = np.arange(len(CLASSES))
    p, r, f, s = class_scores(y_true, y_pred, labels)
    s = s.astype(np.int64)
    table = pd.DataFrame({"class": CLASSES, "precision": p, "recall": r, "f1": f, "support": s})
    has = s > 0
    macro = pd.DataFrame([{"class": "macro (classes present)", "precision": p[has].mean(),
                           "recall": r[has].mean(), "f1": macro_f1(y_true, y_pred, labels[has]),
                           "support": int(s.sum())}])
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


def read_nested(path: Path) -> dict:
    """The saved nested predictions (``fusion.estimate.PREDICTIONS_FILE``) as arrays.

    Returns ``y_true``, ``y_pred`` (int (n_videos,) class indices, -1 for none),
    ``outer_fold`` (int (n_videos,)), ``labels`` (the macro-F1 label set) and ``meta``
    (the file's ``nested_estimate`` metadata: macro_f1, interval, level).
    """
    import json

    import pyarrow.parquet as pq
    t = pq.read_table(path)
    lookup = {c: i for i, c in enumerate(CLASSES)}
    meta = json.loads(t.schema.metadata[b"nested_estimate"])

    def codes(col: str) -> np.ndarray:
        return np.array([lookup.get(v, -1) for v in t.column(col).to_pylist()], np.int64)
    return {"y_true": codes("label"), "y_pred": codes("predicted"),
            "outer_fold": t.column("outer_fold").to_numpy().astype(np.int64),
            "labels": np.array([lookup[c] for c in meta["macro_f1_labels"]], np.int64), "meta": meta}


def plot_estimate(fold_scores: list[float], estimate: float, interval: tuple[float, float],
                  selection_score: float | None, path: Path, title: str, level: float = 0.95) -> Path:
    """Save one strip plot (macro-F1 on x): each outer fold's score, the pooled nested
    estimate with its bootstrap interval, and the selection score, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rows = ["outer folds, each alone", ESTIMATE_TITLE] + ([SELECTION_TITLE] if selection_score is not None else [])
    y = {r: len(rows) - 1 - i for i, r in enumerate(rows)}
    # Spread the folds a little vertically so equal scores stay visible.
    jitter = np.linspace(-0.15, 0.15, len(fold_scores)) if len(fold_scores) > 1 else np.zeros(1)
    ax.scatter(fold_scores, y[rows[0]] + jitter[:len(fold_scores)], color="tab:gray", alpha=0.8, zorder=3,
               label="one outer fold's videos")
    ax.hlines(y[ESTIMATE_TITLE], interval[0], interval[1], color="tab:blue", lw=4, alpha=0.5,
              label=f"{level:.0%} group-bootstrap interval")
    ax.scatter([estimate], [y[ESTIMATE_TITLE]], color="tab:blue", marker="D", zorder=4,
               label=f"estimate {estimate:.3f} (all videos pooled)")
    if selection_score is not None:
        ax.scatter([selection_score], [y[SELECTION_TITLE]], color="tab:red", marker="x", s=60, zorder=4,
                   label=f"selection score {selection_score:.3f} (chose the model)")
    ax.set_yticks(list(y.values()), list(y.keys()))
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("video macro-F1")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_report(directory: Path, y_true: np.ndarray, y_pred: np.ndarray, study: "optuna.Study",
                 title: str, selection_score: float | None = None,
                 nested_predictions: Path | None = None) -> dict[str, Path]:
    """Write the report under ``directory``; returns its paths by name.

    Args:
        y_true, y_pred: int (n_videos,) class indices: the deployed variant's out-of-fold
            predictions on the folds that chose it (``confusion_selection.png``,
            ``per_class_selection.csv``, titled "selection (optimistic)").
        study: the Optuna study whose trials chose the model (``optimization_history.png``).
        title: what the model is (family, aggregation, variant).
        selection_score: the macro-F1 that chose it, marked on ``estimate.png``.
        nested_predictions: the saved ``nested_predictions.parquet``; when given,
            ``confusion.png``, ``per_class.csv`` and ``estimate.png`` are drawn from it.
    """

    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if nested_predictions is not None:
        nest = read_nested(Path(nested_predictions))
        yt, yp, folds, meta = nest["y_true"], nest["y_pred"], nest["outer_fold"], nest["meta"]
        lo, hi = meta["interval"]
        level = meta.get("level", 0.95)
        figure = f"macro-F1 {meta['macro_f1']:.3f} ({level:.0%} interval {lo:.3f}-{hi:.3f})"
        paths["confusion_png"] = plot_confusion(confusion(yt, yp), directory / "confusion.png",
                                                f"{ESTIMATE_TITLE}: {title}\n{figure}")
        paths["per_class_csv"] = directory / "per_class.csv"
        per_class_table(yt, yp).to_csv(paths["per_class_csv"], index=False, float_format="%.4f")
        fold_scores = [macro_f1(yt[folds == f], yp[folds == f], nest["labels"]) for f in np.unique(folds)]
        paths["estimate_png"] = plot_estimate(fold_scores, meta["macro_f1"], (lo, hi), selection_score,
                                              directory / "estimate.png",
                                              f"nested estimate of the procedure: {figure}; {title}", level)
    sel_title = f"{SELECTION_TITLE}: {title}" + (
        f"\nmacro-F1 {selection_score:.3f} on the folds that chose it" if selection_score is not None else "")
    paths["confusion_selection_png"] = plot_confusion(confusion(y_true, y_pred),
                                                      directory / "confusion_selection.png", sel_title)
    paths["per_class_selection_csv"] = directory / "per_class_selection.csv"
    per_class_table(y_true, y_pred).to_csv(paths["per_class_selection_csv"], index=False, float_format="%.4f")
    paths["history_png"] = plot_history(study, directory / "optimization_history.png")
    return paths
