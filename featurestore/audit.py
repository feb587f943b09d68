"""Data audit of a feature store: duplicates, label conflicts, leakage, balance, coverage.

Every query is a named file ``sql/audit_*.sql`` run on an in-memory DuckDB
connection over the store's views, so the audit never takes the catalog's lock.

Duplicates are the ones ``featurestore.duplicates`` defines, the same pairs CV leakage
groups merge: the same ``path``, the same media bytes (SHA-256 of each existing file, or the
fingerprint stored on ingest), identical or near-identical transcripts (Jaccard of character
shingles), and near-identical per-video mean-pooled embeddings (cosine, standardised per dimension, in every
deciding modality, those with at least ``min_dim`` values). The pairs are computed in numpy
and registered in the audit's DuckDB connection, where the ``audit_*`` queries read them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from . import duplicates
from .pooling import pooled_means
from .schema import MODALITIES
from .sqlfiles import read_sql, run_script
from .store import FeatureStore, StoreError

#: Tables of an :class:`AuditReport`, in the order they are rendered.
TABLES: tuple[str, ...] = ("status", "failures", "class_balance", "speech", "coverage",
                           "duplicate_groups", "duplicates", "label_conflicts", "test_train_duplicates",
                           "speaker_clusters")

_TITLES = {
    "status": "Videos per split and embed status",
    "failures": "Failed videos (left out of training until a later embed succeeds)",
    "class_balance": "Class balance (labelled videos)",
    "speech": "Windows without speech",
    "coverage": "Coverage per modality (windows with an embedding)",
    "duplicate_groups": "Duplicate groups (connected duplicate pairs) and their labels",
    "duplicates": "Duplicate video pairs",
    "label_conflicts": "Duplicates with conflicting labels",
    "test_train_duplicates": "Test videos that duplicate training videos",
    "speaker_clusters": "Inferred speaker groups (voice clusters) and their agreement with manifest groups",
}


@dataclass
class AuditReport:
    """The audit's tables (pandas DataFrames keyed by :data:`TABLES`) and its settings."""

    tables: dict[str, pd.DataFrame]
    params: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """``{table name: DataFrame}``, in :data:`TABLES` order (copies)."""
        return {k: self.tables[k].copy() for k in TABLES}

    def to_text(self, max_rows: int = 25) -> str:
        """Readable fixed-width tables; long tables show their first ``max_rows`` rows."""
        p = self.params
        out = [f"Audit of {p.get('store')} (near-duplicate threshold {p.get('threshold')}, "
               f"near-transcript Jaccard {p.get('transcript_jaccard')}, "
               f"deciding modalities: {', '.join(p.get('deciding_modalities') or []) or 'none'}, "
               f"media hashed: {p.get('media_hashed', 0)} files)"]
        out += [f"note: {n}" for n in self.notes]
        for name in TABLES:
            df = self.tables[name]
            out.append("")
            out.append(f"== {_TITLES[name]} ({len(df)} rows)")
            if df.empty:
                out.append("(none)")
                continue
            shown = df.head(max_rows).astype(object).where(df.head(max_rows).notna(), "-")
            out.append(shown.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.4f}"))
            if len(df) > max_rows:
                out.append(f"... {len(df) - max_rows} more rows (see to_csv / to_json)")
        return "\n".join(out)

    def to_json(self, indent: int | None = 2) -> str:
        """``{"params", "notes", "tables": {name: [row objects]}}``; NaN becomes null."""
        tables = {k: [{c: _jsonable(v) for c, v in r.items()} for r in self.tables[k].to_dict("records")]
                  for k in TABLES}
        return json.dumps({"params": self.params, "notes": self.notes, "tables": tables},
                          indent=indent, default=str)

    def to_csv(self, directory: str | Path) -> list[Path]:
        """Write ``<directory>/<table>.csv`` for every table; returns the paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in TABLES:
            path = d / f"{name}.csv"
            self.tables[name].to_csv(path, index=False)
            paths.append(path)
        return paths


def _jsonable(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):           # numpy scalars
        v = v.item()
        return None if isinstance(v, float) and math.isnan(v) else v
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def audit(store: FeatureStore, threshold: float = duplicates.VECTOR_COSINE,
          min_dim: int = duplicates.MIN_DECIDING_DIM, hash_media: bool = True,
          transcript_jaccard: float = duplicates.TRANSCRIPT_JACCARD) -> AuditReport:
    """Audit ``store``; returns an :class:`AuditReport`.

    Parameters
    ----------
    threshold : cosine similarity (standardised per dimension) of per-video pooled vectors at or above which two
        videos are near duplicates (in every deciding modality both have).
    min_dim : modalities whose chosen encoder has fewer dims report similarity
        but do not decide near duplicates.
    hash_media : hash every video file that exists (reads each file once) so byte-identical
        files under different ids are caught even where the stored fingerprint is missing
        or stale; without it only the fingerprints stored on ingest are compared.
    transcript_jaccard : shingle Jaccard similarity at or above which two (long enough)
        transcripts are near duplicates.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold}: a cosine similarity in (0, 1] is needed, e.g. 0.98")
    if not 0.0 < transcript_jaccard <= 1.0:
        raise ValueError(f"transcript_jaccard={transcript_jaccard}: a Jaccard similarity in (0, 1] "
                         f"is needed, e.g. {duplicates.TRANSCRIPT_JACCARD}")
    chosen = store.feature_sets()
    con = store.connect()
    try:
        deciding = _setup_encoders(con, chosen, min_dim)
        n_hashed = _setup_media(con) if hash_media else _empty_media(con)
        ids = [v for (v,) in con.execute(read_sql("audit", "video_ids")).fetchall()]
        evidence = duplicates.video_evidence(con, ids)
        hashed = dict(con.execute(read_sql("audit", "media_hashes")).fetchall())
        media = [hashed.get(v) or s for v, s in zip(ids, evidence["sha256"])]
        vectors = _pooled_vectors(store, con, chosen, ids)
        pairs = duplicates.duplicate_pairs(ids, evidence["transcript"].tolist(), vectors, media,
                                           evidence["path"].tolist(), transcript_jaccard=transcript_jaccard,
                                           cosine=threshold, min_dim=min_dim)
        for m in MODALITIES:                      # one similarity column per modality, compared or not
            if f"{m}_sim" not in pairs:
                pairs[f"{m}_sim"] = np.nan
        sims = [f"{m}_sim" for m in MODALITIES]
        pairs = pairs[[c for c in pairs.columns if c not in sims] + sims]
        codes, _ = duplicates.leakage_groups(ids, pairs)
        con.register("audit_duplicate_pairs", pairs)
        con.register("audit_duplicate_members", _members(ids, codes, pairs))
        run_script(con, "audit", "pairs")
        tables = {
            "status": _df(con, read_sql("audit", "status")),
            "failures": _df(con, read_sql("audit", "failures")),
            "class_balance": _df(con, read_sql("audit", "class_balance")),
            "speech": _df(con, read_sql("audit", "speech")),
            "coverage": _df(con, read_sql("audit", "coverage")),
            "duplicate_groups": _df(con, read_sql("audit", "groups")),
            "duplicates": _df(con, read_sql("audit", "duplicates")),
            "label_conflicts": _df(con, read_sql("audit", "conflicts")),
            "test_train_duplicates": _df(con, read_sql("audit", "test_train")),
            "speaker_clusters": _speaker_clusters(con),
        }
        speaker_note = _speaker_note(con)
    finally:
        con.close()
    notes = [speaker_note] if speaker_note else []
    missing = [m for m in MODALITIES if m not in chosen]
    if missing:
        notes.append(f"no encoder for {', '.join(missing)}: those modalities were not compared")
    if not deciding:
        notes.append(f"no modality has >= {min_dim} dims, so only path, media and transcript "
                     "duplicates are found (lower min_dim to compare small vectors)")
    params = {"store": str(store.root), "threshold": float(threshold), "min_dim": int(min_dim),
              "transcript_jaccard": float(transcript_jaccard),
              "deciding_modalities": deciding, "media_hashed": n_hashed,
              "encoders": {m: c["encoder_id"] for m, c in chosen.items()}}
    return AuditReport(tables=tables, params=params, notes=notes)


