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

This module is the façade: :class:`FeatureStore` and the names callers import from here.
Each concern lives in a module of its own:

- ``catalog``: where the parts live (``store.json``, catalog URLs) and the ATTACH;
- ``extensions``: loading DuckDB's extensions offline from their wheels;
- ``lifecycle``: making, opening and upgrading a store (schema version);
- ``writer``: :class:`WriteBatch`, the transaction, its retry and the write optimiser;
- ``spill``: the layout of data files written by other processes (Ray workers);
- ``datafiles``: reading DuckLake's Parquet data files directly (and their settings);
- ``compaction``: merging files and deleting those no snapshot needs;
- ``rows``: rows of the tables built from arrays (embeddings, encoder lineage).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .catalog import CATALOG_FILE, DATA_DIR, LAKE, STORE_FILE, STORE_FORMAT, Catalog, attach_lake, attach_options
from .compaction import compact
from .datafiles import PARQUET_COMPRESSION, PARQUET_ROW_GROUP_SIZE, lists_to_numpy, read_data_files
from .errors import StoreError
from .extensions import load_extension, packaged_extension
from .lifecycle import SCHEMA_SCRIPTS, STORE_SCHEMA_VERSION, open_store
from .rows import embeddings_table, encoder_row, utcnow
from .schema import MODALITIES
from .spill import DataLayout, read_data_layout
from .sqlfiles import read_sql, run_script
from .writer import (REPLACE_KEYS, TABLES, VIDEO_TABLES, Plan, WriteBatch, apply_batch, check_table,
                     coalesce_ops, with_retries)

#: The names this module has always offered (each now lives in the module named above).
__all__ = ["CATALOG_FILE", "DATA_DIR", "LAKE", "PARQUET_COMPRESSION", "PARQUET_ROW_GROUP_SIZE",
           "REPLACE_KEYS", "SCHEMA_SCRIPTS", "STORE_FILE", "STORE_FORMAT", "STORE_SCHEMA_VERSION",
           "TABLES", "VIDEO_TABLES", "Catalog", "DataLayout", "FeatureStore", "Plan", "StoreError",
           "WriteBatch", "coalesce_ops", "embeddings_table", "encoder_row", "lists_to_numpy",
           "load_extension", "utcnow", "with_retries"]

_packaged_extension = packaged_extension    # the name tests and the README's notebook recipe use


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
        self.root: Path
        self.catalog: Catalog
        self._data_url: str | None = None
        self._writer: duckdb.DuckDBPyConnection | None = None
        open_store(self, root, create, catalog, data_path)     # sets the three above

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
            attach_lake(con, self.catalog, attach_options(self.catalog, self.data_path, read_only=read_only,
                                                          snapshot=snapshot), self.remote)
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
            with_retries(lambda: self._apply(batch), retries, data_path=self.data_path)
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
        """One attempt at ``batch``'s transaction on this store's writer connection."""
        if self._writer is None:
            self._writer = self.connect(read_only=False)
        try:
            apply_batch(self._writer, batch)
        except duckdb.Error as exc:
            if "cannot open file" in str(exc).lower():
                # The attached catalog may keep listing files compaction deleted: attach anew.
                self._writer.close()
                self._writer = None
            raise

    def data_layout(self, tables: Iterable[str]) -> DataLayout:
        """How other processes write data files of ``tables`` for this store (:class:`DataLayout`)."""
        tables = list(tables)
        for t in tables:
            check_table(t)
        con = self.connect()
        try:
            return read_data_layout(con, self.data_path, tables)
        finally:
            con.close()

    @staticmethod
    def _snapshot_id(con) -> int:
        return int(con.execute(read_sql("store", "snapshot_id")).fetchone()[0])

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
        return self.query(read_sql("store", "snapshots"))

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
            dim = con.execute(read_sql("store", "encoder_dim"), [encoder_id]).fetchone()
            snap = snapshot if snapshot is not None else self._snapshot_id(con)
            cols = ["video_id", "window_idx", "missing_reason", "embedding"]
            tbl = read_data_files(con, "embeddings", snap, cols, "encoder_id", encoder_id) \
                if engine != "duckdb" else None
            if tbl is None and engine == "files":
                raise StoreError(f"the data files of {self.root} use a layout the file reader does not "
                                 "know; read with engine='duckdb'")
            if tbl is None:
                tbl = con.execute(read_sql("store", "feature_set_rows"), [encoder_id]).to_arrow_table()
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
        """Merge small data files, expire old snapshots, delete unneeded files
        (:func:`featurestore.compaction.compact`, which documents each age); returns counts."""
        return compact(self, expire_older_than, cleanup_older_than, orphans_older_than)
