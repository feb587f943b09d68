"""SQL helpers of this package; the named ``sql/*.sql`` files are read by the
project's one loader, ``featurestore.sqlfiles.read_sql``."""
from __future__ import annotations

from featurestore.sqlfiles import read_sql, relation_columns

__all__ = ["read_sql", "strip_statement", "fetch_arrow", "relation_columns", "scalar"]


def strip_statement(sql: str) -> str:
    """``sql`` without trailing whitespace and ``;`` so it can be nested as a sub-query."""
    return sql.strip().rstrip(";").strip()


def fetch_arrow(con, sql: str):
    """Run ``sql`` on a DuckDB connection and return a ``pyarrow.Table``."""
    rel = con.sql(sql)
    if hasattr(rel, "to_arrow_table"):
        return rel.to_arrow_table()
    return rel.arrow()  # older duckdb


def scalar(con, sql: str):
    """First value of the first row of ``sql`` (the result is consumed completely)."""
    rows = con.execute(sql).fetchall()
    return rows[0][0] if rows else None
