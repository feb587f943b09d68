"""DuckDB extensions (DuckLake and its catalog drivers), loaded offline from their PyPI wheels.

The ``duckdb-extension-<name>`` packages ship each extension for this exact duckdb version,
so a store opens without internet access; DuckDB's own ``INSTALL`` is the fallback.
"""
from __future__ import annotations

import glob
import importlib.util
import os

import duckdb

from .errors import StoreError
from .sqlfiles import sql_literal

__all__ = ["load_extension", "packaged_extension"]


def packaged_extension(name: str) -> str | None:
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
    path = packaged_extension(name)
    if path:
        # LOAD takes a path literal, not a prepared parameter.
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
