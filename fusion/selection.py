"""Choosing a study's configuration: the best trial, its confirmation, and ensembles of trials.

The study's single best (trial, aggregation) is partly luck on a few hundred videos, so the
best few trials are re-scored on other fold partitions (:func:`confirm_best`), and an
ensemble is selected over the trials' kept out-of-fold predictions (:mod:`fusion.ensemble`).
:func:`select` returns the choice as a :class:`Selection`, which the refit, the decision
rule and the nested estimate all start from. :func:`choose_variant` then decides, from that
selection's own data only, whether the single model, the single model with the decision
rule, or the ensemble is deployed; the nested estimate runs the same function inside every
outer fold, so that choice is part of what it measures.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import optuna
import pandas as pd
from tqdm.auto import tqdm

from featurestore.errors import UserError

from .cv import TuneData, cross_validate, fit_videos, predict_videos, video_folds
from .decision import apply_offsets, fit_offsets
from .ensemble import MAX_CANDIDATES, EnsembleSelection, combine, select_ensemble, video_probs
from .estimate import paired_gain_low
from .metrics import macro_f1
from .oof import OOFArchive, OOFPredictions
from .space import Config, config_from_trial, default_trials
from .study import trials_frame

__all__ = ["VARIANTS", "Confirmation", "Selection", "VariantChoice", "choose_variant", "confirm_best",
           "decision_offsets", "fit_ensemble_members", "predict_ensemble", "select", "summary_table"]

#: What a selection can deploy: its trial, the trial with the decision rule, the ensemble.
VARIANTS = ("single", "rule", "ensemble")
#: A variant replaces a simpler one only when its cross-fitted gain is above 0 in this share
#: of paired group resamples (one-sided; see :func:`fusion.estimate.paired_gain_low`).
GAIN_CONFIDENCE = 0.9


def summary_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Best OOF score per (family, method) over complete trials (every method is scored per trial).

    ``trials``: :func:`fusion.study.trials_frame`. Columns: family, method, best_macro_f1,
    trial, n_trials (complete trials of the family); best first.
    """
    rows = []
    done = trials[trials["state"] == "COMPLETE"]
    for _, t in done.iterrows():
        for m, s in (t["method_scores"] or {}).items():
            rows.append({"family": t["family"], "method": m, "score": s, "trial": t["number"]})
    if not rows:
        return pd.DataFrame(columns=["family", "method", "best_macro_f1", "trial", "n_trials"])
    df = pd.DataFrame(rows)
    best = df.loc[df.groupby(["family", "method"])["score"].idxmax()]
    counts = done.groupby("family").size().rename("n_trials")
    out = best.rename(columns={"score": "best_macro_f1"}).merge(counts, left_on="family", right_index=True)
    return out.sort_values("best_macro_f1", ascending=False).reset_index(drop=True)


def _choose(table: pd.DataFrame, trials: pd.DataFrame) -> pd.Series:
    """The best (family, method) row; among equal scores the trial's own method wins.

    Pooled families give every window the video's probabilities, so all methods tie
    there and the trial's own method ('mean', which keeps a graded confidence) is kept.
    """
    top = table[table["best_macro_f1"] >= table["best_macro_f1"].max() - 1e-12]
    own = dict(zip(trials["number"], trials["method"]))
    preferred = top[[own.get(t) == m for t, m in zip(top["trial"], top["method"])]]
    return (preferred if len(preferred) else top).iloc[0]