def _speaker_clusters(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per inferred speaker group: size and agreement with the manifest (empty without any)."""
    from .sqlfiles import relation_columns
    if relation_columns(con, "speaker_groups") is None:
        return pd.DataFrame(columns=["speaker_group", "n_videos"])
    return _df(con, read_sql("audit", "speaker_clusters"))


def _speaker_note(con: duckdb.DuckDBPyConnection) -> str | None:
    """One line: clusters, threshold and, where manifest groups exist, ARI / purity / pair error."""
    from .sqlfiles import relation_columns
    from .speakers import agreement
    if relation_columns(con, "speaker_groups") is None:
        return None
    rows = con.execute(read_sql("audit", "speaker_memberships")).fetchall()
    if not rows:
        return None
    n_clusters = len({r[0] for r in rows})
    text = (f"speaker groups: {len(rows)} videos with speech in {n_clusters} voice clusters "
            f"(threshold {rows[0][2]:.3f}, from {rows[0][3]})")
    grouped = [r for r in rows if r[1] is not None]
    if len(grouped) >= 2:
        a = agreement([r[1] for r in grouped], [r[0] for r in grouped])
        text += (f"; on the {a['n_videos']} with a manifest group ({a['n_groups']} groups): ARI {a['ari']:.3f}, "
                 f"purity {a['purity']:.3f}, pair error {a['pair_error']:.3f}")
    return text


def _pooled_vectors(store: FeatureStore, con: duckdb.DuckDBPyConnection, chosen: dict[str, dict],
                    ids: list[str]) -> dict[str, np.ndarray]:
    """Modality -> float32 (len(ids), dim): each video's mean embedding over its stored windows
    (``pooling.pooled_means``, as CV pools), all-NaN rows where it has none."""
    pos = pd.Index(ids)
    win = con.execute(read_sql("audit", "window_keys")).df()
    wkey = (pos.get_indexer(win["video_id"]).astype(np.int64) << 32) | win["window_idx"].to_numpy(np.int64)
    out = {}
    for m in MODALITIES:
        c = chosen.get(m)
        if not c:
            continue
        try:
            keys, M = store.load_embeddings(c["encoder_id"], con=con, sort=False)
        except StoreError:                        # a chosen feature set without vectors yet
            continue
        code = pos.get_indexer(keys["video_id"].to_numpy(zero_copy_only=False)).astype(np.int64)
        key = (code << 32) | keys["window_idx"].to_numpy(zero_copy_only=False).astype(np.int64)
        keep = (code >= 0) & np.isin(key, wkey)
        out[m] = pooled_means(M[keep], code[keep], len(ids), {m: slice(0, M.shape[1])})[m]
    return out


def _members(ids: list[str], codes: np.ndarray, pairs: pd.DataFrame) -> pd.DataFrame:
    """``(video_id, group_id)`` of every video in a duplicate pair; group_id is the smallest
    video_id of its connected component."""
    in_pair = set(pairs["video_a"]) | set(pairs["video_b"])
    df = pd.DataFrame({"video_id": ids, "code": codes})
    df = df[df["video_id"].isin(in_pair)]
    df["group_id"] = df.groupby("code")["video_id"].transform("min")
    return df[["video_id", "group_id"]].reset_index(drop=True)


def _setup_encoders(con: duckdb.DuckDBPyConnection, chosen: dict[str, dict], min_dim: int) -> list[str]:
    run_script(con, "audit", "setup_encoders")
    insert = read_sql("audit", "insert_encoder")
    deciding = []
    for i, m in enumerate(MODALITIES):
        c = chosen.get(m)
        decides = bool(c) and int(c["dim"]) >= min_dim
        if decides:
            deciding.append(m)
        con.execute(insert, [i, m, c["encoder_id"] if c else None, c["name"] if c else None,
                             int(c["dim"]) if c else None, decides])
    return deciding


def _setup_media(con: duckdb.DuckDBPyConnection) -> int:
    paths = [p for (p,) in con.execute(read_sql("audit", "media_paths")).fetchall() if Path(p).is_file()]
    if not paths:
        return _empty_media(con)
    try:
        con.execute(read_sql("audit", "hash_media"), [paths])
    except duckdb.Error as exc:
        raise StoreError(f"cannot read video files to hash them ({exc}); "
                         "pass hash_media=False to audit without media hashes") from exc
    return len(paths)


def _empty_media(con: duckdb.DuckDBPyConnection) -> int:
    run_script(con, "audit", "no_media")
    return 0


def _df(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.execute(sql).df()
