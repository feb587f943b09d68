"""What :func:`fusion.tune.tune_fusion` returns, and its summary for people."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from .ensemble import EnsembleSelection
    from .estimate import NestedEstimate
    from .modelio import FusionModel
    from .selection import Confirmation

__all__ = ["TuneResult"]


@dataclass
class TuneResult:
    """Outcome of :func:`fusion.tune.tune_fusion`.

    Attributes:
        best_score: OOF video macro-F1 of the chosen (trial, method) on the study's fold
            partition: the score that chose it, so optimistic; ``estimate`` is the honest one.
        best_params: the chosen trial's Optuna params (plus the chosen ``method``).
        family, method: chosen model family and aggregation.
        table: best score per (family, method) over finished trials, with trial counts.
        model: the refitted :class:`FusionModel`.
        model_id, model_dir: where it was saved (None when no models dir was available).
        paths: report files (confusion_png, per_class_csv, estimate_png with an estimate;
            confusion_selection_png, per_class_selection_csv, history_png, model_json).
        per_class: precision/recall/F1 per class of the nested estimate's predictions (or,
            with ``estimate='off'``, of the selection's out-of-fold ones); ``per_class_source``
            says which.
        groups: CV group counts. n_trials: finished trials in the study.
        confirmation: the best trials re-scored on other fold partitions (None when off).
        estimate: the nested estimate of the whole procedure (None with ``estimate='off'``).
        decision_rule: ``{"applied", "offsets", "reason"}``.
    """

    best_score: float
    best_params: dict
    family: str
    method: str
    table: pd.DataFrame
    model: "FusionModel | None"
    model_id: str
    model_dir: Path | None
    paths: dict[str, Path]
    per_class: pd.DataFrame
    groups: dict
    study_name: str
    storage: str | None
    n_trials: int
    seconds: float
    confirmation: "Confirmation | None" = None
    estimate: "NestedEstimate | None" = None
    decision_rule: dict = field(default_factory=dict)
    variant: str = "single"
    ensemble: "EnsembleSelection | None" = None
    per_class_source: str = "selection (optimistic)"

    def summary(self) -> str:
        """Human-readable summary (what ``cli.py tune-fusion`` prints)."""
        lines = [f"study {self.study_name!r} ({self.storage or 'in memory'}): {self.n_trials} finished trial(s) "
                 f"in {self.seconds:.1f} s",
                 f"CV groups: {self.groups['description']}",
                 "", "best video macro-F1 (out of fold) per model family and aggregation:",
                 self.table.to_string(index=False, float_format=lambda v: f"{v:.4f}"), "",
                 f"chosen: {self.family} + {self.method}: macro-F1 {self.best_score:.4f} on the folds "
                 "that chose it (optimistic)",
                 *([f"  the best of the {len(self.confirmation.candidates)} best trials over "
                    f"{len(self.confirmation.scores)} fold partitions: mean macro-F1 "
                    f"{self.confirmation.mean:.4f} ({', '.join(f'{x:.3f}' for x in self.confirmation.scores)})"]
                   if self.confirmation else []),
                 *([self.estimate.describe()] if self.estimate else
                   ["a tuning-only run (--no-refit): the confirmation, the estimate and the model are "
                    "left to a run of the same study without it"] if self.model is None else
                   ["no estimate of the whole procedure (--estimate off): the score above chose the "
                    "model and overstates what unseen videos will give"]),
                 *([f"ensemble selection over the trials: {self.ensemble.n_members} member(s), OOF macro-F1 "
                    f"{self.ensemble.score:.4f} vs {self.ensemble.best_single:.4f} for the best trial "
                    "(selection, optimistic)"]
                   if self.ensemble else []),
                 f"decision rule: {'applied' if self.decision_rule.get('applied') else 'not applied'}; "
                 f"variant chosen: {self.variant} ({self.decision_rule.get('reason', '')})",
                 f"deployed: {self.variant}" + (f" ({self.model_id})" if self.model is not None else ""),
                 f"params: {json.dumps(self.best_params, default=str)}", "",
                 f"per class, {self.per_class_source}:",
                 self.per_class.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        if self.model_dir is not None:
            lines += ["", f"model {self.model_id} saved in {self.model_dir}"]
            lines += [f"  {k}: {v}" for k, v in self.paths.items()]
        return "\n".join(lines)
