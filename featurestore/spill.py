"""The Ray spill layout: data files written by worker processes, committed by the driver.

A worker cannot hold the store's writer connection, so it writes its inserts as Parquet files
in the table's folder under the store's data path, laid out and typed as DuckLake lays out its
own, and hands the driver a batch that only names them (:meth:`DataLayout.spill`). The driver
reads the layout from the DuckLake catalog (:func:`read_data_layout`) and registers the files
in the same transaction as the batch's other changes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .datafiles import PARQUET_COMPRESSION, PARQUET_ROW_GROUP_SIZE
from .errors import StoreError
from .objectstore import filesystem_for
from .sqlfiles import read_sql
from .writer import WriteBatch, as_table, check_table

__all__ = ["PARQUET_COMPRESSION", "PARQUET_ROW_GROUP_SIZE", "DataLayout", "read_data_layout"]


_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class DataLayout:
    """Where and how a process other than the committer writes data files of some tables.

    Made by the committer (:meth:`FeatureStore.data_layout`, :func:`read_data_layout`) and shipped to workers, which
    :meth:`spill` a :class:`WriteBatch`: its inserts into those tables become Parquet files
    in the table's folder under the store's data path (local or ``s3://``), laid out and
    typed as DuckLake lays out its own (hive-style ``column=value/`` folders for partitioned
    tables), and the batch then only names them. The committer registers the files with
    ``ducklake_add_data_files`` in the same transaction as the batch's deletes and other
    rows, so a spilled batch commits whole or not at all, like any other.
    """

    table_dirs: dict[str, str]                 # table -> its folder under the data path, ending "/"
    schemas: dict[str, pa.Schema]              # table -> Arrow schema of its columns
    partitions: dict[str, tuple[str, ...]]     # table -> identity partition columns

    def spill(self, batch: "WriteBatch", prefix: str = "ray") -> "WriteBatch":
        """``batch`` with its inserts into this layout's tables written to new data files."""
        import uuid

        import pyarrow.parquet as pq

        out = WriteBatch()
        pending: dict[str, list[pa.Table]] = {}
        for op, table, rows in batch.ops:
            if op == "insert" and table in self.table_dirs:
                pending.setdefault(table, []).append(self._conform(table, rows))
            else:
                out.ops.append((op, table, rows))
        for table, parts in pending.items():
            rows = pa.concat_tables(parts)
            paths = []
            for folder, part in self._partitioned(table, rows):
                fs, base = filesystem_for(self.table_dirs[table] + folder)
                fs.create_dir(base, recursive=True)
                name = f"{prefix}-{uuid.uuid4().hex}.parquet"
                pq.write_table(part, f"{base.rstrip('/')}/{name}", filesystem=fs,
                               compression=PARQUET_COMPRESSION, row_group_size=PARQUET_ROW_GROUP_SIZE)
                paths.append(self.table_dirs[table] + folder + name)
            # The deletes of these keys came earlier in the batch; the files follow them.
            out.add_files(table, paths)
        return out

    def _conform(self, table: str, rows) -> pa.Table:
        """``rows`` with exactly the table's columns and types (missing ones NULL)."""
        rows = as_table(rows)
        schema = self.schemas[table]
        cols = [rows[f.name].cast(f.type) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
                for f in schema]
        return pa.Table.from_arrays(cols, schema=schema)

    def _partitioned(self, table: str, rows: pa.Table) -> list[tuple[str, pa.Table]]:
        keys = self.partitions.get(table, ())
        if not keys:
            return [("", rows)]
        groups = rows.select(list(keys)).group_by(list(keys)).aggregate([]).to_pylist()
        out = []
        for g in groups:
            mask = None
            for k in keys:
                if g[k] is None or not _PARTITION_VALUE.match(str(g[k])):
                    raise StoreError(f"{table}: cannot write the partition {k}={g[k]!r} as a folder name")
                m = pc.equal(rows[k], g[k])
                mask = m if mask is None else pc.and_(mask, m)
            out.append(("".join(f"{k}={g[k]}/" for k in keys), rows.filter(mask)))
        return out


def read_data_layout(con: duckdb.DuckDBPyConnection, data_path: str, tables: Iterable[str]) -> DataLayout:
    """The :class:`DataLayout` of ``tables`` as the DuckLake catalog on ``con`` records it
    (folders, relative to ``data_path`` where the catalog says so, and identity partitions).

    Raises:
        StoreError: an unknown table, or a table partitioned by a transform other than identity
            (its folder names cannot be written outside DuckDB).
    """
    tables = list(tables)
    for t in tables:
        check_table(t)
    dirs = {name: (sp, srel, tp, trel)
            for name, sp, srel, tp, trel in con.execute(read_sql("store", "table_paths")).fetchall()}
    parts: dict[str, list[tuple[int, str, str]]] = {}
    for name, idx, column, transform in con.execute(read_sql("store", "partition_columns")).fetchall():
        parts.setdefault(name, []).append((idx, column, transform))
    # A table name cannot be a prepared parameter; check_table limited it to the store's tables.
    schemas = {t: con.execute(f'SELECT * FROM "{t}" LIMIT 0').to_arrow_table().schema for t in tables}
    table_dirs, partitions = {}, {}
    for t in tables:
        schema_path, schema_rel, table_path, table_rel = dirs[t]
        base = data_path if schema_rel else ""
        schema_dir = base + schema_path
        table_dirs[t] = (schema_dir if table_rel else "") + table_path
        if any(tr != "identity" for _, _, tr in parts.get(t, [])):
            raise StoreError(f"{t} is partitioned by a transform other than identity; "
                             "its data files cannot be written outside DuckDB")
        partitions[t] = tuple(c for _, c, _ in sorted(parts.get(t, [])))
    return DataLayout(table_dirs, schemas, partitions)
