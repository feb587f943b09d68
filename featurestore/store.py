"""The feature store: a DuckLake (Parquet data files + a SQL catalog) in one directory.

Layout of a store directory::

    catalog.sqlite     the DuckLake catalog (default; or a PostgreSQL database, see store.json)
    data/main/<table>/ Parquet data files, referenced relative to data/
    models/<model_id>/ fitted model files (models.path is relative to the store)
    store.json         format, schema version and where the catalog lives
    optuna.db          tune-fusion's study storage (default)

Why DuckLake: multi-table ACID transactions (one per embed chunk), snapshots and time
travel, compaction and file cleanup that are safe while writers run, a catalog that several
processes (SQLite) or machines (PostgreSQL) write at once, and data any DuckDB opens without
this package. Tables and views are defined once, in ``sql/schema.sql``.

Every write is a :class:`WriteBatch` committed in one transaction (:meth:`FeatureStore.commit`):
it replaces whole groups of rows (``REPLACE_KEYS``), bumps ``store_commits`` so that two
concurrent writers always conflict, and is retried from the start when it loses that race.
Rows that several kinds of writer share (a video's ``videos`` row and its ``windows``) are
never replayed from a plan made before the race: such a write is a *plan* (a function of the
transaction's connection) that reads the rows as they are inside the transaction and merges
into them, and it is evaluated again on every attempt (:data:`Plan`).
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping
from urllib.parse import parse_qs, unquote, urlparse

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UserError
from .objectstore import configure_duckdb, filesystem_for, is_remote, normalise_data_path
from .schema import MODALITIES
from .sqlfiles import read_sql, run_script, sql_literal

CATALOG_FILE = "catalog.sqlite"
STORE_FILE = "store.json"
DATA_DIR = "data"
LAKE = "store"               # the name the lake is attached under (and USE'd)
STORE_FORMAT = "reels-emotion/ducklake"
#: Bumped when sql/schema.sql changes; recorded in ``store_commits.schema_version``.
STORE_SCHEMA_VERSION = 3
#: The script queries that make a store's schema, in order (``sql/schema.sql``, then the
#: ``video_predictions`` view of ``sql/aggregate.sql``). An upgrade runs them all but
#: ``partitions`` (tables and columns are added with IF NOT EXISTS; rows are never touched).
SCHEMA_SCRIPTS = (("schema", "tables"), ("schema", "partitions"), ("schema", "upgrade_columns"),
                  ("schema", "rules"), ("schema", "views"), ("aggregate", "install"))

#: The groups of rows a write replaces as a whole: writing rows for a key first deletes every
#: stored row with that key, in the same transaction. This is the store's only "newest wins".
REPLACE_KEYS: dict[str, tuple[str, ...]] = {
    "videos": ("video_id",),
    "windows": ("video_id",),
    "segments": ("video_id", "source"),
    "embeddings": ("encoder_id", "video_id"),
    "video_features": ("video_id", "encoder_id"),
    "encoders": ("encoder_id",),
    "feature_sets": ("modality",),
    "models": ("model_id",),
    "window_predictions": ("model_id", "video_id"),
    "speaker_groups": ("video_id",),
}
TABLES = tuple(REPLACE_KEYS)
#: Tables holding per-video rows, cleared when a video's media changes.
VIDEO_TABLES = ("windows", "segments", "embeddings", "video_features", "window_predictions")

_RETRYABLE = ("conflict", "database is locked", "busy", "could not serialize", "retry")


class StoreError(UserError, RuntimeError):
    """The store cannot do what was asked (wrong path, unknown encoder, failed commit...)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------- extensions and catalogs
def _packaged_extension(name: str) -> str | None:
    """Path of the ``.duckdb_extension`` file a ``duckdb-extension-<name>`` wheel ships for this
    duckdb version, or None (then DuckDB's own INSTALL is used, which needs the internet)."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    exact = os.path.join(root, "extensions", f"v{duckdb.__version__}", f"{name}.duckdb_extension")
    if os.path.exists(exact):
        return exact
    found = sorted(glob.glob(os.path.join(root, "extensions", "*", f"{name}.duckdb_extension")))
    return found[-1] if found else None


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """LOAD a DuckDB extension: from its PyPI package when installed (offline), else from
    DuckDB's extension directory, else ``INSTALL`` it from DuckDB's repository (online)."""
    path = _packaged_extension(name)
    if path:
        con.execute(f"LOAD {sql_literal(path)}")
        return
    try:
        con.execute(f"LOAD {name}")
    except duckdb.Error:
        try:
            con.execute(f"INSTALL {name}")
            con.execute(f"LOAD {name}")
        except duckdb.Error as exc:
            raise StoreError(
                f"cannot load the DuckDB extension {name!r}: pip install "
                f"'duckdb-extension-{name.replace('_', '-')}=={duckdb.__version__}' (offline), "
                f"or let DuckDB INSTALL it with internet access ({exc})") from exc


@dataclass(frozen=True)
class Catalog:
    """Where a store's DuckLake catalog lives: a SQLite file in the store, or PostgreSQL."""

    kind: str                      # "sqlite" | "postgres"
    target: str                    # sqlite: file path; postgres: libpq connection string
    schema: str | None = None      # postgres: the schema holding this store's catalog tables

    @classmethod
    def parse(cls, spec: str | None, root: Path) -> "Catalog":
        """``None``/``sqlite`` -> ``<root>/catalog.sqlite``; ``sqlite:PATH`` (relative to the store);
        ``postgresql://user[:password]@host[:port]/db[?schema=name]``."""
        if spec in (None, "", "sqlite"):
            return cls("sqlite", str(root / CATALOG_FILE))
        if spec.startswith("sqlite:"):
            p = Path(spec[len("sqlite:"):])
            return cls("sqlite", str(p if p.is_absolute() else root / p))
        url = urlparse(spec)
        if url.scheme.split("+")[0] in ("postgresql", "postgres"):
            parts = {"dbname": url.path.lstrip("/") or "postgres", "host": url.hostname,
                     "port": url.port, "user": unquote(url.username) if url.username else None,
                     "password": unquote(url.password) if url.password else None}
            target = " ".join(f"{k}={v}" for k, v in parts.items() if v)
            schema = parse_qs(url.query).get("schema", [None])[0]
            return cls("postgres", target, schema)
        raise StoreError(f"--catalog {spec!r}: use a postgresql://user@host:port/db URL, or leave it "
                         f"out for a SQLite catalog inside the store")

    def attach_uri(self) -> str:
        return f"ducklake:{self.kind}:{self.target}"

    def extension(self) -> str:
        return "sqlite_scanner" if self.kind == "sqlite" else "postgres_scanner"