# ------------------------------------------------------------------ confirmation
@dataclass
class Confirmation:
    """The best candidates re-scored on other fold partitions (see :func:`confirm_best`)."""

    trial: int
    family: str
    method: str
    scores: list[float]           # macro-F1 on the study's partition, then on each other one
    candidates: list[dict]        # every candidate: trial, family, method, scores, mean

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def confirm_best(td: TuneData, study: optuna.Study, trials: pd.DataFrame, families: tuple[str, ...],
                 seed: int, top: int = 5, repeats: int = 2, progress: bool = False,
                 min_gain: float = 0.01) -> Confirmation | None:
    """Pick among the ``top`` best trials (and the best default trial of
    :func:`fusion.space.default_trials`, when not among them) by their mean macro-F1 over the
    study's fold partition and ``repeats`` other ones; the best default gives way only to a
    trial whose mean beats it by more than ``min_gain``.

    With a few hundred videos one partition's score is noisy (±0.01–0.02 between fold
    seeds for one configuration), so the study's single best trial is partly luck. Each
    candidate is a trial with its best aggregation method; the other partitions are
    grouped and stratified like the study's, with seeds ``seed + 1000 * r``. Whether this
    rule helps is for the nested estimate to say: it runs inside every outer fold.
    """
    done = trials[trials["state"] == "COMPLETE"]
    if top < 2 or repeats < 1 or len(done) < 2:
        return None
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    defaults = default_trials(families)
    rows = []
    for _, t in done.iterrows():
        scores = t["method_scores"] or {}
        if scores:
            method = max(scores, key=lambda m: (scores[m], m == t["method"]))
            params = by_number[int(t["number"])].params
            is_default = any(all(params.get(k) == v for k, v in d.items()) for d in defaults)
            rows.append((float(scores[method]), int(t["number"]), method, is_default))
    rows.sort(key=lambda r: (-r[0], r[1]))
    chosen = rows[:top]
    if not any(r[3] for r in chosen):  # the best-scoring default joins the candidates
        chosen += [r for r in rows[top:] if r[3]][:1]
    n_folds = len(td.folds)
    partitions = [replace(td, folds=video_folds(td.y_video, td.groups, n_folds, seed + 1000 * r))
                  for r in range(1, repeats + 1)]
    candidates = []
    for score, number, method, is_default in tqdm(chosen, desc="confirm best trials", leave=False,
                                                  disable=not progress):
        config = config_from_trial(by_number[number], families)
        config.method = method
        extra = [cross_validate(p, config, seed).method_scores[method] for p in partitions]
        candidates.append({"trial": number, "family": config.family, "method": method,
                           "default": is_default, "scores": [score, *extra],
                           "mean": float(np.mean([score, *extra]))})
    best = max(candidates, key=lambda c: c["mean"])
    anchors = [c for c in candidates if c["default"]]
    if anchors:
        anchor = max(anchors, key=lambda c: c["mean"])
        if best["mean"] <= anchor["mean"] + min_gain:
            best = anchor
    return Confirmation(best["trial"], best["family"], best["method"], best["scores"], candidates)


# ------------------------------------------------------------------ the study's choice
@dataclass
class Selection:
    """The configuration a study chose, with its out-of-fold predictions on the study's folds."""

    trial: int
    config: Config                 # ``config.method`` is the chosen aggregation
    score: float                   # macro-F1 on the study's partition (what chose it)
    oof: OOFPredictions
    oof_pred: np.ndarray           # int (n_videos,) predicted class per video (the chosen method)
    params: dict
    confirmation: Confirmation | None = None
    n_trials: int = 0              # finished trials of the study
    ensemble: EnsembleSelection | None = None
    member_configs: dict[int, Config] = field(default_factory=dict)  # trial -> config, ensemble members
    #: trial -> float64 (n_videos, k) out-of-fold video probabilities the ensemble was selected from
    candidate_probs: dict[int, np.ndarray] = field(default_factory=dict, repr=False)


def select(td: TuneData, study: optuna.Study, families: tuple[str, ...], seed: int, archive: OOFArchive,
           confirm_top: int = 5, confirm_repeats: int = 2, progress: bool = False,
           ensemble: bool = True) -> Selection:
    """The study's choice: its best (trial, method), or the confirmed one (:func:`confirm_best`),
    and with ``ensemble`` the ensemble selected over its trials.

    Raises:
        RuntimeError: no trial completed.
    """
    trials = trials_frame(study)
    table = summary_table(trials)
    if table.empty:
        raise UserError(f"study {study.study_name!r} has no complete trial; raise --timeout or --trials")
    row = _choose(table, trials)
    number, method, score = int(row["trial"]), str(row["method"]), float(row["best_macro_f1"])
    confirmed = confirm_best(td, study, trials, families, seed, confirm_top, confirm_repeats, progress=progress)
    if confirmed is not None:
        number, method = confirmed.trial, confirmed.method
        score = confirmed.scores[0]
    trial = study.get_trials(deepcopy=False)[number]
    config = config_from_trial(trial, families)
    config.method = method
    try:
        oof = archive.load(study.study_name, trial)
    except LookupError:  # a trial of another worker without an artifact store: score it again
        oof = cross_validate(td, config, seed).oof
    pred = td.aggregator.predict_codes(oof.probs, oof.video_id, oof.window_idx, td.video_ids, (method,))[method]
    ensemble, member_configs, candidates = (_ensemble(td, study, trials, families, archive) if ensemble
                                            else (None, {}, {}))
    return Selection(trial=number, config=config, score=score, oof=oof, oof_pred=pred,
                     params={**trial.params, "method": method}, confirmation=confirmed,
                     n_trials=int(len(trials)), ensemble=ensemble, member_configs=member_configs,
                     candidate_probs=candidates)


