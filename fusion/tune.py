"""``tune-fusion``: the whole procedure, from a store to a saved, registered model.

Search (:mod:`fusion.study` over the space of :mod:`fusion.space`): Optuna trials, each
scored by the video-level macro-F1 of out-of-fold predictions (:mod:`fusion.cv`: folds over
leakage groups, window probabilities turned into video labels by the same SQL the store
runs). Selection (:mod:`fusion.selection`): the best trial, confirmed on other fold
partitions, an ensemble of trials, and the choice between the single model, the decision
rule (:mod:`fusion.decision`) and the ensemble, made on the selection's own folds
(:func:`fusion.selection.choose_variant`). Estimate (:mod:`fusion.estimate`): that whole
procedure, variant choice included, again inside outer folds; its figure is what the
deployed model is expected to score, and it chooses nothing. Refit on every labelled video, then
save with its lineage (:mod:`fusion.lineage`) and a report (:mod:`fusion.report`) and
register it in the store (:mod:`fusion.registry`).
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import optuna

from featurestore.errors import InputError

from . import registry
from .cv import TuneData, fit_final, fit_videos, predict_videos, prepare
from .data import load_window_data
from .decision import apply_offsets
from .estimate import NestedEstimate, nested_estimate
from .groupnorm import normalise, store_group_stats, wants_group_norm
from .lineage import TrainingSource, build_lineage, current_encoders, open_source
from .modelio import ENSEMBLE, FAMILIES, FusionModel
from .oof import ARTIFACT_DIR, OOFArchive
from .report import confusion, per_class_table, write_report
from .result import TuneResult
from .selection import (Selection, VariantChoice, choose_variant, decision_offsets, fit_ensemble_members,
                        predict_ensemble, select, summary_table)
from .study import describe_storage, open_study, resolve_storage, run_study, trials_frame

__all__ = ["DECISION_RULES", "ESTIMATES", "tune_and_select", "tune_fusion"]

ESTIMATES = ("nested", "off")
DECISION_RULES = ("auto", "on", "off")


def tune_and_select(td: TuneData, families: tuple[str, ...], n_trials: int, seed: int,
                    confirm_top: int = 5, confirm_repeats: int = 2, name: str = "inner",
                    timeout: float | None = None) -> Selection:
    """A fresh in-memory study on ``td``: the same search, defaults and selection as
    :func:`tune_fusion` (the nested estimate runs this inside every outer fold)."""
    archive = OOFArchive()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(name, None, seed, families, n_trials, td)
    run_study(td, study, families, n_trials, seed, archive, timeout)
    return select(td, study, families, seed, archive, confirm_top, confirm_repeats)


# ------------------------------------------------------------------ public entry point
def tune_fusion(store_or_con, n_trials: int = 30, timeout: float | None = None, seed: int = 0,
                study_name: str | None = None, storage: str | None = None, n_folds: int = 5,
                families: tuple[str, ...] | list[str] | None = None, show_progress: bool = True,
                *, models_dir: str | Path | None = None, refit: bool = True,
                confirm_top: int = 5, confirm_repeats: int = 2,
                encoders: dict[str, str] | None = None, estimate: str = "nested",
                estimate_trials: int | None = None, decision_rule: str = "auto",
                ensemble: str = "auto", group_norm: str = "auto",
                speaker_groups: str = "auto") -> TuneResult:
    """Tune, estimate, refit and save the fusion model.

    Args:
        store_or_con: a ``featurestore.store.FeatureStore``, its directory, or a DuckDB
            connection exposing ``videos``, ``windows`` (optional) and ``fusion_vectors``.
        n_trials: finished (complete + pruned) trials the study should reach. A resumed
            study runs only the remainder; several workers sharing a storage split them.
        timeout: stop starting new trials after this many seconds.
        seed: seeds the folds, the sampler and every estimator.
        study_name: create or resume this study (default: a new ``fusion-<utc time>``). A
            resumed study must have been run on the same labelled videos, groups and vectors.
        storage: Optuna storage URL (``sqlite:///f.db``, ``postgresql://user@host/db``) or
            journal file path; default ``<store>/optuna.db``, or in memory for a bare connection.
        n_folds: CV folds (over leakage groups of videos); also the nested estimate's outer folds.
        families: subset of ``fusion.modelio.FAMILIES`` (default: all).
        show_progress: tqdm bars for trials and folds.
        models_dir: where to save the refitted model (default: ``store.models_dir``);
            with a bare connection and no models_dir nothing is written.
        refit: refit the chosen configuration on all labelled videos (else model is None,
            and neither the estimate nor the decision rule runs: a tuning-only worker).
        confirm_top, confirm_repeats: the ``confirm_top`` best trials are scored again on
            ``confirm_repeats`` other fold partitions and the best mean wins
            (:func:`fusion.selection.confirm_best`); 0 keeps the study's single best trial.
            Only with ``refit``.
        encoders: ``{modality: encoder_id}`` feature sets to train on instead of the store's
            named choice (``use-encoders``) for those modalities; recorded in the lineage.
        estimate: 'nested' runs the whole procedure (a study of ``estimate_trials`` trials,
            the same selection, the decision rule, the refit) inside each of ``n_folds`` outer
            folds and scores the outer videos (:mod:`fusion.estimate`); it costs about
            ``n_folds * estimate_trials / n_trials`` times the study. 'off' skips it.
        estimate_trials: trials of each inner study (default ``min(n_trials, 10)``); with
            ``timeout``, each inner study also stops after ``timeout * estimate_trials / n_trials`` s.
        decision_rule: 'on' deploys per-class log-probability offsets for macro-F1
            (:mod:`fusion.decision`) fitted on the chosen trial's out-of-fold predictions;
            'auto' does so when, on the selection's own folds, offsets fitted on the other folds
            gain in 90 % of paired group resamples (:func:`fusion.selection.choose_variant`);
            'off' never.
        ensemble: 'auto' deploys the ensemble selected over the study's trials
            (:mod:`fusion.ensemble`) when, by the same cross-fitted test, it beats the better of
            the single model with and without the rule; 'on' whenever it has more than one
            member; 'off' never. The nested estimate makes the same choice inside every outer
            fold, so its figure covers it.
        group_norm: 'on' standardises every window vector by its manifest group's statistics
            over all of the group's stored windows (:mod:`fusion.groupnorm`; per speaker);
            'auto' does so when every labelled video has a group and there are two or more
            (with inferred speaker groups: a manifest group, else the inferred one;
            ``fusion.groupnorm.wants_group_norm``);
            'off' never. Needs a store.
        speaker_groups: CV groups also merge videos of one inferred speaker
            (``fusion.cv.wants_speaker_groups``): 'auto' where some labelled video has an
            inferred speaker but no manifest group, 'on', 'off'. The summary's CV groups line
            says how many videos the rule merged.

    Returns:
        :class:`TuneResult`.

    Raises:
        ValueError: unknown family, too few groups for ``n_folds``, or a resumed study
            whose settings or data differ (its trials would not be comparable).
        RuntimeError: no trial finished (e.g. ``timeout`` too short).
    """
    t_start = time.perf_counter()
    families = _check_choices(families, estimate, decision_rule, ensemble, group_norm)
    source = open_source(store_or_con, encoders)
    td = _study_data(source, n_folds, seed, group_norm, speaker_groups)
    storage_obj = resolve_storage(storage, source.root)
    archive = OOFArchive(source.root / ARTIFACT_DIR if source.root is not None else None)
    study_name = study_name or f"fusion-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:4]}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(study_name, storage_obj, seed, families, n_trials, td)
    run_study(td, study, families, n_trials, seed, archive, timeout, show_progress)
    trials = trials_frame(study)
    # Tuning-only workers (refit=False) leave confirmation and the estimate to the one that refits.
    sel = select(td, study, families, seed, archive, confirm_top if refit else 0, confirm_repeats,
                 progress=show_progress, ensemble=refit and ensemble != "off")
    config, method = sel.config, sel.config.method

    def choose(sub: TuneData, s: Selection) -> VariantChoice:
        return choose_variant(sub, s, decision_rule, ensemble, seed)

    nested = None
    if refit and estimate == "nested":
        inner_trials = estimate_trials or min(n_trials, 10)
        # Under --timeout each inner study gets the study's time per trial, so the estimate
        # costs about what its trials would in the study.
        inner_timeout = timeout * inner_trials / max(n_trials, 1) if timeout else None
        nested = nested_estimate(td, lambda sub, name: tune_and_select(
            sub, families, inner_trials, seed, confirm_top, confirm_repeats, name, inner_timeout),
            fit_videos, predict_videos, decision_offsets, choose, seed=seed, progress=show_progress,
            ensemble=(fit_ensemble_members, predict_ensemble))
    variant, rule = _deployed_variant(td, sel, refit, choose)
    offsets = np.array(rule["offsets"]) if rule["applied"] else None
    y_pred = _oof_prediction(td, sel, variant, offsets)

    model_id = f"fusion-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{config.family}-{method}-{uuid.uuid4().hex[:6]}"
    model = None
    if refit:
        lineage = build_lineage(source, td, sel, study_name=study_name, storage=describe_storage(storage_obj),
                                n_folds=n_folds, seed=seed, confirm_repeats=confirm_repeats, y_pred=y_pred,
                                confusion=confusion(td.y_video, nested.y_pred if nested else y_pred),
                                nested=nested, rule=rule,
                                variant=variant, group_norm=td.group_norm)
        encoders = current_encoders(source.con, td.data.dims, source.served)
        model = _refit(td, sel, variant, offsets, model_id, encoders, lineage, seed)
    model_dir: Path | None = None
    paths: dict[str, Path] = {}
    if model is not None:
        model_id = model.model_id
        model_dir = registry.new_model_dir(model_id, source.store, models_dir)
        if model_dir is not None:
            paths = _save(model, model_dir, source, sel.score, nested, td.y_video, y_pred, study,
                          f"deployed: {model.family} + {model.method} ({variant})")
    return TuneResult(best_score=sel.score, best_params=sel.params,
                      family=model.family if model is not None else config.family,
                      method=model.method if model is not None else method,
                      table=summary_table(trials), model=model, model_id=model_id, model_dir=model_dir,
                      paths=paths, per_class=per_class_table(td.y_video, nested.y_pred if nested else y_pred),
                      per_class_source=("nested estimate (outer folds)" if nested else "selection (optimistic)"),
                      groups=td.group_report.as_dict(), study_name=study_name,
                      storage=describe_storage(storage_obj), n_trials=int(len(trials)),
                      seconds=time.perf_counter() - t_start, confirmation=sel.confirmation,
                      estimate=nested, decision_rule=rule, variant=variant, ensemble=sel.ensemble)


# ------------------------------------------------------------------ the steps
def _check_choices(families, estimate: str, decision_rule: str, ensemble: str,
                   group_norm: str) -> tuple[str, ...]:
    """The families to search (default all); raises ValueError naming any unknown choice."""
    families = tuple(families) if families else FAMILIES
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise InputError(f"unknown model famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                         f"choose from {list(FAMILIES)}")
    if estimate not in ESTIMATES:
        raise InputError(f"estimate={estimate!r}; choose from {ESTIMATES}")
    for name, value in (("decision_rule", decision_rule), ("ensemble", ensemble), ("group_norm", group_norm)):
        if value not in DECISION_RULES:
            raise InputError(f"{name}={value!r}; choose from {DECISION_RULES}")
    return families


def _study_data(source: TrainingSource, n_folds: int, seed: int, group_norm: str,
                speaker_groups: str = "auto") -> TuneData:
    """The labelled windows of ``source`` (normalised per group when ``group_norm`` says so),
    their leakage groups and folds; ``TuneData.group_norm`` records whether they were normalised."""
    store = source.store
    data = load_window_data(store, encoders=source.served, snapshot=source.snapshot) if store is not None else None
    normalised = bool(data is not None and (group_norm == "on" or (group_norm == "auto" and wants_group_norm(data))))
    if group_norm == "on" and store is None:
        raise InputError("group_norm='on' needs a feature store (the statistics come from all its windows)")
    if normalised:
        data = normalise(data, store_group_stats(store, source.served, data.dims, source.snapshot))
    td = prepare(source.con, n_folds, seed, data, speaker_groups)
    td.group_norm = normalised
    return td


def _deployed_variant(td: TuneData, sel: Selection, refit: bool,
                      choose: Callable[[TuneData, Selection], VariantChoice]) -> tuple[str, dict]:
    """('single' | 'rule' | 'ensemble', the decision rule ``{"applied", "offsets", "reason"}``).

    ``choose`` (:func:`fusion.selection.choose_variant` with the run's modes) decides on the
    full data's selection, as it decided on each outer fold's inner data in the nested
    estimate; the rule's offsets are fitted here when it is applied.
    """
    if not refit:
        return "single", {"applied": False, "offsets": None, "reason": "no refit"}
    picked = choose(td, sel)
    rule = {"applied": picked.variant == "rule", "offsets": None, "reason": picked.reason,
            "choice": picked.as_dict()}
    if rule["applied"]:
        rule["offsets"] = [round(float(b), 4) for b in decision_offsets(td, sel)]
    return picked.variant, rule


def _oof_prediction(td: TuneData, sel: Selection, variant: str, offsets: np.ndarray | None) -> np.ndarray:
    """int (n_videos,): the deployed variant's out-of-fold class per video (the report's)."""
    if variant == "ensemble":
        return sel.ensemble.probs.argmax(axis=1)
    if offsets is None:
        return sel.oof_pred
    method = sel.config.method
    return td.aggregator.predict_codes(apply_offsets(sel.oof.probs, offsets), sel.oof.video_id,
                                       sel.oof.window_idx, td.video_ids, (method,))[method]


def _refit(td: TuneData, sel: Selection, variant: str, offsets: np.ndarray | None, model_id: str,
           encoders: dict, lineage: dict, seed: int) -> FusionModel:
    """The deployed model, fitted on every labelled video: the chosen trial (with the rule's
    ``offsets``), or for the ensemble every member under ``<model_id>-trial<n>``."""
    dims, config = td.data.dims, sel.config
    if variant != "ensemble":
        return FusionModel(family=config.family, method=config.method, estimator=fit_final(td, config, seed),
                           modalities=tuple(dims), dims=dims, params=config.params, encoders=encoders,
                           pool_stats=config.pool_stats, model_id=model_id, lineage=lineage,
                           offsets=offsets, group_norm=td.group_norm)
    fitted = fit_ensemble_members(td, sel, np.arange(td.data.n_videos), seed)
    members = [FusionModel(family=c.family, method="mean", estimator=est, modalities=tuple(dims), dims=dims,
                           params=c.params, encoders=encoders, pool_stats=c.pool_stats,
                           model_id=f"{model_id}-trial{t}")
               for t, (c, est, _) in zip(sel.ensemble.weights, fitted)]
    return FusionModel(family=ENSEMBLE, method="mean", estimator=None, modalities=tuple(dims), dims=dims,
                       params={}, encoders=encoders,
                       model_id=model_id.replace(f"-{config.family}-{config.method}-", f"-{ENSEMBLE}-mean-"),
                       lineage=lineage, members=members, member_weights=list(sel.ensemble.weights.values()),
                       group_norm=td.group_norm)


def _save(model: FusionModel, model_dir: Path, source: TrainingSource, score: float,
          nested: NestedEstimate | None, y_true: np.ndarray, y_pred: np.ndarray, study: optuna.Study,
          title: str) -> dict[str, Path]:
    """Write the nested estimate's predictions and the report beside the model, then the model
    (registered in the store when there is one); returns every written path by name.

    The report's estimate files are drawn from the saved nested predictions; ``y_pred`` (the
    selection's out-of-fold view of the deployed variant) only feeds its optimistic view.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    extra = {"nested_predictions": nested.save_predictions(model_dir)} if nested is not None else {}
    extra.update(write_report(model_dir, y_true, y_pred, study, title, selection_score=score,
                              nested_predictions=extra.get("nested_predictions")))
    model_json = registry.save_model(model, model_dir, store=source.store, score=score, snapshot=source.snapshot)
    return {"model_json": model_json, **extra}
