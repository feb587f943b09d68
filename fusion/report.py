"""Report files written beside a tuned model: confusion matrix, per-class scores, history."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support  # noqa: E402

from featurestore.schema import CLASSES  # noqa: E402


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
    fig, ax = plt.subplots(figsize=(7, 6))
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
    plt.close(fig)
    return path


def plot_history(trials: pd.DataFrame, path: Path) -> Path:
    """Optimisation history: each finished trial's score by family, and the best so far.

    ``trials`` columns: number, value (NaN for pruned), family, state.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    done = trials.dropna(subset=["value"]).sort_values("number")
    for family, part in done.groupby("family"):
        ax.scatter(part["number"], part["value"], label=family, s=22)
    if len(done):
        ax.step(done["number"], done["value"].cummax(), where="post", color="k", lw=1.2, label="best so far")
    pruned = trials[trials["state"] == "PRUNED"]
    if len(pruned):
        ax.scatter(pruned["number"], np.full(len(pruned), ax.get_ylim()[0]), marker="x",
                   color="grey", s=18, label="pruned")
    ax.set_xlabel("trial")
    ax.set_ylabel("video macro-F1 (out of fold)")
    ax.set_title("tune-fusion optimisation history")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(directory: Path, y_true: np.ndarray, y_pred: np.ndarray, trials: pd.DataFrame,
                 title: str) -> dict[str, Path]:
    """Write confusion.png, per_class.csv and optimization_history.png under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    table = per_class_table(y_true, y_pred)
    paths = {
        "confusion_png": plot_confusion(confusion(y_true, y_pred), directory / "confusion.png", title),
        "per_class_csv": directory / "per_class.csv",
        "history_png": plot_history(trials, directory / "optimization_history.png"),
    }
    table.to_csv(paths["per_class_csv"], index=False, float_format="%.4f")
    return paths
