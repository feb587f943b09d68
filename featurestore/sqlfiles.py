"""Access to the named ``.sql`` files: every DDL and query lives in ``sql/``.

In a source checkout they are read from the repository's ``sql/``; an installed package
(wheel or ``pip install .``) carries the same files as ``featurestore/sql``.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent / "sql"
_INSTALLED = Path(__file__).resolve().parent / "sql"
SQL_DIR = _INSTALLED if _INSTALLED.is_dir() else _CHECKOUT


@lru_cache(maxsize=None)
def read_sql(name: str) -> str:
    """Text of ``sql/<name>.sql``."""
    path = SQL_DIR / f"{name}.sql"
    if not path.exists():
        raise FileNotFoundError(f"no SQL file {path}")
    return path.read_text()


def sql_literal(value: str) -> str:
    """A single-quoted SQL string literal (for paths and ids spliced into DDL)."""
    return "'" + str(value).replace("'", "''") + "'"


def relation_columns(con, name: str) -> dict[str, str] | None:
    """``{column: duckdb type}`` of relation ``name`` on DuckDB connection ``con``, or None
    when it does not exist."""
    try:
        rows = con.execute(f'DESCRIBE "{name}"').fetchall()
    except Exception:  # duckdb raises CatalogException subclasses; any failure means absent
        return None
    return {r[0]: r[1] for r in rows}