# ---------------------------------------------------------------- writes
@dataclass
class WriteBatch:
    """Changes committed together: deletes of row groups and inserts, in order.

    ``replace(table, rows)`` deletes every stored row sharing a ``REPLACE_KEYS[table]`` key with
    ``rows`` and inserts ``rows``; ``delete(table, keys)`` only deletes (``keys``: key columns). Rows are Arrow tables,
    pandas frames, dicts of columns or lists of row dicts; columns the table has and the rows
    lack are NULL. ``add_files(table, paths)`` registers Parquet files that another process
    wrote under the store's data path (:meth:`DataLayout.spill`) as rows of ``table``.
    """

    ops: list[tuple[str, str, pa.Table]] = field(default_factory=list)

    def replace(self, table: str, rows) -> "WriteBatch":
        _check_table(table)
        rows = _as_table(rows)
        if rows.num_rows:
            self.delete(table, rows.select(list(REPLACE_KEYS[table])))
            self.ops.append(("insert", table, rows))
        return self

    def delete(self, table: str, keys) -> "WriteBatch":
        _check_table(table)
        keys = _as_table(keys)
        if keys.num_rows:
            self.ops.append(("delete", table, _unique_rows(keys)))
        return self

    def add_files(self, table: str, paths: Iterable[str]) -> "WriteBatch":
        """Register these data files (full paths under the store's data path) in ``table``."""
        _check_table(table)
        paths = [str(p) for p in paths]
        if paths:
            self.ops.append(("files", table, pa.table({"path": pa.array(paths, pa.string())})))
        return self

    def delete_videos(self, video_ids: Iterable[str], tables: Iterable[str] = VIDEO_TABLES) -> "WriteBatch":
        """Every row of ``video_ids`` in ``tables`` (a video whose media changed)."""
        ids = pa.table({"video_id": pa.array(list(video_ids), pa.string())})
        for t in tables:
            self.delete(t, ids)
        return self

    def __bool__(self) -> bool:
        return bool(self.ops)


#: A write planned inside its transaction: called with the writer's connection after BEGIN
#: (at the snapshot the commit will race from), it returns the batch to apply. Called again on
#: every retry, so what it reads is always the latest committed state.
Plan = Callable[[duckdb.DuckDBPyConnection], WriteBatch]


#: Parquet settings of the store's data files (set as DuckLake options when a store is made):
#: row groups of 16k rows let pyarrow decode a file's vectors on every core; LZ4 decodes
#: fastest (float vectors hardly compress with any codec).
PARQUET_ROW_GROUP_SIZE = 16384
PARQUET_COMPRESSION = "lz4"
_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class DataLayout:
    """Where and how a process other than the committer writes data files of some tables.

    Made by the committer (:meth:`FeatureStore.data_layout`) and shipped to workers, which
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
        rows = _as_table(rows)
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


def _with_retries(attempt, retries: int = 50, data_path: str | None = None):
    """``attempt()``, run again with a growing random back-off while it loses commit races
    with other writers (DuckLake conflicts, a busy catalog); other errors pass through.

    With ``data_path``, an attempt that could not open one of the store's own data files is
    retried too: a ``compact`` run meanwhile replaced and deleted a file that the attempt's
    snapshot still listed (only with a short ``--cleanup-older-than``), and the next attempt
    reads the current snapshot's files."""
    delay = 0.02
    for n in range(retries + 1):
        try:
            return attempt()
        except duckdb.Error as exc:
            msg = str(exc).lower()
            stale = data_path is not None and "cannot open file" in msg and data_path.lower() in msg
            if not (stale or any(m in msg for m in _RETRYABLE)) or n == retries:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 1.6, 1.0)
    raise AssertionError("unreachable")


