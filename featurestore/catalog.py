"""Where a store's parts live and how a DuckDB connection attaches them.

A store directory holds ``store.json`` and ``models/``; its DuckLake catalog is a SQLite file
in the directory or a PostgreSQL database (:class:`Catalog`), and its data files sit in
``data/`` or under an ``s3://`` data path (``featurestore.objectstore``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import duckdb

from .errors import StoreError
from .extensions import load_extension
from .objectstore import configure_duckdb
from .sqlfiles import sql_literal

__all__ = ["CATALOG_FILE", "DATA_DIR", "LAKE", "STORE_FILE", "STORE_FORMAT", "Catalog",
           "attach_lake", "attach_options"]

CATALOG_FILE = "catalog.sqlite"
STORE_FILE = "store.json"
DATA_DIR = "data"
LAKE = "store"               # the name the lake is attached under (and USE'd)
STORE_FORMAT = "reels-emotion/ducklake"


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


def attach_options(catalog: Catalog, data_path: str, *, override: bool = True, read_only: bool = False,
                   snapshot: int | None = None) -> str:
    """The option list of the lake's ``ATTACH`` statement.

    Args:
        data_path: where the data files live (ending ``/``); ``override``: use it instead of
            the path the catalog recorded (always, except when the store is made: the catalog
            then records this path, relative, so the directory can be moved).
        snapshot: read the lake as of this snapshot id (implies read-only).
    """
    opts = []
    if read_only or snapshot is not None:
        opts.append("READ_ONLY")
    opts.append(f"DATA_PATH {sql_literal(data_path)}")
    if override:
        opts.append("OVERRIDE_DATA_PATH true")
    if catalog.schema:
        opts.append(f"METADATA_SCHEMA {sql_literal(catalog.schema)}")
    if snapshot is not None:
        opts.append(f"SNAPSHOT_VERSION {int(snapshot)}")
    # Small commits go to Parquet files, not into the catalog: readers without this package
    # and the full-matrix loader then see one kind of storage.
    opts.append("DATA_INLINING_ROW_LIMIT 0")
    return ", ".join(opts)


def attach_lake(con: duckdb.DuckDBPyConnection, catalog: Catalog, options: str, remote: bool) -> None:
    """Load the extensions ``catalog`` needs (and S3 access when ``remote``) and attach the
    lake on ``con`` as :data:`LAKE`. ATTACH takes its URI and options as literals, not
    prepared parameters, so they are spliced (quoted by ``sql_literal``)."""
    load_extension(con, "ducklake")
    load_extension(con, catalog.extension())
    if remote:
        configure_duckdb(con)
    con.execute(f"ATTACH {sql_literal(catalog.attach_uri())} AS {LAKE} ({options})")
