"""The SQL of ``sql/``: named queries by one loader, runnable as written, each shared rule once."""
from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from featurestore.schema import AGGREGATIONS, CLASSES
from featurestore.sqlfiles import SQL_DIR, UnknownQuery, define_rules, queries, read_sql, sql_files
from featurestore.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]


def test_every_file_parses_into_named_queries():
    assert sql_files() == ["aggregate", "audit", "export", "queries", "schema", "store"]
    for f in sql_files():
        found = queries(f)
        assert found, f
        for name, sql in found.items():
            assert sql.strip() and not any(line.lstrip().startswith("--") for line in sql.splitlines()), (f, name)


def test_unknown_query_names_file_and_query():
    with pytest.raises(UnknownQuery, match=r"no query 'nope' in .*queries\.sql; it defines: feature_sets"):
        read_sql("queries", "nope")
    with pytest.raises(FileNotFoundError, match="nope.sql"):
        read_sql("nope", "x")


def test_aiosql_reads_the_files_the_same_way():
    try:
        import aiosql
    except ImportError:
        from conftest import require
        require("aiosql", "pip install -e .[dev]")
        return
    for f in sql_files():
        q = aiosql.from_path(SQL_DIR / f"{f}.sql", "duckdb", mandatory_parameters=False)
        assert sorted(n for n in q.available_queries if not n.endswith('_cursor')) == sorted(queries(f)), f
        for name, sql in queries(f).items():
            assert getattr(q, name).sql.strip() == sql, (f, name)


def test_rules_equal_the_python_constants():
    con = duckdb.connect()
    define_rules(con)
    assert tuple(con.execute("SELECT emotion_classes()").fetchone()[0]) == CLASSES
    assert tuple(con.execute("SELECT aggregation_methods()").fetchone()[0]) == AGGREGATIONS


# The relations a caller registers before running a query (fixed names, no placeholders).
_STAND_INS = {
    "evidence_ids": "SELECT 'v' AS video_id",
    "_video_ids": "SELECT 'v' AS video_id",
    "predict_videos": "SELECT 'v' AS video_id",
    "predict_batch": "SELECT 'v' AS video_id",
    "selected_videos": "SELECT 'v' AS video_id, 'Joy' AS label, NULL AS \"group\"",
    "predict_vectors": "SELECT 'v' AS video_id, 0 AS window_idx",
    "audit_duplicate_members": "SELECT 'v' AS video_id, 'v' AS group_id",
    "audit_duplicate_pairs": "SELECT 'a' AS video_a, 'b' AS video_b, false AS same_path, false AS same_media, "
                             "false AS same_transcript, false AS near_transcript, 0.0 AS transcript_jaccard, "
                             "false AS near_vectors, false AS equal_vectors, 0 AS n_deciding",
}


def test_every_query_runs_as_written_on_a_store(tmp_path):
    """Every query binds (PREPARE) on a store's connection, scripts run: no placeholders left."""
    store = FeatureStore(tmp_path / "s")
    con = store.connect(read_only=False)
    try:
        for name, sql in _STAND_INS.items():
            con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        for script in ("setup_encoders", "no_media", "pairs"):
            for st in read_sql("audit", script).split(";\n"):
                if st.strip():
                    con.execute(st)
        for f in sql_files():
            for name, sql in queries(f).items():
                assert not re.search(r"\{\w+\}", sql.replace("{'start_s'", "")), (f, name)
                if f == "schema" or (f, name) == ("aggregate", "install") or sql.lstrip().upper().startswith("CREATE"):
                    continue  # DDL: the store ran it at creation (or the lines above)
                con.execute(f"PREPARE q AS {sql.rstrip(';')}")
                con.execute("DEALLOCATE q")
    finally:
        con.close()


def _sources():
    for d in ("featurestore", "fusion", "bench", "reels_emotion", "scripts"):
        for p in (REPO / d).rglob("*.py"):
            if "encoders" not in p.parts:
                yield p, p.read_text()
    for p in (REPO / "sql").glob("*.sql"):
        yield p, p.read_text()


@pytest.mark.parametrize("pattern, home", [
    (r"'\[NO_SPEECH\]'", "schema.sql"),                       # speaks(): which window speaks
    (r"status\s*=\s*'ok'", "schema.sql"),                     # embedded() / trains(): which videos
    (r"coalesce\(split, 'train'\)", "schema.sql"),            # trains(): a NULL split trains
    (r"created_at DESC", "schema.sql"),                       # model_recency: newest model wins
    (r"max\(encoder_id\)|FROM feature_sets", "schema.sql"),   # served_encoders: newest choice wins
    (r"\['Anger'", "schema.sql"),                             # emotion_classes()
])
def test_each_shared_rule_is_written_once(pattern, home):
    where = [p.name for p, text in _sources() if re.search(pattern, text)]
    assert where == [home], (pattern, where)


def test_no_sql_file_is_a_format_template():
    for p, text in _sources():
        if p.suffix == ".py":
            assert not re.search(r"read_sql\([^)]*\)\.format\(", text), p


def test_rule_queries_run_on_a_bare_connection_with_only_a_videos_table():
    """labelled_set reads the training videos through the trains() rule, which a connection
    without the store's catalog gets as TEMP macros (a synthetic or user connection)."""
    from fusion.registry import labelled_set
    con = duckdb.connect()
    con.execute("""CREATE TABLE videos AS SELECT * FROM (VALUES
        ('a', 'Joy', 'train', 'ok', NULL), ('b', 'Fear', NULL, 'ok', NULL),
        ('c', 'Joy', 'test', 'ok', NULL), ('d', 'Joy', 'train', 'failed', NULL), ('e', NULL, 'train', 'ok', NULL))
        AS t(video_id, label, split, status, "group")""")
    n, sha = labelled_set(con)
    assert n == 2 and sha is not None
    assert labelled_set(duckdb.connect()) == (0, None)


def test_store_sql_names_the_lake_as_attached():
    """``sql/store.sql`` names the lake's catalogs literally (a catalog cannot be a prepared
    parameter): they must be the name the store attaches it under."""
    from featurestore.catalog import LAKE
    text = (SQL_DIR / "store.sql").read_text()
    assert LAKE == "store" and f"__ducklake_metadata_{LAKE}." in text and f"{LAKE}.snapshots()" in text
