"""Rows of the store's tables built from arrays: a feature set's embeddings, an encoder's lineage."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Iterable

import numpy as np
import pyarrow as pa

from .errors import StoreError
from .schema import MODALITIES

__all__ = ["embeddings_table", "encoder_row", "utcnow"]


def utcnow() -> datetime:
    """Now, timezone-aware (UTC): the store's timestamps."""
    return datetime.now(timezone.utc)


def embeddings_table(encoder_id: str, dim: int, video_id: Iterable[str], window_idx: Iterable[int],
                     matrix: np.ndarray, missing_reason: Iterable[str | None] | None = None) -> pa.Table:
    """Rows of the ``embeddings`` table for one feature set.

    ``matrix`` is float32 ``(n_windows, dim)``; a row whose ``missing_reason`` is set (or that
    is all NaN) becomes a NULL embedding, never zeros.
    """
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise StoreError(f"encoder {encoder_id}: expected (n, {dim}) embeddings, got {matrix.shape}")
    n = matrix.shape[0]
    reasons = list(missing_reason) if missing_reason is not None else [None] * n
    if len(reasons) != n:
        raise StoreError(f"encoder {encoder_id}: {len(reasons)} missing reasons for {n} rows")
    nan_rows = np.isnan(matrix).all(axis=1) if n else np.zeros(0, bool)
    reasons = [r if r is not None or not nan_rows[i] else "missing" for i, r in enumerate(reasons)]
    valid = np.array([r is None for r in reasons], dtype=bool)
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    values = pa.array(matrix.reshape(-1), type=pa.float32())
    emb = pa.ListArray.from_arrays(offsets, values, mask=pa.array(~valid))
    return pa.table({
        "encoder_id": pa.array([encoder_id] * n, pa.string()),
        "video_id": pa.array(list(video_id), pa.string()),
        "window_idx": pa.array(np.asarray(list(window_idx), dtype=np.int32)),
        "embedding": emb,
        "missing_reason": pa.array(reasons, pa.string()),
    })


def encoder_row(encoder_id: str, name: str, modality: str, dim: int, version: str, config: dict,
                weights_sha256: str | None, packages: dict | None) -> dict:
    """A row of the ``encoders`` table."""
    if modality not in MODALITIES:
        raise StoreError(f"unknown modality {modality!r}; one of {', '.join(MODALITIES)}")
    return {"encoder_id": encoder_id, "name": name, "modality": modality, "dim": int(dim),
            "version": version, "config": json.dumps(config, sort_keys=True, default=str),
            "weights_sha256": weights_sha256, "packages": json.dumps(packages or {}, sort_keys=True),
            "registered_at": utcnow()}