def decision_offsets(td: TuneData, sel: Selection) -> np.ndarray:
    """float64 (n_classes,) log-probability offsets fitted on the selection's out-of-fold predictions."""
    return fit_offsets(sel.oof, td.y_video, td.video_ids, sel.config.method, td.labels, td.aggregator)


# ------------------------------------------------------------------ ensembles of trials
def _ensemble(td: TuneData, study: optuna.Study, trials: pd.DataFrame, families: tuple[str, ...],
              archive: OOFArchive) -> tuple[EnsembleSelection | None, dict[int, Config], dict[int, np.ndarray]]:
    """Ensemble selection over the best complete trials whose out-of-fold predictions are kept:
    (the ensemble, its members' configs, every candidate's out-of-fold video probabilities)."""
    done = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    probs, configs = {}, {}
    for number in done["number"].astype(int).tolist()[:MAX_CANDIDATES]:
        try:
            oof = archive.load(study.study_name, by_number[number])
        except LookupError:
            continue
        probs[number] = video_probs(oof, td.video_ids)
        configs[number] = config_from_trial(by_number[number], families)
    if len(probs) < 2:
        return None, {}, {}
    ens = select_ensemble(probs, td.y_video, td.labels)
    return ens, {t: configs[t] for t in ens.weights}, probs


def fit_ensemble_members(td: TuneData, sel: Selection, rows: np.ndarray, seed: int) -> list[tuple[Config, Any, float]]:
    """(config, estimator fitted on videos ``rows``, weight) of each member of ``sel.ensemble``."""
    return [(sel.member_configs[t], fit_videos(td, sel.member_configs[t], rows, seed), w)
            for t, w in sel.ensemble.weights.items()]


def predict_ensemble(td: TuneData, members: list[tuple[Config, Any, float]], rows: np.ndarray) -> np.ndarray:
    """float32 (len(rows), k): the members' weighted video probabilities for videos ``rows``."""
    parts = []
    for config, est, _ in members:
        probs, vid, widx = predict_videos(td, config, est, rows)
        parts.append(video_probs(OOFPredictions(probs, vid, widx), td.video_ids[rows]))
    return combine(parts, [w for _, _, w in members])


# ------------------------------------------------------------------ which variant is deployed
@dataclass
class VariantChoice:
    """Which variant a selection deploys, and the cross-fitted evidence that chose it.

    ``scores``: macro-F1 of each variant's cross-fitted predictions on the selection's folds
    (the rule's offsets and the ensemble's weights fitted on the other folds' out-of-fold
    predictions); ``gain_low``: for each challenger, the 10th percentile of its paired
    bootstrap gain over the variant it had to beat.
    """

    variant: str
    reason: str
    scores: dict[str, float] = field(default_factory=dict)
    gain_low: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"variant": self.variant, "reason": self.reason,
                "scores": {k: round(v, 4) for k, v in self.scores.items()},
                "gain_low": {k: round(v, 4) for k, v in self.gain_low.items()}}


def _rows_oof(oof: OOFPredictions, videos: np.ndarray) -> OOFPredictions:
    keep = np.isin(oof.video_id.astype(str), np.asarray(videos).astype(str))
    return OOFPredictions(oof.probs[keep], oof.video_id[keep], oof.window_idx[keep])