def _key_filter(keys: pa.Table) -> tuple[str, list]:
    """A WHERE clause matching the rows of ``keys`` (its columns are the key), with literal
    values as parameters: ``video_id IN (?, ?)`` or ``(encoder_id = ? AND video_id IN (?))
    OR ...``. Literal lists let DuckLake skip every data file whose statistics exclude them,
    so a commit reads only the files that hold the replaced videos, not the whole table."""
    cols = keys.column_names
    rows = keys.to_pylist()
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(r[c] for c in cols[:-1]), []).append(r[cols[-1]])
    clauses, params = [], []
    for prefix, values in groups.items():
        parts = [f'"{c}" = ?' for c in cols[:-1]]
        parts.append(f'"{cols[-1]}" IN ({", ".join("?" * len(values))})')
        clauses.append("(" + " AND ".join(parts) + ")")
        params += [*prefix, *values]
    return " OR ".join(clauses), params


def coalesce_ops(ops: list[tuple[str, str, pa.Table]]) -> list[tuple[str, str, pa.Table]]:
    """``ops`` with the deletes of one table (same key columns) merged into one statement, and
    its inserts likewise, wherever moving an op past the others cannot change the result.

    A batch of n videos replaces each video's groups one by one: 2n statements per table,
    each ~10-25 ms against a DuckLake catalog (measured: a 32-video block spent 3.6 s in
    them). An op moves back only past ops on other tables, or past ops on its table that
    cannot touch its rows: a delete past an insert that holds none of its keys, an insert past
    a delete that names none of its rows. Anything else (a key replaced twice in one batch,
    registered files, whose rows are not read here) stays in place, so the outcome is
    always that of the ops in order.
    """
    out: list[list] = []   # [op, table, [parts]]
    for op, table, rows in ops:
        target = _merge_target(out, op, table, rows) if op in ("delete", "insert") else None
        if target is None:
            out.append([op, table, [rows]])
        else:
            target[2].append(rows)
    merged = []
    for op, table, parts in out:
        rows = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="default")
        merged.append((op, table, _unique_rows(rows) if op == "delete" and len(parts) > 1 else rows))
    return merged


def _merge_target(out: list[list], op: str, table: str, rows: pa.Table) -> list | None:
    """The earlier entry of ``out`` that ``(op, table, rows)`` can join, or None."""
    for entry in reversed(out):
        e_op, e_table, parts = entry
        if e_table != table:
            continue
        if e_op == "files":
            return None
        if e_op == op:
            if _same_columns(parts[0], rows):
                return entry
            continue  # deletes commute with deletes, inserts with inserts
        # The other kind on this table: passing it must not change which rows survive.
        if op == "delete" and any(_may_match(rows, inserted) for inserted in parts):
            return None
        if op == "insert" and any(_may_match(deleted, rows) for deleted in parts):
            return None
    return None


def _same_columns(a: pa.Table, b: pa.Table) -> bool:
    """Whether ``a`` and ``b`` concatenate into one table (same columns; an all-NULL column
    takes the other's type)."""
    if a.column_names != b.column_names:
        return False
    try:
        pa.unify_schemas([a.schema, b.schema], promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def _may_match(keys: pa.Table, rows: pa.Table) -> bool:
    """Whether some row of ``rows`` may carry one of ``keys``' key tuples (column-wise test:
    it can say yes for a row that matches none, never no for one that does)."""
    if not set(keys.column_names) <= set(rows.column_names):
        return True
    mask = None
    for c in keys.column_names:
        m = pc.is_in(rows[c], value_set=keys[c].combine_chunks() if isinstance(keys[c], pa.ChunkedArray)
                     else keys[c])
        mask = m if mask is None else pc.and_(mask, m)
    return bool(pc.any(mask).as_py()) if mask is not None and len(mask) else False


def _check_table(table: str) -> None:
    if table not in REPLACE_KEYS:
        raise StoreError(f"unknown store table {table!r}; one of {', '.join(TABLES)}")


def _unique_rows(keys: pa.Table) -> pa.Table:
    return keys.group_by(keys.column_names).aggregate([])


def _as_table(rows) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, list):
        return pa.Table.from_pylist(rows)
    if isinstance(rows, dict):
        return pa.table(rows)
    import pandas as pd
    if isinstance(rows, pd.DataFrame):
        return pa.Table.from_pandas(rows, preserve_index=False)
    raise TypeError(f"cannot write rows from {type(rows).__name__}")


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


