"""Out-of-fold window predictions of a study's trials, kept as Parquet tables.

Every trial's out-of-fold window probabilities are what confirmation, the decision rule
and ensembles need later; a trial stores them as a Parquet file through Optuna's artifact
store (``<store>/optuna-artifacts/``, beside the study) and records the artifact id in its
``oof_artifact`` attribute, so a resumed study, or another worker sharing the study,
reads them back by id. Studies without a store (nested estimates, a bare connection) keep
them in memory.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.schema import N_CLASSES

ARTIFACT_DIR = "optuna-artifacts"


@dataclass
class OOFPredictions:
    """Window probabilities of validation videos.

    Attributes:
        probs: float32 (n_windows, n_classes) in ``schema.CLASSES`` order.
        video_id: str (n_windows,). window_idx: int32 (n_windows,).
    """

    probs: np.ndarray
    video_id: np.ndarray
    window_idx: np.ndarray

    @property
    def one_row_per_video(self) -> bool:
        return len(np.unique(self.video_id)) == len(self.video_id)

    def to_table(self) -> pa.Table:
        probs = np.ascontiguousarray(self.probs, dtype=np.float32)
        return pa.table({
            "video_id": pa.array(np.asarray(self.video_id).astype(str)),
            "window_idx": pa.array(np.asarray(self.window_idx, np.int32)),
            "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), probs.shape[1]),
        })

    @classmethod
    def from_table(cls, table: pa.Table) -> "OOFPredictions":
        probs = table.column("probs").combine_chunks()
        width = probs.type.list_size
        return cls(probs=probs.flatten().to_numpy().reshape(-1, width).astype(np.float32),
                   video_id=table.column("video_id").to_numpy(zero_copy_only=False).astype(str),
                   window_idx=table.column("window_idx").to_numpy().astype(np.int32))

    @classmethod
    def concat(cls, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> "OOFPredictions":
        """From per-fold ``(probs, video_id, window_idx)`` tuples."""
        if not parts:
            return cls(np.zeros((0, N_CLASSES), np.float32), np.zeros(0, str), np.zeros(0, np.int32))
        return cls(np.concatenate([p[0] for p in parts]).astype(np.float32),
                   np.concatenate([np.asarray(p[1]).astype(str) for p in parts]),
                   np.concatenate([p[2] for p in parts]).astype(np.int32))


class OOFArchive:
    """Where a study's out-of-fold predictions live: Optuna artifacts under ``root`` (or memory)."""

    def __init__(self, root: str | Path | None = None):
        self._memory: dict[tuple[str, int], OOFPredictions] = {}
        self.root = Path(root) if root is not None else None
        self._store = None
        if self.root is not None:
            from optuna.artifacts import FileSystemArtifactStore
            self.root.mkdir(parents=True, exist_ok=True)
            self._store = FileSystemArtifactStore(str(self.root))

    def save(self, trial, oof: OOFPredictions) -> None:
        """Keep ``oof`` for ``trial`` (an ``optuna.Trial`` being run)."""
        self._memory[(trial.study.study_name, trial.number)] = oof
        if self._store is None:
            return
        from optuna.artifacts import upload_artifact
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"oof-trial-{trial.number}.parquet"
            pq.write_table(oof.to_table(), path)
            artifact_id = upload_artifact(artifact_store=self._store, file_path=str(path), study_or_trial=trial)
        trial.set_user_attr("oof_artifact", artifact_id)

    def load(self, study_name: str, trial) -> OOFPredictions:
        """The out-of-fold predictions of a finished trial (``FrozenTrial``).

        Raises:
            LookupError: the trial kept none here (it ran in another process without an
                artifact store, or with an older version that stored none).
        """
        key = (study_name, trial.number)
        if key in self._memory:
            return self._memory[key]
        artifact_id = trial.user_attrs.get("oof_artifact")
        if self._store is None or artifact_id is None:
            raise LookupError(f"trial {trial.number} of study {study_name!r} has no stored out-of-fold "
                              "predictions; re-run it in a new study")
        from optuna.artifacts import download_artifact
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "oof.parquet"
            download_artifact(artifact_store=self._store, file_path=str(path), artifact_id=artifact_id)
            oof = OOFPredictions.from_table(pq.read_table(path))
        self._memory[key] = oof
        return oof