def crossfit_predictions(td: TuneData, sel: Selection) -> dict[str, np.ndarray]:
    """variant -> int (n_videos,) cross-fitted class per video on ``td``'s folds (-1: none).

    'single' is the selection's out-of-fold prediction. 'rule' applies, on each fold's
    validation videos, offsets fitted on the other folds' out-of-fold predictions only;
    'ensemble' (when the selection has one of two or more members) combines each fold's
    validation videos with weights selected on the other folds' videos only. So neither
    post-processing is scored on the videos that fitted it (the trials themselves were
    chosen on all folds, which flatters every variant alike).
    """
    vids, method = td.video_ids, sel.config.method
    out = {"single": np.asarray(sel.oof_pred, np.int64)}
    ruled = np.full(len(vids), -1, np.int64)
    for tr, va in td.folds:
        b = fit_offsets(_rows_oof(sel.oof, vids[tr]), td.y_video[tr], vids[tr], method, td.labels,
                        td.aggregator)
        part = _rows_oof(sel.oof, vids[va])
        ruled[va] = td.aggregator.predict_codes(apply_offsets(part.probs, b), part.video_id,
                                                part.window_idx, vids[va], (method,))[method]
    out["rule"] = ruled
    if sel.ensemble is not None and sel.ensemble.n_members > 1 and len(sel.candidate_probs) > 1:
        ens = np.full(len(vids), -1, np.int64)
        for tr, va in td.folds:
            chosen = select_ensemble({t: p[tr] for t, p in sel.candidate_probs.items()}, td.y_video[tr],
                                     td.labels)
            P = combine([sel.candidate_probs[t][va] for t in chosen.weights], list(chosen.weights.values()))
            ens[va] = np.where(P.sum(axis=1) > 0, P.argmax(axis=1), -1)
        out["ensemble"] = ens
    return out


def choose_variant(td: TuneData, sel: Selection, decision_rule: str = "auto", ensemble: str = "auto",
                   seed: int = 0) -> VariantChoice:
    """The variant ``sel`` deploys, decided on ``td`` (the selection's own data) alone.

    'on' forces the ensemble (when it has two or more members) or the rule, 'off' excludes
    it. Under 'auto' the rule replaces the single model, and the ensemble the better of
    those two, only when its cross-fitted gain (:func:`crossfit_predictions`) is positive in
    :data:`GAIN_CONFIDENCE` of paired group resamples. Called on the full data it picks the
    deployed variant; called by :func:`fusion.estimate.nested_estimate` on each outer fold's
    training side it picks that fold's, so the estimate measures this choice too.
    """
    has_ensemble = sel.ensemble is not None and sel.ensemble.n_members > 1
    if ensemble == "on" and has_ensemble:
        return VariantChoice("ensemble", "--ensemble on")
    if decision_rule == "on":
        return VariantChoice("rule", "--decision-rule on")
    want_rule, want_ens = decision_rule == "auto", ensemble == "auto" and has_ensemble
    if not (want_rule or want_ens):
        return VariantChoice("single", "rule and ensemble off")
    preds = crossfit_predictions(td, sel)
    scores = {k: macro_f1(td.y_video, p, td.labels) for k, p in preds.items()}
    q = 1 - GAIN_CONFIDENCE
    lows, best, why = {}, "single", []
    if want_rule:
        lows["rule"] = paired_gain_low(td.y_video, preds["rule"], preds["single"], td.groups, td.labels,
                                       quantile=q, seed=seed)
        if scores["rule"] > scores["single"] and lows["rule"] > 0:
            best = "rule"
        why.append(f"rule {scores['rule'] - scores['single']:+.4f} over single (above {lows['rule']:+.4f} "
                   f"in {GAIN_CONFIDENCE:.0%} of paired group resamples)")
    if want_ens and "ensemble" in preds:
        lows["ensemble"] = paired_gain_low(td.y_video, preds["ensemble"], preds[best], td.groups, td.labels,
                                           quantile=q, seed=seed)
        why.append(f"ensemble {scores['ensemble'] - scores[best]:+.4f} over {best} (above "
                   f"{lows['ensemble']:+.4f})")
        if scores["ensemble"] > scores[best] and lows["ensemble"] > 0:
            best = "ensemble"
    reason = (f"auto, cross-fitted on the selection's {len(td.folds)} folds: " + "; ".join(why)
              + "; a gain counts only when that bound is above 0")
    return VariantChoice(best, reason, scores, lows)
