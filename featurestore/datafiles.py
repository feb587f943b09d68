"""DuckLake's data files, read directly: the full-matrix path of a feature set.

DuckLake keeps a table's rows in Parquet data files, with delete files listing removed row
positions and, in files that compaction merged, each row's first snapshot. Reading those
files with pyarrow (:func:`read_data_files`) applies the same semantics as a query through
the extension and is several times faster for a whole feature set;
:func:`lists_to_numpy` turns the vectors into one float32 matrix without per-row work.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .objectstore import filesystem_for
from .sqlfiles import read_sql

__all__ = ["PARQUET_COMPRESSION", "PARQUET_ROW_GROUP_SIZE", "lists_to_numpy", "read_data_files"]

#: Parquet settings of the store's data files (set as DuckLake options when a store is made):
#: row groups of 16k rows let pyarrow decode a file's vectors on every core; LZ4 decodes
#: fastest (float vectors hardly compress with any codec). Spilled files use them too.
PARQUET_ROW_GROUP_SIZE = 16384
PARQUET_COMPRESSION = "lz4"

_SNAPSHOT_COLUMN = "_ducklake_internal_snapshot_id"


def read_data_files(con, table: str, snapshot: int, columns: list[str], key: str,
                     value: str) -> pa.Table | None:
    """Rows of ``table`` at ``snapshot`` whose ``key`` equals ``value``, read from the Parquet
    files DuckLake lists for that snapshot; None when a file has a layout this reader does not
    handle (the caller then asks DuckDB).

    A data file's rows are live unless its delete file lists their position; a file that
    compaction merged carries each row's first snapshot (``_ducklake_internal_snapshot_id``)
    and rows newer than ``snapshot`` are left out. Row groups whose statistics exclude
    ``value`` are skipped (``embeddings`` is partitioned by ``encoder_id``).
    """
    import pyarrow.parquet as pq

    listed = con.execute(read_sql("store", "listed_files"), [table, int(snapshot)]).fetchall()
    parts = []
    for data_file, delete_file in listed:
        fs, path = filesystem_for(data_file)
        pf = pq.ParquetFile(path, filesystem=fs)
        names = pf.schema_arrow.names
        internal = {n for n in names if n.startswith("_ducklake_internal_")}
        if not set(columns) | {key} <= set(names) or internal - {_SNAPSHOT_COLUMN, "_ducklake_internal_row_id"}:
            return None
        k = names.index(key)
        groups, positions, offset = [], [], 0
        for g in range(pf.num_row_groups):
            meta = pf.metadata.row_group(g)
            stats = meta.column(k).statistics
            if stats is None or not stats.has_min_max or stats.min <= value <= stats.max:
                groups.append(g)
                positions.append(np.arange(offset, offset + meta.num_rows))
            offset += meta.num_rows
        if not groups:
            continue
        extra = [key] + ([_SNAPSHOT_COLUMN] if _SNAPSHOT_COLUMN in names else [])
        t = pf.read_row_groups(groups, columns=list(dict.fromkeys(columns + extra)))
        keep = pc.equal(t[key], value).to_numpy(zero_copy_only=False)
        if delete_file:
            fs, path = filesystem_for(delete_file)
            dels = pq.read_table(path, filesystem=fs)
            if "pos" not in dels.column_names:
                return None
            keep &= ~np.isin(np.concatenate(positions), dels["pos"].to_numpy())
        if _SNAPSHOT_COLUMN in names:
            born = t[_SNAPSHOT_COLUMN].to_numpy(zero_copy_only=False)
            keep &= ~(born > snapshot)
        parts.append(t.filter(pa.array(keep)).select(columns))
    if not parts:
        # The columns and table vary per call (not prepared parameters): an empty typed result.
        return con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE false").to_arrow_table()
    return pa.concat_tables(parts, promote_options="default")


def lists_to_numpy(col: pa.ChunkedArray | pa.Array, dim: int | None = None, name: str = "") -> np.ndarray:
    """float32 ``(n, dim)`` from a list<float> column; NULL rows become NaN rows.

    Raises ValueError naming the column when a non-NULL vector is not ``dim`` long
    (``dim`` None: the longest vector's length). Reads the list offsets and values buffers
    directly: no per-row work.
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    n = sum(len(c) for c in chunks)
    if pa.types.is_fixed_size_list(col.type):
        size = col.type.list_size
        if dim is not None and dim != size:
            raise ValueError(f"{name or 'vector column'}: vectors have {size} values, expected {dim}")
        out = np.concatenate([c.values.slice(c.offset * size, len(c) * size).to_numpy(zero_copy_only=False)
                              .astype(np.float32, copy=False).reshape(len(c), size) for c in chunks]) \
            if n else np.zeros((0, size), np.float32)
        valid = np.concatenate([c.is_valid().to_numpy(zero_copy_only=False) for c in chunks]) if n else []
        if n and not np.all(valid):
            out = out.copy()
            out[~valid] = np.nan
        return out
    lengths = np.concatenate([np.diff(c.offsets.to_numpy()) for c in chunks]) if n else np.zeros(0, np.int64)
    valid = np.concatenate([c.is_valid().to_numpy(zero_copy_only=False) if c.null_count
                            else np.ones(len(c), bool) for c in chunks]) if n else np.zeros(0, bool)
    lengths = np.where(valid, lengths, 0)
    if dim is None:
        dim = int(lengths.max()) if n else 0
    bad = np.flatnonzero(valid & (lengths != dim))
    if bad.size:
        raise ValueError(f"{name or 'vector column'}: row {int(bad[0])} has {int(lengths[bad[0]])} "
                         f"values, expected {dim}; one feature set per modality has one dim")
    flat = np.concatenate([c.flatten().to_numpy(zero_copy_only=False) for c in chunks]) if n \
        else np.zeros(0, np.float32)
    flat = flat.astype(np.float32, copy=False)
    if valid.all():
        return flat.reshape(n, dim)
    out = np.full((n, dim), np.nan, dtype=np.float32)
    out[valid] = flat.reshape(-1, dim)
    return out
