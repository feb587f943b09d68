"""The project's one loader of SQL: the named queries of the few ``sql/*.sql`` files.

Every DDL statement and query lives in ``sql/``, a few files by concern (``schema.sql``,
``aggregate.sql``, ``audit.sql``, ``export.sql``, ``queries.sql``, ``store.sql``). Inside a file each query
follows the aiosql convention: a ``-- name: <query_name>`` line (``#`` after the name marks a
script of several statements), then its ``--`` doc comment lines, then the SQL up to the next
``-- name:``. ``read_sql("audit", "status")`` returns that SQL without its comment lines
(DuckLake keeps a view's text, and a view that nests a query must not carry comments into it).

Why not the aiosql package itself, which parses exactly this format (``tests/test_sql.py``
checks that it reads these files the same way when it is installed): it turns each query into
a Python function run by its own driver adapter, while every caller here needs the text (to run
it with DuckDB's own ``?``/``$name`` parameters, nest it as a sub-query, or install it into
the DuckLake catalog); its DuckDB adapter rewrites ``:name`` into ``$name``; and by default it
demands a parameter list after every name. For the text alone it would be a dependency of every
install for the thirty lines below.

In a source checkout the files are read from the repository's ``sql/``; an installed package
(wheel or ``pip install .``) carries the same files as ``featurestore/sql``.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent / "sql"
_INSTALLED = Path(__file__).resolve().parent / "sql"
SQL_DIR = _INSTALLED if _INSTALLED.is_dir() else _CHECKOUT

_NAME = re.compile(r"^--\s*name\s*:\s*(\w+)\s*(#?)\s*$", re.MULTILINE)


class UnknownQuery(KeyError):
    """A query name that its ``sql/`` file does not define."""

    def __str__(self) -> str:
        return str(self.args[0])


@lru_cache(maxsize=None)
def queries(file: str) -> dict[str, str]:
    """``{query_name: sql}`` of ``sql/<file>.sql``, in file order (comment lines dropped)."""
    path = SQL_DIR / f"{file}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL file {path} (files: {', '.join(sql_files())})")
    text = path.read_text()
    heads = list(_NAME.finditer(text))
    out: dict[str, str] = {}
    for k, m in enumerate(heads):
        body = text[m.end():heads[k + 1].start() if k + 1 < len(heads) else len(text)]
        sql = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--")).strip()
        if m.group(1) in out:
            raise ValueError(f"{path}: query {m.group(1)!r} is defined twice")
        if not sql:
            raise ValueError(f"{path}: query {m.group(1)!r} has no SQL")
        out[m.group(1)] = sql
    return out


def read_sql(file: str, name: str) -> str:
    """The SQL of query ``name`` in ``sql/<file>.sql`` (comment lines dropped)."""
    found = queries(file)
    if name not in found:
        raise UnknownQuery(f"no query {name!r} in {SQL_DIR / (file + '.sql')}; it defines: "
                           f"{', '.join(found)}")
    return found[name]


def sql_files() -> list[str]:
    """The names of the ``sql/*.sql`` files (without ``.sql``)."""
    return sorted(p.stem for p in SQL_DIR.glob("*.sql"))


def sql_statements(script: str) -> list[str]:
    """The statements of a script query (each ends with ``;`` at a line end)."""
    return [s.strip() for s in script.split(";\n") if s.strip().rstrip(";").strip()]


def run_script(con, file: str, name: str, temp: bool = False) -> None:
    """Run every statement of script query ``name`` on ``con``; ``temp`` makes its macros and
    views TEMP ones (on a connection that has no store's catalog, or must not write it)."""
    for statement in sql_statements(read_sql(file, name)):
        if temp:
            statement = re.sub(r"^CREATE OR REPLACE (MACRO|VIEW)\b", r"CREATE OR REPLACE TEMP \1", statement)
        con.execute(statement)


def define_rules(con) -> None:
    """The shared rules of ``schema.sql`` (query ``rules``: the class list, which window
    speaks, which videos train, which feature set serves...) as TEMP macros and views on
    ``con``, for a connection without the store's catalog (an in-memory DuckDB, tests)."""
    run_script(con, "schema", "rules", temp=True)


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
