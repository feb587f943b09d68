"""How stable is the pooled-logreg choice of C on the real transcripts?

Per video, the mean e5-small vector of its windows (as the pooled families see
it); the fusion package's own ``LogRegClassifier`` (balanced class weights);
scored two ways, both grouped by the project's leakage groups
(``fusion.cv.prepare``: ``featurestore.duplicates`` on transcripts and pooled
vectors, what tuning uses), and both with the project's one macro-F1
(``fusion.metrics.macro_f1``):

* grouped stratified 5-fold CV, video macro-F1 of the pooled out-of-fold
  predictions over the classes of all labelled videos, for three fold seeds;
* ten held-out 20 % splits (the first fold of ``StratifiedGroupKFold(5)``
  with seeds 0..9), macro-F1 on the held-out videos over the classes of the
  split's training videos.

    .venv/bin/python -m bench.logreg_c [--C 0.01 0.05 0.2]
    .venv/bin/python -m bench.logreg_c --knn     # C=0.05 alone vs blended with a neighbour vote

``--knn`` compares, on the same folds (8 fold seeds), the linear model alone with
``LogRegClassifier(knn_weight=w, knn_k=k)`` for a few blends, and prints the paired
per-seed differences.

Reuses the e5 cache of ``bench/tune_transcripts.py`` (encodes and caches the
19,658 distinct texts once when absent, about 5 minutes).
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from bench.tune_transcripts import DATA, build_con
from fusion.aggregate import macro_f1
from fusion.linear import LogRegClassifier
from fusion.cv import prepare


def pooled(con) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X mean text vector per video, y labels, groups = the project's leakage groups)."""
    from fusion.data import load_window_data

    data = load_window_data(con)
    videos = data.videos.reset_index(drop=True)
    X = np.zeros((len(videos), data.X.shape[1]), np.float32)
    ok = ~np.isnan(data.X).any(axis=1)
    np.add.at(X, data.video_code[ok], data.X[ok])
    X /= np.maximum(np.bincount(data.video_code[ok], minlength=len(videos)), 1)[:, None]
    groups = prepare(con, 5, 0, data).groups  # rows of data.videos, as X
    return X, videos["label"].to_numpy(), groups


def scores(X, y, groups, C: float, cv_seeds: int = 3, **knn) -> tuple[list[float], list[float]]:
    cv = []
    for seed in range(cv_seeds):
        pred = np.empty(len(y), dtype=object)
        for tr, va in StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(X, y, groups):
            pred[va] = _fit_predict(X, y, tr, va, C, **knn)
        cv.append(macro_f1(y, pred, np.unique(y)))
    held = []
    for seed in range(10):
        tr, va = next(StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(X, y, groups))
        held.append(macro_f1(y[va], _fit_predict(X, y, tr, va, C, **knn), np.unique(y[tr])))
    return cv, held


def _fit_predict(X, y, tr, va, C, **knn):
    classes = np.array(sorted(set(y)))
    code = {c: i for i, c in enumerate(classes)}
    m = LogRegClassifier(C=C, class_weight="balanced", n_classes=len(classes), **knn)
    m.fit(X[tr], np.array([code[c] for c in y[tr]]))
    return classes[m.predict_proba(X[va]).argmax(1)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--C", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    p.add_argument("--knn", action="store_true", help="compare neighbour-vote blends at C=0.05")
    a = p.parse_args(argv)
    X, y, groups = pooled(build_con(DATA))
    if a.knn:
        return compare_knn(X, y, groups)
    print(f"{len(y)} videos, {len(set(groups))} leakage groups; `python -m bench.logreg_c`")
    print("| C | grouped 5-fold CV (3 seeds) | held-out 20 % (10 splits) |\n|---|---|---|")
    for C in a.C:
        cv, held = scores(X, y, groups, C)
        print(f"| {C:g} | {np.mean(cv):.3f} ± {np.std(cv):.3f} | {np.mean(held):.3f} ± {np.std(held):.3f} |")


def compare_knn(X, y, groups) -> None:
    print(f"{len(y)} videos; `python -m bench.logreg_c --knn` (C=0.05, balanced class weights)")
    print("| neighbour vote | grouped 5-fold CV (8 seeds) | paired gain, min over seeds "
          "| held-out 20 % (10 splits) |\n|---|---|---|---|")
    base_cv, base_held = scores(X, y, groups, 0.05, cv_seeds=8)
    print(f"| none | {np.mean(base_cv):.3f} ± {np.std(base_cv):.3f} | | "
          f"{np.mean(base_held):.3f} ± {np.std(base_held):.3f} |")
    for w, k in ((0.2, 10), (0.3, 10), (0.4, 10), (0.3, 5), (0.3, 20)):
        cv, held = scores(X, y, groups, 0.05, cv_seeds=8, knn_weight=w, knn_k=k)
        gain = np.array(cv) - np.array(base_cv)
        print(f"| weight {w}, k={k} | {np.mean(cv):.3f} ± {np.std(cv):.3f} | {gain.mean():+.3f}, "
              f"{gain.min():+.3f} | {np.mean(held):.3f} ± {np.std(held):.3f} |")


if __name__ == "__main__":
    main()
