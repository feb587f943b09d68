"""A store's life: made once, opened many times, upgraded once per schema version.

``store.json`` records the format, the schema version and where the catalog and the data
files live; a store made by an earlier schema version is upgraded in place when opened
(tables and columns added, derived objects re-created; no row touched). Several processes
may make or open one store at once (embed shards): a file lock makes one of them do it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from .catalog import CATALOG_FILE, DATA_DIR, LAKE, STORE_FILE, STORE_FORMAT, Catalog, attach_lake, attach_options
from .datafiles import PARQUET_COMPRESSION, PARQUET_ROW_GROUP_SIZE
from .errors import StoreError
from .objectstore import is_remote, normalise_data_path
from .sqlfiles import read_sql, run_script
from .writer import with_retries

if TYPE_CHECKING:
    from .store import FeatureStore

__all__ = ["SCHEMA_SCRIPTS", "STORE_SCHEMA_VERSION", "create_store", "install_schema", "open_store",
           "upgrade_store"]

#: Bumped when sql/schema.sql changes; recorded in ``store_commits.schema_version``.
STORE_SCHEMA_VERSION = 3
#: The script queries that make a store's schema, in order (``sql/schema.sql``, then the
#: ``video_predictions`` view of ``sql/aggregate.sql``). An upgrade runs them all but
#: ``partitions`` (tables and columns are added with IF NOT EXISTS; rows are never touched).
SCHEMA_SCRIPTS = (("schema", "tables"), ("schema", "partitions"), ("schema", "upgrade_columns"),
                  ("schema", "rules"), ("schema", "views"), ("aggregate", "install"))


def open_store(store: "FeatureStore", root: str | Path, create: bool, catalog: str | None,
               data_path: str | None) -> None:
    """Set ``store.root``, ``store.catalog`` and its data path from ``root``'s ``store.json``,
    making the store first when ``create`` and there is none, upgrading it when older.

    Raises:
        StoreError: ``root`` is remote, ``data_path`` is not S3, the store keeps its catalog
            or data elsewhere than asked, it is of the old ``parts/`` format, or it does not
            exist and ``create`` is False.
    """
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
    store.root = Path(root).resolve()
    store._data_url = None
    info_path = store.root / STORE_FILE
    if not info_path.exists() and create and not (store.root / "parts").is_dir():
        # Several processes may create one store at once (embed shards): one of them does.
        import fcntl
        store.root.mkdir(parents=True, exist_ok=True)
        with open(store.root / ".create.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not info_path.exists():
                store.catalog = Catalog.parse(catalog, store.root)
                store._data_url = wanted_data
                create_store(store, catalog)
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if catalog and Catalog.parse(catalog, store.root) != Catalog.parse(info.get("catalog"), store.root):
            raise StoreError(f"{store.root} keeps its catalog at {info.get('catalog')}, not {catalog}")
        if wanted_data and wanted_data != info.get("data_path"):
            raise StoreError(f"{store.root} keeps its data files at {info.get('data_path') or DATA_DIR + '/'}, "
                             f"not {wanted_data}")
        store.catalog = Catalog.parse(info.get("catalog"), store.root)
        store._data_url = info.get("data_path")
        if info.get("schema_version", 1) < STORE_SCHEMA_VERSION:
            upgrade_store(store)
    elif (store.root / "parts").is_dir():
        raise StoreError(f"{store.root} is a store of the earlier parts/ format, which this version "
                         "no longer reads; embed the manifest again into a new --store")
    elif not create:
        raise StoreError(f"{store.root} is not a feature store (no {STORE_FILE}); create one with "
                         "`cli.py embed --store PATH ...`")


def create_store(store: "FeatureStore", catalog_spec: str | None) -> None:
    """Make the store's folders, its DuckLake catalog and schema, then ``store.json`` (last:
    a store without it is not a store yet)."""
    store.root.mkdir(parents=True, exist_ok=True)
    if not store.remote:
        store.data_dir.mkdir(exist_ok=True)
    store.models_dir.mkdir(exist_ok=True)
    con = duckdb.connect()
    try:
        # Created from inside the store with a relative DATA_PATH, so the catalog records
        # 'data/' and every file path relative to it: the directory can be moved or zipped.
        # Files on S3 are recorded relative to the s3:// data path the same way.
        cwd = os.getcwd()
        os.chdir(store.root)
        try:
            attach_lake(con, store.catalog, attach_options(store.catalog, store._data_url or DATA_DIR + "/",
                                                           override=False), store.remote)
            con.execute(f"DETACH {LAKE}")
        finally:
            os.chdir(cwd)
    finally:
        con.close()
    if store.catalog.kind == "sqlite":
        # Write-ahead logging: a reader's open transaction (a notebook's connection) then
        # never blocks a writer's commit, as it does in SQLite's default rollback mode.
        import sqlite3
        with sqlite3.connect(store.catalog.target) as lite:
            lite.execute("PRAGMA journal_mode=WAL")
    con = store.connect(read_only=False)
    try:
        install_schema(con)
    finally:
        con.close()
    spec = catalog_spec or f"sqlite:{CATALOG_FILE}"
    info = {"format": STORE_FORMAT, "catalog": spec, "schema_version": STORE_SCHEMA_VERSION}
    if store.remote:
        info["data_path"] = store._data_url
    write_info(store.root, info)


def write_info(root: Path, info: dict) -> None:
    """Replace ``root/store.json`` atomically (a reader never sees half a file)."""
    tmp = root / (STORE_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, root / STORE_FILE)


def upgrade_store(store: "FeatureStore") -> None:
    """Bring a store made by an earlier schema version up to this one, once, on open.

    New tables and columns are added (existing rows get NULL in them) and the derived
    objects (the shared-rule macros, the views, the aggregation) are re-created, in one
    transaction; no row is touched.
    The file lock makes concurrent openers (embed shards) upgrade once.
    """
    import fcntl
    with open(store.root / ".create.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = json.loads((store.root / STORE_FILE).read_text())
        if info.get("schema_version", 1) >= STORE_SCHEMA_VERSION:
            return
        try:
            con = store.connect(read_only=False)
        except StoreError as exc:
            raise StoreError(f"{store.root} was made by an earlier version (schema "
                             f"{info.get('schema_version', 1)}, this one reads {STORE_SCHEMA_VERSION}) "
                             f"and could not be opened to upgrade it: {exc}") from exc

        def attempt() -> None:
            try:
                install_schema(con, upgrade=True)
            except duckdb.Error:
                con.execute("ROLLBACK")
                raise
        try:
            with_retries(attempt, 50)
        finally:
            con.close()
        write_info(store.root, {**info, "schema_version": STORE_SCHEMA_VERSION})


def install_schema(con: duckdb.DuckDBPyConnection, upgrade: bool = False) -> None:
    """Run ``SCHEMA_SCRIPTS`` in one transaction; ``upgrade``: an existing store's, whose
    rows stay as they are (new tables and columns are added; partitioning is set once, at
    creation)."""
    con.execute(f"USE {LAKE}")
    con.execute(read_sql("store", "set_option"), ["parquet_row_group_size", str(PARQUET_ROW_GROUP_SIZE)])
    con.execute(read_sql("store", "set_option"), ["parquet_compression", PARQUET_COMPRESSION])
    con.execute("BEGIN")
    # schema.sql, then aggregate.sql's video_predictions: the store runs the files and
    # knows nothing of the aggregation (fusion.aggregate owns that SQL).
    for file, name in SCHEMA_SCRIPTS:
        if not (upgrade and (file, name) == ("schema", "partitions")):
            run_script(con, file, name)
    if con.execute(read_sql("store", "commit_rows")).fetchone()[0] == 0:
        con.execute(read_sql("store", "first_commit"), [STORE_SCHEMA_VERSION])
    else:
        con.execute(read_sql("store", "set_schema_version"), [STORE_SCHEMA_VERSION])
    con.execute("COMMIT")
