"""Loader for the named ``sql/*.sql`` files this package runs.

Uses ``featurestore.sqlfiles.read_sql`` when that module is importable so
there is one loader for the whole project; falls back to reading the file
directly so ``fusion`` also works on a bare DuckDB connection.
"""
from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def read_sql(name: str) -> str:
    """Text of ``sql/<name>.sql``; raises FileNotFoundError naming the path."""
    try:
        from featurestore.sqlfiles import read_sql as _store_read_sql
    except ImportError:
        _store_read_sql = None
    if _store_read_sql is not None:
        return _store_read_sql(name)
    path = SQL_DIR / f"{name}.sql"
    if not path.exists():
        raise FileNotFoundError(f"no SQL file {path}")
    return path.read_text()


def strip_statement(sql: str) -> str:
    """``sql`` without trailing whitespace and ``;`` so it can be nested as a sub-query."""
    return sql.strip().rstrip(";").strip()


def fetch_arrow(con, sql: str):
    """Run ``sql`` on a DuckDB connection and return a ``pyarrow.Table``."""
    rel = con.sql(sql)
    if hasattr(rel, "to_arrow_table"):
        return rel.to_arrow_table()
    return rel.arrow()  # older duckdb


def relation_columns(con, name: str) -> dict[str, str] | None:
    """``{column: duckdb type}`` of relation ``name``, or None when it does not exist."""
    try:
        rows = con.execute(f'DESCRIBE "{name}"').fetchall()
    except Exception:  # duckdb raises CatalogException subclasses; any failure means absent
        return None
    return {r[0]: r[1] for r in rows}


def scalar(con, sql: str):
    """First value of the first row of ``sql`` (the result is consumed completely)."""
    rows = con.execute(sql).fetchall()
    return rows[0][0] if rows else None
