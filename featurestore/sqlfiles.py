"""Access to the named ``.sql`` files: every DDL and query lives in ``sql/``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


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
