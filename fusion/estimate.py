"""An honest score: nested grouped cross-validation of the whole tuning procedure.

The study's best score chose the model, so it overstates what unseen videos give
(``docs/benchmarks.md`` section 4 measures by how much). The nested estimate re-runs the
whole procedure inside each outer fold of the study's grouped partition: a fresh study on
the outer training videos only (the same search space, defaults, selection and
confirmation, at a smaller budget), the decision rule and the ensemble fitted on that inner
study's out-of-fold predictions, the choice between single model, rule and ensemble made on
that inner data (:func:`fusion.selection.choose_variant`), the refit, and then predictions
for the outer fold's videos, which none of those steps saw. Every labelled
video is predicted once; the one macro-F1 (:func:`fusion.metrics.macro_f1` over the
study's label set) of those predictions is the estimate, and its interval comes from a
bootstrap over leakage groups (videos that must stay together are resampled together).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from featurestore.schema import CLASSES

from .metrics import macro_f1
from .decision import apply_offsets

#: Bootstrap resamples of the interval and its coverage.
N_BOOTSTRAP = 2000
LEVEL = 0.95
#: Beside a model: every labelled video's outer-fold prediction (what the estimate scored).
PREDICTIONS_FILE = "nested_predictions.parquet"


def macro_f1_weighted(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray,
                      weight: np.ndarray | None = None) -> float:
    """:func:`fusion.metrics.macro_f1` with a weight per video (the bootstrap's resample counts)."""
    return macro_f1(y_true, y_pred, labels, weight)


def _group_codes(groups: np.ndarray) -> tuple[np.ndarray, int]:
    _, codes = np.unique(groups, return_inverse=True)
    return codes, int(codes.max()) + 1 if len(codes) else 0


def _resampled_weights(codes: np.ndarray, n_groups: int, n_boot: int, n_draws: int, seed: int):
    """Per resample, each video's weight: how often its leakage group was among ``n_draws``
    groups drawn with replacement (videos that must stay together are drawn together)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, n_groups, size=n_draws), minlength=n_groups)[codes]


def group_bootstrap(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, labels: np.ndarray,
                    n_boot: int = N_BOOTSTRAP, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of macro-F1 when whole leakage groups are resampled with replacement."""
    codes, n_groups = _group_codes(groups)
    if n_groups < 2:
        s = macro_f1_weighted(y_true, y_pred, labels)
        return s, s
    scores = np.array([macro_f1_weighted(y_true, y_pred, labels, w)
                       for w in _resampled_weights(codes, n_groups, n_boot, n_groups, seed)])
    alpha = (1.0 - level) / 2
    return float(np.quantile(scores, alpha)), float(np.quantile(scores, 1 - alpha))


def paired_gain_low(y_true: np.ndarray, pred_new: np.ndarray, pred_old: np.ndarray, groups: np.ndarray,
                    labels: np.ndarray, n_boot: int = N_BOOTSTRAP, quantile: float = 0.1,
                    seed: int = 0) -> float:
    """The ``quantile`` of macro-F1(new) - macro-F1(old) when whole leakage groups are
    resampled (the same draws for both): above 0 means "new" helps beyond the noise of
    which videos happened to be labelled, with one-sided confidence ``1 - quantile``."""
    codes, n_groups = _group_codes(groups)
    if n_groups < 2:
        return macro_f1_weighted(y_true, pred_new, labels) - macro_f1_weighted(y_true, pred_old, labels)
    diffs = np.array([macro_f1_weighted(y_true, pred_new, labels, w) - macro_f1_weighted(y_true, pred_old, labels, w)
                      for w in _resampled_weights(codes, n_groups, n_boot, n_groups, seed + 1)])
    return float(np.quantile(diffs, quantile))


def test_set_interval(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, labels: np.ndarray,
                      n_videos: int, n_boot: int = N_BOOTSTRAP, level: float = LEVEL,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) macro-F1 of a test set of ``n_videos`` videos like the labelled ones.

    Draws as many leakage groups as a set of ``n_videos`` holds, with replacement. Macro-F1
    of a small set is lower and wider than of a large one (a class with two videos in it
    scores 0 or 1), so the figure to compare with one submission's score is this, not the
    interval of the whole labelled set.
    """
    codes, n_groups = _group_codes(groups)
    k = max(1, int(round(n_videos * n_groups / max(len(codes), 1))))
    scores = np.array([macro_f1_weighted(y_true, y_pred, labels, w)
                       for w in _resampled_weights(codes, n_groups, n_boot, k, seed)])
    alpha = (1.0 - level) / 2
    return float(scores.mean()), float(np.quantile(scores, alpha)), float(np.quantile(scores, 1 - alpha))


@dataclass
class NestedEstimate:
    """Outer-fold predictions of the whole procedure and their macro-F1 with an interval.

    ``macro_f1``/``interval``: the procedure's, each outer fold predicted by the variant
    (single, rule or ensemble) that fold's own inner data chose (``choices[f]["variant"]``):
    what a user of ``tune-fusion`` should expect. ``variant_scores``: each variant forced in
    every fold (``{variant: (macro-F1, interval)}``), for comparison only: picking the best
    of them after seeing them would be a choice on the outer folds.
    """

    macro_f1: float
    interval: tuple[float, float]
    variant_scores: dict[str, tuple[float, tuple[float, float]]]
    n_videos: int
    n_groups: int
    outer_folds: int
    inner_trials: int
    seconds: float
    choices: list[dict] = field(default_factory=list)
    level: float = LEVEL
    video_id: np.ndarray = field(default=None, repr=False)     # str (n_videos,)
    y_true: np.ndarray = field(default=None, repr=False)       # int (n_videos,)
    y_pred: np.ndarray = field(default=None, repr=False)       # int (n_videos,) the procedure's prediction
    y_variant: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # each variant forced
    outer_fold: np.ndarray = field(default=None, repr=False)   # int (n_videos,) which outer fold scored it
    groups: np.ndarray = field(default=None, repr=False)       # int (n_videos,) leakage groups
    labels: np.ndarray = field(default=None, repr=False)       # the macro-F1 label set

    def figure(self, variant: str = "procedure") -> tuple[float, tuple[float, float]]:
        """(macro-F1, interval) of the procedure, or of 'single', 'rule', 'ensemble' forced."""
        return (self.macro_f1, self.interval) if variant == "procedure" else self.variant_scores[variant]

    @property
    def chosen_variants(self) -> dict[str, int]:
        """variant -> how many outer folds chose it."""
        out: dict[str, int] = {}
        for c in self.choices:
            out[c["variant"]] = out.get(c["variant"], 0) + 1
        return out

    def fold_scores(self) -> list[float]:
        """The procedure's macro-F1 on each outer fold's videos alone (their spread, not the interval)."""
        return [macro_f1(self.y_true[self.outer_fold == f], self.y_pred[self.outer_fold == f], self.labels)
                for f in range(self.outer_folds)]

    def headline(self) -> str:
        lo, hi = self.interval
        return f"nested estimate macro-F1 {self.macro_f1:.3f} ({self.level:.0%} interval {lo:.3f}-{hi:.3f})"

    def describe(self) -> str:
        """Lines for ``tune-fusion``'s summary."""
        chosen = ", ".join(f"{c['family']}+{c['method']} ({c['variant']})" for c in self.choices)
        forced = "; ".join(f"{v} {s:.4f} ({lo:.3f}-{hi:.3f})" for v, (s, (lo, hi)) in self.variant_scores.items())
        return (f"nested estimate of the whole procedure, the choice of variant included (what unseen videos "
                f"like these should give): macro-F1 {self.macro_f1:.4f}, {self.level:.0%} interval "
                f"{self.interval[0]:.3f}-{self.interval[1]:.3f} (bootstrap over {self.n_groups} groups of "
                f"{self.n_videos} videos)\n"
                f"  {self.outer_folds} outer folds x {self.inner_trials}-trial inner studies in "
                f"{self.seconds:.0f} s; chosen per fold on its inner data: {chosen}\n"
                f"  each variant forced in every fold, for comparison only (choosing among these would "
                f"be a choice on the outer folds): {forced}")

    def save_predictions(self, directory: str | Path) -> Path:
        """Write :data:`PREDICTIONS_FILE` (one row per labelled video) under ``directory``.

        Columns: video_id, label, predicted (the procedure's: what the estimate scored),
        variant (the variant its outer fold chose), outer_fold, predicted_single,
        predicted_with_rule, predicted_by_ensemble (each variant forced), cv_group.
        """
        def name(codes):
            return pa.array([CLASSES[c] if c >= 0 else None for c in codes], pa.string())
        by_fold = {c["fold"]: c["variant"] for c in self.choices}
        table = pa.table({"video_id": pa.array(self.video_id.astype(str)), "label": name(self.y_true),
                          "predicted": name(self.y_pred),
                          "variant": pa.array([by_fold[int(f)] for f in self.outer_fold], pa.string()),
                          "outer_fold": pa.array(self.outer_fold.astype(np.int64)),
                          "predicted_single": name(self.y_variant["single"]),
                          "predicted_with_rule": name(self.y_variant["rule"]),
                          "predicted_by_ensemble": name(self.y_variant["ensemble"]),
                          "cv_group": pa.array(self.groups.astype(np.int64))})
        meta = {"macro_f1_labels": [CLASSES[k] for k in self.labels], "level": self.level,
                "macro_f1": self.macro_f1, "interval": list(self.interval), "variant_chosen_in_folds": True}
        table = table.replace_schema_metadata({"nested_estimate": json.dumps(meta)})
        path = Path(directory) / PREDICTIONS_FILE
        pq.write_table(table, path)
        return path

    def as_dict(self) -> dict:
        return {"macro_f1": self.macro_f1, "interval": list(self.interval), "level": self.level,
                "variant_chosen_in_folds": True, "chosen_variants": self.chosen_variants,
                "fold_scores": [round(x, 4) for x in self.fold_scores()],
                "variant_scores": {v: {"macro_f1": s, "interval": list(i)} for v, (s, i) in self.variant_scores.items()},
                "n_videos": self.n_videos, "n_groups": self.n_groups, "outer_folds": self.outer_folds,
                "inner_trials": self.inner_trials, "seconds": round(self.seconds, 1),
                "method": "nested grouped CV, variant chosen inside each fold; percentile group bootstrap",
                "choices": self.choices}


def nested_estimate(td: Any, tune: Callable[[Any, str], Any], fit: Callable, predict: Callable,
                    offsets: Callable, choose: Callable[[Any, Any], Any], seed: int = 0,
                    progress: bool = False, ensemble: tuple[Callable, Callable] | None = None) -> NestedEstimate:
    """Score the whole procedure on ``td``'s outer folds (its own grouped partition).

    Args:
        td: the study's :class:`fusion.cv.TuneData`.
        tune: ``(inner TuneData, name) -> Selection``: the study and selection.
        fit: ``(TuneData, Config, rows, seed) -> estimator``; predict: ``(TuneData, Config,
            estimator, rows) -> (probs, video_id, window_idx)``; offsets: ``(TuneData,
            Selection) -> offsets``: the refit, prediction and decision rule of the procedure.
        choose: ``(inner TuneData, Selection) -> VariantChoice``
            (:func:`fusion.selection.choose_variant`): which variant the fold deploys,
            decided on its inner data only; the fold's videos are scored with that one.
        ensemble: ``(fit_members(TuneData, Selection, rows, seed) -> members,
            predict(TuneData, members, rows) -> video probabilities)`` for the inner study's
            ensemble (``Selection.ensemble``); where it has one member it is the single model.

    The outer fold's videos and labels reach none of ``tune``, ``offsets``, ``choose`` or
    ``fit``: only ``predict`` sees the fold's vectors, and only the scoring its labels.
    """
    t0 = time.perf_counter()
    n = td.data.n_videos
    vids = td.video_ids
    forced = {v: np.full(n, -1, np.int64) for v in ("single", "rule", "ensemble")}
    procedure = np.full(n, -1, np.int64)
    outer_fold = np.full(n, -1, np.int64)
    choices = []
    inner_trials = 0
    for f, (tr, va) in enumerate(tqdm(td.folds, desc="nested estimate", disable=not progress)):
        inner = td.subset(tr, n_folds=len(td.folds), seed=seed)
        sel = tune(inner, f"nested-outer-{f}")
        inner_trials = max(inner_trials, sel.n_trials)
        b = offsets(inner, sel)
        picked = choose(inner, sel)
        est = fit(inner, sel.config, np.arange(inner.data.n_videos), seed)
        # Predict the outer fold's videos from the full study data (the estimator saw none of them).
        probs, v, w = predict(td, sel.config, est, va)
        method = sel.config.method
        forced["single"][va] = td.aggregator.predict_codes(probs, v, w, vids[va], (method,))[method]
        forced["rule"][va] = td.aggregator.predict_codes(apply_offsets(probs, b), v, w, vids[va], (method,))[method]
        forced["ensemble"][va] = forced["single"][va]
        n_members = 1
        if ensemble is not None and sel.ensemble is not None and sel.ensemble.n_members > 1:
            members = ensemble[0](inner, sel, np.arange(inner.data.n_videos), seed)
            P = ensemble[1](td, members, va)
            forced["ensemble"][va] = np.where(np.isnan(P).any(axis=1) | (P.sum(axis=1) == 0), -1, P.argmax(axis=1))
            n_members = sel.ensemble.n_members
        procedure[va] = forced[picked.variant][va]
        outer_fold[va] = f
        choices.append({"fold": f, "family": sel.config.family, "method": method, "variant": picked.variant,
                        "variant_reason": picked.reason, "inner_score": round(sel.score, 4),
                        "n_outer_videos": int(len(va)), "ensemble_members": n_members,
                        "offsets": [round(float(x), 3) for x in b]})
    y, g, labels = td.y_video, td.groups, td.labels
    variant_scores = {k: (macro_f1(y, p, labels), group_bootstrap(y, p, g, labels, seed=seed))
                      for k, p in forced.items()}
    return NestedEstimate(
        macro_f1=macro_f1(y, procedure, labels), interval=group_bootstrap(y, procedure, g, labels, seed=seed),
        variant_scores=variant_scores, n_videos=n, n_groups=int(len(np.unique(g))),
        outer_folds=len(td.folds), inner_trials=inner_trials, seconds=time.perf_counter() - t0,
        choices=choices, video_id=vids, y_true=y, y_pred=procedure, y_variant=forced,
        outer_fold=outer_fold, groups=g, labels=labels)


def expected_score(model_dir: str | Path, lineage: dict, n_videos: int | None = None) -> str:
    """One line on what a model should score on unseen videos: the nested estimate of the
    procedure that made it (its choice of variant included) and, for a set of ``n_videos``
    videos (a submission's), the range such a set's macro-F1 falls in.

    Both describe videos drawn like the labelled ones (same sources, period and text
    origin); a shifted test set is not covered.
    """
    est = lineage.get("estimate")
    if not est:
        cv = lineage.get("cv_macro_f1")
        told = f"; the selection score {cv:.3f} chose the model and overstates it" if cv is not None else ""
        return f"expected macro-F1: unknown (trained with --estimate off{told})"
    variant = lineage.get("variant") or ("rule" if (lineage.get("decision_rule") or {}).get("applied") else "single")
    level = est.get("level", LEVEL)
    if est.get("variant_chosen_in_folds"):
        score, (lo, hi), column = est["macro_f1"], est["interval"], "predicted"
        what = f"; the procedure chose the variant inside each fold, and deploys {variant}"
    else:  # a model saved before the variant was chosen inside the folds: its variant's figure
        key = {"single": "", "rule": "rule_", "ensemble": "ensemble_"}[variant]
        score, (lo, hi) = est[f"{key}macro_f1"], est[f"{key}interval"]
        column = {"single": "predicted", "rule": "predicted_with_rule", "ensemble": "predicted_by_ensemble"}[variant]
        what = f"; {variant}, chosen on these outer folds (a model from an older version: optimistic)"
    line = (f"expected macro-F1 {score:.3f} ({level:.0%} interval {lo:.3f}-{hi:.3f}: "
            f"nested estimate over {est['n_videos']} labelled videos{what})")
    path = Path(model_dir) / PREDICTIONS_FILE
    if n_videos and path.exists():
        t = pq.read_table(path)
        lookup = {c: i for i, c in enumerate(CLASSES)}

        def codes(col: str) -> np.ndarray:
            return np.array([lookup.get(v, -1) for v in t.column(col).to_pylist()], np.int64)
        meta = json.loads(t.schema.metadata[b"nested_estimate"])
        labels = np.array([lookup[c] for c in meta["macro_f1_labels"]])
        mean, a, b = test_set_interval(codes("label"), codes(column),
                                       t.column("cv_group").to_numpy(), labels, n_videos)
        line += (f"; for a set of {n_videos} videos drawn like the labelled ones: mean {mean:.3f}, "
                 f"{level:.0%} of such sets {a:.3f}-{b:.3f}")
    return line