# ---------------------------------------------------------------- the store
class FeatureStore:
    """A DuckLake feature store in a directory.

    ``FeatureStore(path)`` opens (and, with ``create=True``, makes) a store. ``catalog`` puts a
    new store's catalog on PostgreSQL (``postgresql://user@host:port/db?schema=name``);
    ``data_path`` (``s3://bucket/prefix``) puts a new store's data files on object storage
    (``featurestore.objectstore``) while the directory keeps ``store.json``, ``models/`` and
    a SQLite catalog. An existing store remembers both in ``store.json``.

    Tables: ``videos``, ``windows``, ``segments``, ``embeddings``, ``video_features``,
    ``encoders``, ``feature_sets``, ``models``, ``window_predictions``; views:
    ``fusion_vectors``, ``video_predictions`` (``sql/schema.sql``).
    """

    def __init__(self, root: str | Path, create: bool = True, catalog: str | None = None,
                 data_path: str | None = None):
        if is_remote(root):
            raise StoreError(
                f"--store {root}: the store is a local directory (its store.json, models and a SQLite "
                "catalog live there); to keep its data files on S3 create it with "
                f"`embed --store DIR --data-path {root}` (optionally --catalog postgresql://... for "
                "many machines)")
        if data_path is not None and not is_remote(data_path):
            raise StoreError(f"--data-path {data_path!r}: only s3://bucket/prefix is supported; a local "
                             "store keeps its data files in its own data/ folder")
        wanted_data = normalise_data_path(data_path) if data_path else None
        self.root = Path(root).resolve()
        self._data_url: str | None = None
        info_path = self.root / STORE_FILE
        if not info_path.exists() and create and not (self.root / "parts").is_dir():
            # Several processes may create one store at once (embed shards): one of them does.
            import fcntl
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / ".create.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not info_path.exists():
                    self.catalog = Catalog.parse(catalog, self.root)
                    self._data_url = wanted_data
                    self._create(catalog)
        if info_path.exists():
            info = json.loads(info_path.read_text())
            if catalog and Catalog.parse(catalog, self.root) != Catalog.parse(info.get("catalog"), self.root):
                raise StoreError(f"{self.root} keeps its catalog at {info.get('catalog')}, not {catalog}")
            if wanted_data and wanted_data != info.get("data_path"):
                raise StoreError(f"{self.root} keeps its data files at {info.get('data_path') or DATA_DIR + '/'}, "
                                 f"not {wanted_data}")
            self.catalog = Catalog.parse(info.get("catalog"), self.root)
            self._data_url = info.get("data_path")
            if info.get("schema_version", 1) < STORE_SCHEMA_VERSION:
                self._upgrade()
        elif (self.root / "parts").is_dir():
            raise StoreError(f"{self.root} is a store of the earlier parts/ format, which this version "
                             "no longer reads; embed the manifest again into a new --store")
        elif not create:
            raise StoreError(f"{self.root} is not a feature store (no {STORE_FILE}); create one with "
                             "`cli.py embed --store PATH ...`")
        self._writer: duckdb.DuckDBPyConnection | None = None

    # ------------------------------------------------------------------ layout
    @property
    def data_dir(self) -> Path:
        """The local data folder (``data/``); a store with its data on S3 has none."""
        if self._data_url:
            raise StoreError(f"{self.root} keeps its data files at {self._data_url}, not in a local folder")
        return self.root / DATA_DIR

    @property
    def data_path(self) -> str:
        """Where the data files live, ending in ``/``: the local ``data/`` folder or an ``s3://`` URL."""
        return self._data_url or str(self.root / DATA_DIR) + "/"

    @property
    def remote(self) -> bool:
        """Whether the data files are on object storage."""
        return self._data_url is not None

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def _create(self, catalog_spec: str | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.remote:
            self.data_dir.mkdir(exist_ok=True)
        self.models_dir.mkdir(exist_ok=True)
        con = duckdb.connect()
        try:
            load_extension(con, "ducklake")
            load_extension(con, self.catalog.extension())
            if self.remote:
                configure_duckdb(con)
            # Created from inside the store with a relative DATA_PATH, so the catalog records
            # 'data/' and every file path relative to it: the directory can be moved or zipped.
            # Files on S3 are recorded relative to the s3:// data path the same way.
            cwd = os.getcwd()
            os.chdir(self.root)
            try:
                con.execute(f"ATTACH {sql_literal(self.catalog.attach_uri())} AS {LAKE} "
                            f"({self._attach_options(data_path=self._data_url or DATA_DIR + '/')})")
                con.execute(f"DETACH {LAKE}")
            finally:
                os.chdir(cwd)
        finally:
            con.close()
        if self.catalog.kind == "sqlite":
            # Write-ahead logging: a reader's open transaction (a notebook's connection) then
            # never blocks a writer's commit, as it does in SQLite's default rollback mode.
            import sqlite3
            with sqlite3.connect(self.catalog.target) as lite:
                lite.execute("PRAGMA journal_mode=WAL")
        con = self.connect(read_only=False)
        try:
            self._install_schema(con)
        finally:
            con.close()
        spec = catalog_spec or f"sqlite:{CATALOG_FILE}"
        info = {"format": STORE_FORMAT, "catalog": spec, "schema_version": STORE_SCHEMA_VERSION}
        if self.remote:
            info["data_path"] = self._data_url
        self._write_info(info)

    def _write_info(self, info: dict) -> None:
        tmp = self.root / (STORE_FILE + ".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, self.root / STORE_FILE)

    def _upgrade(self) -> None:
        """Bring a store made by an earlier schema version up to this one, once, on open.

        New tables and columns are added (existing rows get NULL in them) and the derived
        objects (the shared-rule macros, the views, the aggregation) are re-created, in one
        transaction; no row is touched.
        The file lock makes concurrent openers (embed shards) upgrade once.
        """
        import fcntl
        with open(self.root / ".create.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            info = json.loads((self.root / STORE_FILE).read_text())
            if info.get("schema_version", 1) >= STORE_SCHEMA_VERSION:
                return
            try:
                con = self.connect(read_only=False)
            except StoreError as exc:
                raise StoreError(f"{self.root} was made by an earlier version (schema "
                                 f"{info.get('schema_version', 1)}, this one reads {STORE_SCHEMA_VERSION}) "
                                 f"and could not be opened to upgrade it: {exc}") from exc
            def attempt() -> None:
                try:
                    self._install_schema(con, upgrade=True)
                except duckdb.Error:
                    con.execute("ROLLBACK")
                    raise
            try:
                _with_retries(attempt, 50)
            finally:
                con.close()
            self._write_info({**info, "schema_version": STORE_SCHEMA_VERSION})

    def _install_schema(self, con: duckdb.DuckDBPyConnection, upgrade: bool = False) -> None:
        """Run ``SCHEMA_SCRIPTS`` in one transaction; ``upgrade``: an existing store's, whose
        rows stay as they are (new tables and columns are added; partitioning is set once, at
        creation)."""
        con.execute(f"USE {LAKE}")
        con.execute(f"CALL {LAKE}.set_option('parquet_row_group_size', {PARQUET_ROW_GROUP_SIZE})")
        con.execute(f"CALL {LAKE}.set_option('parquet_compression', {sql_literal(PARQUET_COMPRESSION)})")
        con.execute("BEGIN")
        # schema.sql, then aggregate.sql's video_predictions: the store runs the files and
        # knows nothing of the aggregation (fusion.aggregate owns that SQL).
        for file, name in SCHEMA_SCRIPTS:
            if not (upgrade and (file, name) == ("schema", "partitions")):
                run_script(con, file, name)
        if con.execute("SELECT count(*) FROM store_commits").fetchone()[0] == 0:
            con.execute("INSERT INTO store_commits VALUES (0, ?)", [STORE_SCHEMA_VERSION])
        else:
            con.execute("UPDATE store_commits SET schema_version = ?", [STORE_SCHEMA_VERSION])
        con.execute("COMMIT")

    def _attach_options(self, read_only: bool = False, snapshot: int | None = None,
                        data_path: str | None = None) -> str:
        opts = []
        if read_only or snapshot is not None:
            opts.append("READ_ONLY")
        if data_path is None:
            opts += [f"DATA_PATH {sql_literal(self.data_path)}", "OVERRIDE_DATA_PATH true"]
        else:
            opts.append(f"DATA_PATH {sql_literal(data_path)}")
        if self.catalog.schema:
            opts.append(f"METADATA_SCHEMA {sql_literal(self.catalog.schema)}")
        if snapshot is not None:
            opts.append(f"SNAPSHOT_VERSION {int(snapshot)}")
        # Small commits go to Parquet files, not into the catalog: readers without this package
        # and the full-matrix loader then see one kind of storage.
        opts.append("DATA_INLINING_ROW_LIMIT 0")
        return ", ".join(opts)

    # ------------------------------------------------------------------ connections
    def connect(self, read_only: bool = True, snapshot: int | None = None,
                encoders: Mapping[str, str] | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the store attached (as ``store``, the default schema).

        ``snapshot`` reads the store as of that snapshot id (time travel, read-only).
        ``encoders`` (``{modality: encoder_id}``) makes ``fusion_vectors`` serve those feature
        sets on this connection instead of the store's named choice (a model's own).
        Readers never block writers: each connection sees the snapshot current when it reads.
        """
        con = duckdb.connect()
        try:
            load_extension(con, "ducklake")
            load_extension(con, self.catalog.extension())
            if self.remote:
                configure_duckdb(con)
            con.execute(f"ATTACH {sql_literal(self.catalog.attach_uri())} AS {LAKE} "
                        f"({self._attach_options(read_only=read_only, snapshot=snapshot)})")
            con.execute(f"USE {LAKE}")
            if not read_only:
                con.execute("SET ducklake_max_retry_count = 100")
            if encoders:
                run_script(con, "schema", "connection_encoders")
                for m in MODALITIES:
                    if encoders.get(m):
                        con.execute(read_sql("schema", "connection_encoder"), [m, encoders[m]])
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"cannot open the store {self.root} (catalog {self.catalog.attach_uri()}): "
                             f"{exc}") from exc
        return con

    def query(self, sql: str, params: list | None = None, snapshot: int | None = None,
              encoders: Mapping[str, str] | None = None) -> pa.Table:
        """Run ``sql`` against the store (read-only) and return an Arrow table."""
        con = self.connect(read_only=True, snapshot=snapshot, encoders=encoders)
        try:
            # execute() with parameters: a parameterised con.sql() relation reads DuckLake
            # tables an order of magnitude slower (measured: 32 s against 1 s, 100k vectors).
            return (con.execute(sql, params) if params else con.sql(sql)).to_arrow_table()
        finally:
            con.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def commit(self, batch: "WriteBatch | Plan", retries: int = 50) -> None:
        """Apply ``batch`` in one transaction (``current_snapshot`` then names the result, as
        long as no other process commits in between).

        ``batch`` is a :class:`WriteBatch`, or a :data:`Plan`: a function called with the
        transaction's connection after it began, which reads what it needs there and returns
        the batch (it may also run statements itself, as ``sql --write`` does). A commit that
        loses a race with another writer is rolled back and run again from the start, up to
        ``retries`` times, with a random back-off; a plan is called again each time, so it
        merges into the rows the winner committed instead of overwriting them.
        """
        if isinstance(batch, WriteBatch) and not batch:
            return
        try:
            _with_retries(lambda: self._apply(batch), retries, data_path=self.data_path)
        except duckdb.Error as exc:
            raise StoreError(f"commit to {self.root} failed: {exc}") from exc

    def execute_write(self, sql: str, params: list | None = None, retries: int = 50) -> None:
        """Run ``sql`` (one or more statements that change the store) as one writer
        transaction: the commit counter is bumped with it, so it conflicts with every concurrent
        writer and, when it loses, runs again against the winner's rows (SQL re-reads them).
        Statements that open or close transactions themselves are refused."""
        if re.search(r"^\s*(BEGIN|COMMIT|ROLLBACK|ABORT|END)\b|;\s*(BEGIN|COMMIT|ROLLBACK|ABORT|END)\b",
                     sql, re.IGNORECASE):
            raise StoreError("sql --write runs the statements in one transaction of its own; leave out "
                             "BEGIN/COMMIT/ROLLBACK")

        def plan(con: duckdb.DuckDBPyConnection) -> WriteBatch:
            con.execute(sql, params) if params else con.execute(sql)
            return WriteBatch()

        self.commit(plan, retries)

    def _apply(self, batch: "WriteBatch | Plan") -> None:
        """One attempt at ``batch``'s transaction; rolled back if anything fails."""
        if self._writer is None:
            self._writer = self.connect(read_only=False)
        con = self._writer
        registered: list[str] = []
        try:
            con.execute("BEGIN")
            con.execute("UPDATE store_commits SET seq = seq + 1")
            if not isinstance(batch, WriteBatch):
                batch = batch(con)
            for k, (op, table, rows) in enumerate(coalesce_ops(batch.ops)):
                name = f"_batch_{k}"
                con.register(name, rows)
                registered.append(name)
                if op == "insert":
                    cols = ", ".join(f'"{c}"' for c in rows.column_names)
                    con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM {name}')
                elif op == "files":
                    files = ", ".join(sql_literal(p) for p in rows.column("path").to_pylist())
                    con.execute(f"CALL ducklake_add_data_files({sql_literal(LAKE)}, {sql_literal(table)}, "
                                f"[{files}])")
                else:
                    where, params = _key_filter(rows)
                    con.execute(f'DELETE FROM "{table}" WHERE {where}', params)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            if "cannot open file" in str(exc).lower():
                # The attached catalog may keep listing files compaction deleted: attach anew.
                for name in registered:
                    con.unregister(name)
                registered.clear()
                con.close()
                self._writer = None
            raise
        finally:
            for name in registered:
                con.unregister(name)

    def data_layout(self, tables: Iterable[str]) -> DataLayout:
        """How other processes write data files of ``tables`` for this store (:class:`DataLayout`)."""
        tables = list(tables)
        for t in tables:
            _check_table(t)
        meta = f"__ducklake_metadata_{LAKE}"
        con = self.connect()
        try:
            dirs = {name: (sp, srel, tp, trel) for name, sp, srel, tp, trel in con.execute(
                f"SELECT t.table_name, s.path, s.path_is_relative, t.path, t.path_is_relative "
                f"FROM {meta}.ducklake_table t JOIN {meta}.ducklake_schema s USING (schema_id) "
                "WHERE t.end_snapshot IS NULL AND s.end_snapshot IS NULL").fetchall()}
            parts: dict[str, list[tuple[int, str, str]]] = {}
            for name, idx, column, transform in con.execute(
                    f"SELECT t.table_name, pc.partition_key_index, c.column_name, pc.transform "
                    f"FROM {meta}.ducklake_partition_info pi "
                    f"JOIN {meta}.ducklake_partition_column pc USING (partition_id, table_id) "
                    f"JOIN {meta}.ducklake_table t ON t.table_id = pi.table_id AND t.end_snapshot IS NULL "
                    f"JOIN {meta}.ducklake_column c ON c.table_id = pi.table_id AND c.column_id = pc.column_id "
                    "AND c.end_snapshot IS NULL WHERE pi.end_snapshot IS NULL").fetchall():
                parts.setdefault(name, []).append((idx, column, transform))
            schemas = {t: con.execute(f'SELECT * FROM "{t}" LIMIT 0').to_arrow_table().schema for t in tables}
        finally:
            con.close()
        table_dirs, partitions = {}, {}
        for t in tables:
            schema_path, schema_rel, table_path, table_rel = dirs[t]
            base = self.data_path if schema_rel else ""
            schema_dir = base + schema_path
            table_dirs[t] = (schema_dir if table_rel else "") + table_path
            if any(tr != "identity" for _, _, tr in parts.get(t, [])):
                raise StoreError(f"{t} is partitioned by a transform other than identity; "
                                 "its data files cannot be written outside DuckDB")
            partitions[t] = tuple(c for _, c, _ in sorted(parts.get(t, [])))
        return DataLayout(table_dirs, schemas, partitions)

    @staticmethod
    def _snapshot_id(con) -> int:
        return int(con.execute(f"SELECT max(snapshot_id) FROM {LAKE}.snapshots()").fetchone()[0])

    def put(self, table: str, rows) -> None:
        """Replace ``rows``' groups in ``table`` (:class:`WriteBatch.replace`) in one commit."""
        self.commit(WriteBatch().replace(table, rows))

    def write_embeddings(self, encoder_id: str, dim: int, video_id: Iterable[str],
                         window_idx: Iterable[int], matrix: np.ndarray,
                         missing_reason: Iterable[str | None] | None = None) -> None:
        """Replace the embeddings of these videos under ``encoder_id`` (one commit)."""
        self.put("embeddings", embeddings_table(encoder_id, dim, video_id, window_idx,
                                                       matrix, missing_reason))

    def register_encoder(self, name: str, modality: str, dim: int, version: str, config: dict,
                         weights_sha256: str | None, packages: dict | None, encoder_id: str) -> str:
        """Record an encoder configuration's lineage; returns its id. The first encoder of a
        modality becomes that modality's feature set (as in ``embed``); later ones do not."""
        batch = WriteBatch().replace("encoders", [encoder_row(encoder_id, name, modality, dim, version,
                                                              config, weights_sha256, packages)])
        if modality not in self.feature_sets():
            batch.replace("feature_sets", [{"modality": modality, "encoder_id": encoder_id,
                                            "chosen_at": utcnow()}])
        self.commit(batch)
        return encoder_id

    # ------------------------------------------------------------------ reading
    def current_snapshot(self) -> int:
        con = self.connect()
        try:
            return self._snapshot_id(con)
        finally:
            con.close()

    def snapshots(self) -> pa.Table:
        """Every snapshot: id, time, schema version and what it changed."""
        return self.query(f"SELECT snapshot_id, snapshot_time, changes FROM {LAKE}.snapshots() "
                          "ORDER BY snapshot_id")

    def feature_sets(self, snapshot: int | None = None) -> dict[str, dict]:
        """The named choice of feature set per modality: ``{modality: {encoder_id, name, dim}}``."""
        rows = self.query(read_sql("queries", "feature_sets"), snapshot=snapshot).to_pylist()
        return {r["modality"]: {"encoder_id": r["encoder_id"], "name": r["name"], "dim": r["dim"]}
                for r in rows}

    def use_encoders(self, encoder_ids: Iterable[str]) -> dict[str, str]:
        """Make each ``encoder_id`` the feature set ``fusion_vectors`` serves for its modality.

        Every id must be a stored encoder with embeddings; returns ``{modality: encoder_id}``.
        """
        ids = list(encoder_ids)
        known = {r["encoder_id"]: r for r in self.query(read_sql("queries", "encoder_inventory")).to_pylist()}
        chosen: dict[str, str] = {}
        for eid in ids:
            r = known.get(eid)
            if r is None or not r["n_videos"]:
                listing = ", ".join(f"{k} ({v['modality']}, {v['n_videos']} videos)" for k, v in known.items())
                raise StoreError(f"no embeddings of encoder {eid!r} in {self.root}; stored: {listing or 'none'}")
            if r["modality"] in chosen:
                raise StoreError(f"two encoders for {r['modality']}: {chosen[r['modality']]} and {eid}")
            chosen[r["modality"]] = eid
        self.put("feature_sets", [{"modality": m, "encoder_id": e, "chosen_at": utcnow()}
                                  for m, e in chosen.items()])
        return chosen

    def load_embeddings(self, encoder_id: str, video_ids: Iterable[str] | None = None,
                        snapshot: int | None = None, engine: str = "auto",
                        con: duckdb.DuckDBPyConnection | None = None,
                        sort: bool = True) -> tuple[pa.Table, np.ndarray]:
        """Full-matrix read of one feature set: (keys, float32 ``(n, dim)`` with NaN rows).

        ``keys`` holds ``video_id, window_idx, missing_reason`` sorted by (video_id,
        window_idx); the matrix rows follow it. ``engine``: ``"files"`` reads the table's
        Parquet data files with pyarrow, as DuckLake lists them for the snapshot
        (``ducklake_list_files``), applying their delete files; ``"duckdb"`` runs a query
        through the DuckLake extension; ``"auto"`` (default) takes the files where their layout
        is the one this reader knows and DuckDB otherwise. Both give the same rows (tested);
        the files path is several times faster for a full matrix. ``con``: an open connection
        of this store (at ``snapshot``) to reuse; opening one costs ~0.1 s. ``sort=False``
        returns the rows in storage order (a caller that aligns them itself saves a copy).
        """
        if engine not in ("auto", "files", "duckdb"):
            raise ValueError(f"engine must be 'auto', 'files' or 'duckdb', got {engine!r}")
        own = con is None
        con = self.connect(snapshot=snapshot) if own else con
        try:
            dim = con.execute("SELECT dim FROM encoders WHERE encoder_id = ?", [encoder_id]).fetchone()
            snap = snapshot if snapshot is not None else self._snapshot_id(con)
            cols = ["video_id", "window_idx", "missing_reason", "embedding"]
            tbl = _read_data_files(con, "embeddings", snap, cols, "encoder_id", encoder_id) \
                if engine != "duckdb" else None
            if tbl is None and engine == "files":
                raise StoreError(f"the data files of {self.root} use a layout the file reader does not "
                                 "know; read with engine='duckdb'")
            if tbl is None:
                tbl = con.execute("SELECT video_id, window_idx, missing_reason, embedding FROM embeddings "
                                  "WHERE encoder_id = ?", [encoder_id]).to_arrow_table()
        finally:
            if own:
                con.close()
        if video_ids is not None:
            tbl = tbl.filter(pc.is_in(tbl["video_id"], value_set=pa.array(list(video_ids), pa.string())))
        if tbl.num_rows == 0 and video_ids is None:
            raise StoreError(f"no embeddings for encoder {encoder_id!r} in {self.root}")
        d = int(dim[0]) if dim else None
        matrix = lists_to_numpy(tbl["embedding"], d, f"embeddings of {encoder_id}")
        keys = tbl.select(["video_id", "window_idx", "missing_reason"])
        if not sort:
            return keys, matrix
        order = pc.sort_indices(keys, [("video_id", "ascending"), ("window_idx", "ascending")])
        # Rows are sorted as numpy takes: taking the list column in Arrow is far slower.
        return keys.take(order), matrix[order.to_numpy()]

    # ------------------------------------------------------------------ maintenance
    def compact(self, expire_older_than: str | None = None,
                cleanup_older_than: str = "1 hour", orphans_older_than: str = "1 day") -> dict[str, int]:
        """Merge small data files and rewrite files with many deletes, by DuckLake's own
        functions (safe while other processes read and write). With ``expire_older_than``
        (e.g. ``'30 days'``) snapshots older than that are expired and the files only they
        used are deleted: time travel before then, and models trained there, stop working.
        Files that compaction replaced are deleted once they have waited ``cleanup_older_than``
        (default ``'1 hour'``): a reader in the middle of a transaction may still read them
        (measured: deleting them at once made an open reader see an empty table).

        Data files no snapshot lists (orphans: written by a run killed before its commit, e.g.
        a Ray worker's block whose driver died) are deleted once ``orphans_older_than`` old
        (default ``'1 day'``). A younger one may belong to a commit still in flight (a writer
        writes its files before it commits; a Ray block's files wait for the driver), and
        deleting it would leave that commit pointing at a missing file: measured, a compact
        with a zero age beside two embeds broke the store for every later write.

        Returns counts: data files before and after, snapshots expired, files deleted, orphan
        files deleted, and files waiting to be deleted by a later ``compact``.
        """
        con = self.connect(read_only=False)

        def call(sql: str) -> list:
            # Each maintenance step is its own transaction; one that loses a race with a
            # writer's commit is run again (it re-plans against the new files).
            return _with_retries(lambda: con.execute(sql).fetchall())

        try:
            before = _n_files(con)
            call(f"CALL ducklake_rewrite_data_files({sql_literal(LAKE)})")
            call(f"CALL ducklake_merge_adjacent_files({sql_literal(LAKE)})")
            expired = 0
            if expire_older_than:
                expired = len(call(f"CALL ducklake_expire_snapshots({sql_literal(LAKE)}, "
                                   f"older_than => now() - INTERVAL {sql_literal(expire_older_than)})"))
            # Files that no snapshot needs any more (merged or rewritten, and expired), once no
            # open reader can still be reading them. The age test is ours: with a SQLite catalog
            # ducklake_cleanup_old_files(older_than => ...) deleted files scheduled a second
            # earlier (DuckLake 1.5.5), so it runs only when every scheduled file is old enough.
            n_scheduled, newest = con.execute(
                f"SELECT count(*), max(CAST(schedule_start AS TIMESTAMPTZ)) < now() - INTERVAL "
                f"{sql_literal(cleanup_older_than)} FROM __ducklake_metadata_{LAKE}."
                "ducklake_files_scheduled_for_deletion").fetchone()
            deleted = len(call(f"CALL ducklake_cleanup_old_files({sql_literal(LAKE)}, cleanup_all => true)")) \
                if n_scheduled and newest else 0
            orphans = len(call(f"CALL ducklake_delete_orphaned_files({sql_literal(LAKE)}, older_than => "
                               f"now() - INTERVAL {sql_literal(orphans_older_than)})"))
            after = _n_files(con)
            waiting = con.execute(f"SELECT count(*) FROM __ducklake_metadata_{LAKE}."
                                  "ducklake_files_scheduled_for_deletion").fetchone()[0]
        except duckdb.Error as exc:
            raise StoreError(f"compact {self.root}: {exc}") from exc
        finally:
            con.close()
        return {"data_files_before": before, "data_files_after": after,
                "snapshots_expired": expired, "files_deleted": deleted, "orphans_deleted": orphans,
                "files_waiting": int(waiting)}


_SNAPSHOT_COLUMN = "_ducklake_internal_snapshot_id"


def _read_data_files(con, table: str, snapshot: int, columns: list[str], key: str,
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

    listed = con.execute(f"SELECT data_file, delete_file FROM ducklake_list_files({sql_literal(LAKE)}, ?, "
                         "snapshot_version => ?)", [table, int(snapshot)]).fetchall()
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
        return con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE false").to_arrow_table()
    return pa.concat_tables(parts, promote_options="default")


def _n_files(con) -> int:
    return int(con.execute(f"SELECT count(*) FROM __ducklake_metadata_{LAKE}.ducklake_data_file "
                           "WHERE end_snapshot IS NULL").fetchone()[0])


def encoder_row(encoder_id: str, name: str, modality: str, dim: int, version: str, config: dict,
                weights_sha256: str | None, packages: dict | None) -> dict:
    """A row of the ``encoders`` table."""
    if modality not in MODALITIES:
        raise StoreError(f"unknown modality {modality!r}; one of {', '.join(MODALITIES)}")
    return {"encoder_id": encoder_id, "name": name, "modality": modality, "dim": int(dim),
            "version": version, "config": json.dumps(config, sort_keys=True, default=str),
            "weights_sha256": weights_sha256, "packages": json.dumps(packages or {}, sort_keys=True),
            "registered_at": utcnow()}


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
