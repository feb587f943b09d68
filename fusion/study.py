"""Optuna plumbing of ``tune-fusion``: where a study lives, opening or resuming it, running trials.

A study is kept in an Optuna storage (``<store>/optuna.db`` by default, a database URL for
several workers, or in memory for nested estimates), so a killed run resumes and workers on
several machines share one search. Its trials are configurations of :mod:`fusion.space`,
each scored by :func:`fusion.cv.cross_validate`; every trial's out-of-fold predictions go to
an :class:`fusion.oof.OOFArchive` for the selection that follows.
"""
from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from tqdm.auto import tqdm

from featurestore.errors import InputError

from .cv import TuneData, cross_validate
from .oof import OOFArchive
from .space import SEARCH_SPACE_VERSION, default_trials, suggest

__all__ = ["FINISHED", "describe_storage", "open_study", "resolve_storage", "run_study", "trials_frame"]

#: Trials that count towards ``n_trials``: a pruned trial was scored, just not to the end.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# ------------------------------------------------------------------ storage
def resolve_storage(storage: str | None, root: Path | None):
    """Optuna storage: explicit URL/path, else ``<store>/optuna.db`` (SQLite), else in memory.

    RDB storages (sqlite://, postgresql://, mysql://) get a heartbeat, so a trial of a
    killed process is marked FAILED (and retried once) instead of staying RUNNING forever.
    A path ending in ``.log``/``.journal`` uses Optuna's journal file storage.
    """
    if storage is None:
        if root is None:
            return None
        storage = f"sqlite:///{Path(root).resolve() / 'optuna.db'}"
    if isinstance(storage, str) and "://" in storage:
        return _rdb_storage(storage)
    if str(storage).endswith((".log", ".journal")):
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(str(storage)))
    raise InputError(f"storage {storage!r}: give a database URL (sqlite:///path, postgresql://...) "
                     "or a journal file path ending in .log")


def _rdb_storage(url: str, attempts: int = 5):
    """RDBStorage with heartbeat; retried when another worker is creating the tables right now.

    Workers started together on an empty database race to create Optuna's schema; the
    loser gets an IntegrityError/ProgrammingError ("already exists") and simply retries.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=30, grace_period=120,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def describe_storage(storage) -> str | None:
    """The storage for a log or lineage: its URL without password, or its type; None in memory."""
    if storage is None:
        return None
    url = getattr(storage, "url", None)
    if url:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    return type(storage).__name__


# ------------------------------------------------------------------ a study
def open_study(study_name: str, storage, seed: int, families: tuple[str, ...], n_trials: int,
               td: TuneData) -> optuna.Study:
    """Create or resume ``study_name``; a resumed study must have the same settings and data.

    A new study gets :func:`fusion.space.default_trials` enqueued, so its first trials are
    the known-good starting points of every family.

    Raises:
        ValueError: the study was created with other settings, or on other data (other
            videos, labels, leakage groups or vectors): its scores and out-of-fold
            predictions would not describe the data it would now be chosen on.
    """
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                             n_startup_trials=max(len(families) + 2, min(10, n_trials // 3)))
        study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                    pruner=pruner, direction="maximize", load_if_exists=True)
    settings = {"seed": seed, "n_folds": len(td.folds), "families": list(families),
                "search_space": SEARCH_SPACE_VERSION}
    fingerprint = td.fingerprint()
    old, old_data = study.user_attrs.get("settings"), study.user_attrs.get("data")
    if old is None:
        study.set_user_attr("settings", settings)
        study.set_user_attr("data", fingerprint)
        if not study.get_trials(deepcopy=False):
            for params in default_trials(families):
                study.enqueue_trial(params, skip_if_exists=True)
        return study
    if old != settings:
        raise InputError(f"study {study_name!r} was created with {old}, not {settings}: its scores "
                         "are not comparable; use the same settings or a new --study name")
    if old_data != fingerprint:
        changed = [k for k in fingerprint if (old_data or {}).get(k) != fingerprint[k]]
        raise InputError(
            f"study {study_name!r} was scored on other data ({(old_data or {}).get('n_videos')} labelled "
            f"videos, {(old_data or {}).get('n_windows')} windows) than the store holds now "
            f"({fingerprint['n_videos']} videos, {fingerprint['n_windows']} windows; changed: "
            f"{', '.join(changed)}): its trials' scores and out-of-fold predictions describe the old "
            "data; start a new study (omit --study, or give a new name)")
    return study


def run_study(td: TuneData, study: optuna.Study, families: tuple[str, ...], n_trials: int,
              seed: int, archive: OOFArchive, timeout: float | None = None, progress: bool = False) -> None:
    """Run ``study`` until it has ``n_trials`` finished trials (or ``timeout`` seconds pass).

    Each trial records its aggregation (``method``), every method's score (``method_scores``),
    its worker and duration as user attributes, and leaves its out-of-fold predictions in
    ``archive``.
    """
    def objective(trial: optuna.Trial) -> float:
        config = suggest(trial, families)
        trial.set_user_attr("method", config.method)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        res = cross_validate(td, config, seed, trial=trial, progress=progress)
        trial.set_user_attr("method_scores", res.method_scores)
        trial.set_user_attr("seconds", round(res.seconds, 2))
        archive.save(trial, res.oof)
        return res.method_scores[config.method]

    n_done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    remaining = max(0, n_trials - n_done)
    if not remaining:
        return
    bar = tqdm(total=remaining, desc=f"tune-fusion {study.study_name}", disable=not progress)

    def on_trial(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bar.update(1)
        try:
            bar.set_postfix(best=f"{study_.best_value:.4f}", last=trial.params.get("family"))
        except ValueError:  # no complete trial yet
            pass

    try:
        study.optimize(objective, n_trials=remaining, timeout=timeout,
                       callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED), on_trial])
    finally:
        bar.close()


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """The study's finished trials: number, state, value (NaN when pruned), family, method,
    method_scores (method -> out-of-fold macro-F1), in trial order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in FINISHED:
            continue
        rows.append({"number": t.number, "state": t.state.name,
                     "value": t.value if t.state == TrialState.COMPLETE else np.nan,
                     "family": t.params.get("family"), "method": t.user_attrs.get("method"),
                     "method_scores": t.user_attrs.get("method_scores")})
    return pd.DataFrame(rows, columns=["number", "state", "value", "family", "method", "method_scores"])
