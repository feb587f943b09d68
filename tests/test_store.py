"""The DuckLake feature store: round trips, moves, concurrent writers, readers, kills, time travel."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from featurestore.store import (STORE_SCHEMA_VERSION, FeatureStore, StoreError, WriteBatch, _packaged_extension,
                                embeddings_table)

REPO = Path(__file__).resolve().parents[1]


def add_video(store, vid, n, dims, missing=None, seed=0, label="Joy"):
    """One video with n windows and one encoder per modality of the given dims, in one commit."""
    rng = np.random.default_rng(seed)
    batch = WriteBatch()
    batch.replace("videos", [{"video_id": vid, "split": "train", "label": label, "status": "ok"}])
    batch.replace("windows", [{"video_id": vid, "window_idx": i, "start_s": i * .5,
                               "end_s": i * .5 + 1, "transcript": f"w{i}"} for i in range(n)])
    mats = {}
    for mod, dim in dims.items():
        eid = f"{mod}-{dim}"
        batch.replace("encoders", [{"encoder_id": eid, "name": f"{mod}-enc", "modality": mod, "dim": dim}])
        m = rng.standard_normal((n, dim)).astype(np.float32)
        reasons = [None] * n
        for i in (missing or {}).get(mod, []):
            m[i] = np.nan
            reasons[i] = f"no {mod}"
        batch.replace("embeddings", embeddings_table(eid, dim, [vid] * n, range(n), m, reasons))
        mats[mod] = m
    store.commit(batch)
    return mats


def plain_duckdb(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in a Python that has only duckdb and the DuckLake extension files: no site
    initialisation (``-S``), so not even this package's editable install is importable."""
    import duckdb
    site = str(Path(duckdb.__file__).resolve().parents[1])
    exts = {n: _packaged_extension(n) for n in ("ducklake", "sqlite_scanner")}
    prelude = textwrap.dedent(f"""
        import sys
        sys.path.append({site!r})
        import duckdb
        con = duckdb.connect()
        con.execute("LOAD '{exts['ducklake']}'"); con.execute("LOAD '{exts['sqlite_scanner']}'")
    """)
    return subprocess.run([sys.executable, "-S", "-c", prelude + textwrap.dedent(script)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("dims", [{"audio": 128, "video": 3, "text": 768},
                                  {"audio": 7, "video": 1, "text": 384}])
def test_round_trip_sql_and_matrix(tmp_path, dims):
    store = FeatureStore(tmp_path / "s")
    mats = add_video(store, "v1", 5, dims, missing={"video": [1, 3], "text": [4]})
    store.use_encoders([f"{m}-{d}" for m, d in dims.items()])
    con = store.connect()
    for mod, dim in dims.items():
        got = con.execute(f"SELECT {mod} FROM fusion_vectors ORDER BY window_idx").fetchall()
        for i, (vec,) in enumerate(got):
            if np.isnan(mats[mod][i]).all():
                assert vec is None
            else:
                np.testing.assert_array_equal(np.array(vec, np.float32), mats[mod][i])
    reasons = con.execute("SELECT window_idx, missing_reason FROM embeddings "
                          "WHERE encoder_id = ? AND embedding IS NULL ORDER BY 1",
                          [f"video-{dims['video']}"]).fetchall()
    assert reasons == [(1, "no video"), (3, "no video")]
    con.close()
    keys, m = store.load_embeddings(f"audio-{dims['audio']}")
    np.testing.assert_array_equal(m, mats["audio"])
    assert keys.column("window_idx").to_pylist() == list(range(5))
    _, m = store.load_embeddings(f"text-{dims['text']}")
    assert np.isnan(m[4]).all() and not np.isnan(m[:4]).any()


def test_replace_keeps_one_copy_and_other_videos(tmp_path):
    store = FeatureStore(tmp_path / "s")
    add_video(store, "a", 4, {"audio": 8}, seed=1)
    add_video(store, "b", 3, {"audio": 8}, seed=2)
    new = add_video(store, "a", 6, {"audio": 8}, seed=3)     # "a" again: replaced, not appended
    counts = {r["video_id"]: r["n"] for r in
              store.query("SELECT video_id, count(*) AS n FROM embeddings GROUP BY 1").to_pylist()}
    assert counts == {"a": 6, "b": 3}
    keys, m = store.load_embeddings("audio-8", video_ids=["a"])
    np.testing.assert_array_equal(m, new["audio"])
    assert store.query("SELECT count(*) AS n FROM videos").column("n")[0].as_py() == 2


def _apply_in_order(ops) -> dict[str, list[tuple]]:
    """What a sequence of WriteBatch ops leaves in each table, by the plain definition."""
    tables: dict[str, list[dict]] = {}
    for op, table, rows in ops:
        got = tables.setdefault(table, [])
        if op == "delete":
            keys = {tuple(r.values()) for r in rows.to_pylist()}
            cols = rows.column_names
            tables[table] = [r for r in got if tuple(r.get(c) for c in cols) not in keys]
        else:
            got.extend(rows.to_pylist())
    return {t: sorted((tuple(sorted(r.items())) for r in rows), key=repr) for t, rows in tables.items()}


def test_coalesced_ops_leave_the_same_rows_as_the_ops_in_order():
    """Commits merge each table's deletes and inserts into one statement each (a 32-video
    block spent 3.6 s in per-video statements); random batches with keys replaced twice and
    whole videos deleted between replacements end exactly as the ops in order."""
    from featurestore.store import coalesce_ops
    rng = np.random.default_rng(0)
    for _ in range(200):
        b = WriteBatch()
        for _ in range(int(rng.integers(1, 12))):
            vid = f"v{rng.integers(4)}"
            kind = rng.integers(4)
            if kind == 0:
                b.replace("windows", {"video_id": [vid] * 2, "window_idx": [0, int(rng.integers(9))]})
            elif kind == 1:
                b.replace("embeddings", {"encoder_id": [f"e{rng.integers(2)}"], "video_id": [vid],
                                         "window_idx": [int(rng.integers(9))]})
            elif kind == 2:
                b.replace("videos", [{"video_id": vid, "status": "ok",
                                      "error": None if rng.random() < 0.5 else "x"}])
            else:
                b.delete_videos([vid], tables=("windows", "embeddings"))
        merged = coalesce_ops(b.ops)
        assert _apply_in_order(merged) == _apply_in_order(b.ops)
        assert len(merged) <= len(b.ops)
    many = WriteBatch()
    for k in range(32):
        many.replace("windows", {"video_id": [f"v{k}"], "window_idx": [0]})
        many.replace("videos", [{"video_id": f"v{k}", "status": "ok"}])
    assert [(op, t) for op, t, _ in coalesce_ops(many.ops)] == \
        [("delete", "windows"), ("insert", "windows"), ("delete", "videos"), ("insert", "videos")]


@pytest.mark.slow
def test_files_written_elsewhere_are_registered_in_the_batch_transaction(tmp_path):
    """DataLayout.spill writes a batch's per-window rows as Parquet files under the data path
    (hive folders for the partitioned embeddings); the commit registers them with the
    batch's deletes, so a replaced video keeps one copy and the file reader reads them."""
    store = FeatureStore(tmp_path / "s")
    layout = store.data_layout(["windows", "embeddings"])
    assert layout.partitions == {"windows": (), "embeddings": ("encoder_id",)}

    def batch(vid, n, value):
        b = WriteBatch()
        b.replace("windows", {"video_id": [vid] * n, "window_idx": list(range(n)),
                              "start_s": [0.5 * i for i in range(n)], "end_s": [0.5 * i + 1 for i in range(n)]})
        b.replace("embeddings", embeddings_table("enc-a", 4, [vid] * n, range(n), np.full((n, 4), value, np.float32)))
        b.replace("embeddings", embeddings_table("enc-b", 2, [vid] * n, range(n), np.full((n, 2), value, np.float32)))
        b.replace("videos", [{"video_id": vid, "status": "ok"}])
        return b

    store.commit(layout.spill(batch("a", 3, 1.0)))
    store.commit(layout.spill(batch("b", 2, 2.0)))
    store.commit(layout.spill(batch("a", 4, 3.0)))      # "a" again: replaced, not appended
    counts = dict(store.connect().execute("SELECT video_id, count(*) FROM windows GROUP BY 1").fetchall())
    assert counts == {"a": 4, "b": 2}
    keys, x = store.load_embeddings("enc-a", engine="files")
    assert keys.column("video_id").to_pylist() == ["a"] * 4 + ["b"] * 2
    np.testing.assert_array_equal(x[:, 0], [3, 3, 3, 3, 2, 2])
    assert store.load_embeddings("enc-b", engine="duckdb")[1].shape == (6, 2)
    files = store.query("SELECT data_file FROM ducklake_list_files('store', 'embeddings')").column(0).to_pylist()
    assert {Path(f).parent.name for f in files} == {"encoder_id=enc-a", "encoder_id=enc-b"}
    # The store still moves: the registered files are recorded relative to data/.
    shutil.copytree(tmp_path / "s", tmp_path / "moved")
    shutil.rmtree(tmp_path / "s")
    assert FeatureStore(tmp_path / "moved", create=False).query(
        "SELECT count(*) FROM embeddings").column(0)[0].as_py() == 12


@pytest.mark.slow
def test_a_moved_store_opens_with_and_without_the_package(tmp_path):
    src = tmp_path / "original"
    store = FeatureStore(src)
    add_video(store, "v1", 4, {"audio": 8, "text": 4})
    store.use_encoders(["audio-8", "text-4"])
    store.close()
    dst = tmp_path / "elsewhere" / "moved"
    dst.parent.mkdir()
    shutil.make_archive(str(tmp_path / "store"), "zip", src)       # zipped, shared, unzipped
    shutil.rmtree(src)
    shutil.unpack_archive(str(tmp_path / "store.zip"), dst)
    moved = FeatureStore(dst, create=False)
    assert moved.query("SELECT count(*) AS n FROM fusion_vectors WHERE audio IS NOT NULL").column("n")[0].as_py() == 4
    # Plain duckdb from inside the store directory: the catalog's relative data path resolves.
    r = plain_duckdb("""
        con.execute("ATTACH 'ducklake:sqlite:catalog.sqlite' AS s (READ_ONLY)")
        print(con.execute("SELECT count(*), sum(len(text)) FROM s.fusion_vectors").fetchone())
        con.execute("COPY (FROM s.embeddings) TO 'emb.parquet' (FORMAT parquet)")
        print(con.execute("SELECT count(*) FROM 'emb.parquet'").fetchone())
        import importlib.util
        print(importlib.util.find_spec("featurestore"))
    """, cwd=dst)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["(4, 16)", "(8,)", "None"]
    # ... and from any directory, naming where the data now is.
    r = plain_duckdb(f"""
        con.execute("ATTACH 'ducklake:sqlite:{dst}/catalog.sqlite' AS s "
                    "(READ_ONLY, DATA_PATH '{dst}/data/', OVERRIDE_DATA_PATH true)")
        print(con.execute("SELECT label, count(*) FROM s.videos GROUP BY 1").fetchall())
    """, cwd=tmp_path)
    assert r.returncode == 0 and "[('Joy', 1)]" in r.stdout, r.stderr


def test_a_store_of_the_previous_schema_is_upgraded_once_on_open(tmp_path):
    """A store made before the shared-rule macros (schema 1: tables, two views, no macros)
    opens with every view working and no row lost; the upgrade runs once."""
    root = tmp_path / "s"
    store = FeatureStore(root)
    add_video(store, "v1", 4, {"audio": 8, "text": 4})
    store.use_encoders(["audio-8", "text-4"])
    store.close()
    con = store.connect(read_only=False)
    # What schema 1 left in the catalog: no macros, none of the rule views.
    for view in ("video_predictions", "fusion_vectors", "split_videos", "embedded_videos", "training_videos",
                 "model_recency", "served_encoders"):
        con.execute(f"DROP VIEW {view}")
    for macro in ("aggregate_windows", "fusion_vectors_of"):
        con.execute(f"DROP MACRO TABLE {macro}")
    for macro in ("trains", "embedded", "speaks", "aggregation_methods", "emotion_classes"):
        con.execute(f"DROP MACRO {macro}")
    # ... nor the columns added since (the failure record, the file's ctime and inode).
    for column in ("media_ctime_ns", "media_inode", "failed_modalities"):
        con.execute(f"ALTER TABLE videos DROP COLUMN {column}")
    con.execute("UPDATE store_commits SET schema_version = 1")
    before = con.execute("SELECT count(*) FROM embeddings").fetchone()
    con.close()
    info = json.loads((root / "store.json").read_text())
    del info["schema_version"]
    (root / "store.json").write_text(json.dumps(info))
    with pytest.raises(Exception, match="fusion_vectors"):
        store.query("SELECT count(*) FROM fusion_vectors")

    upgraded = FeatureStore(root, create=False)
    assert json.loads((root / "store.json").read_text())["schema_version"] == STORE_SCHEMA_VERSION == 3
    fresh = FeatureStore(tmp_path / "fresh")
    columns = "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'videos' ORDER BY 1"
    assert upgraded.query(columns).to_pylist() == fresh.query(columns).to_pylist()
    assert upgraded.query("SELECT count(*) AS n FROM videos WHERE failed_modalities IS NULL")["n"][0].as_py() == 1
    assert upgraded.query("SELECT count(*) AS n FROM fusion_vectors WHERE audio IS NOT NULL")["n"][0].as_py() == 4
    assert upgraded.query("SELECT count(*) AS n FROM video_predictions")["n"][0].as_py() == 0
    con = upgraded.connect()
    assert con.execute("SELECT count(*) FROM embeddings").fetchone() == before
    assert con.execute("SELECT schema_version FROM store_commits").fetchone() == (STORE_SCHEMA_VERSION,)
    n_snapshots = con.execute("SELECT count(*) FROM ducklake_snapshots('store')").fetchone()[0]
    con.close()
    FeatureStore(root, create=False)          # already upgraded: nothing is written
    con = upgraded.connect()
    assert con.execute("SELECT count(*) FROM ducklake_snapshots('store')").fetchone()[0] == n_snapshots
    con.close()


@pytest.mark.slow
def test_a_reader_never_blocks_a_writer_and_keeps_its_snapshot(tmp_path):
    store = FeatureStore(tmp_path / "s")
    add_video(store, "v1", 3, {"audio": 4})
    # A notebook's read-only connection, mid-transaction, held open across the writes.
    reader = store.connect(read_only=True)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM windows").fetchone() == (3,)
    writer = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'tests')!r})
        from featurestore.store import FeatureStore
        from test_store import add_video
        s = FeatureStore({str(tmp_path / 's')!r}, create=False)
        for k in range(3):
            add_video(s, f"w{{k}}", 2, {{"audio": 4}})
        print("committed")
    """)], capture_output=True, text=True, timeout=120)
    assert writer.returncode == 0 and "committed" in writer.stdout, writer.stderr
    assert reader.execute("SELECT count(*) FROM windows").fetchone() == (3,)   # its snapshot
    reader.execute("COMMIT")
    reader.close()
    assert store.query("SELECT count(*) AS n FROM windows").column("n")[0].as_py() == 9


_WRITER = """
import sys; sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
from featurestore.store import FeatureStore
from test_store import add_video
s = FeatureStore({root!r}, create=False)
for k in range({n}):
    vid = {ids!r}[k % len({ids!r})]
    add_video(s, vid, 3 + k % 4, {{"audio": 16}}, seed={seed} * 1000 + k)
print("done")
"""


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [True, False], ids=["same-videos", "different-videos"])
def test_two_writer_processes(tmp_path, overlap):
    root = tmp_path / "s"
    FeatureStore(root).close()
    ids = [["x", "y"], ["x", "y"]] if overlap else [["a1", "a2"], ["b1", "b2"]]
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER.format(
        repo=str(REPO), tests=str(REPO / "tests"), root=str(root), n=12, ids=ids[p], seed=p)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "done" in out, err
    store = FeatureStore(root, create=False)
    # Every commit is there (12 per writer), and each video holds exactly one writer's copy:
    # its windows and its embeddings agree, none doubled.
    assert store.query("SELECT seq FROM store_commits").column("seq")[0].as_py() == 24
    rows = store.query("""
        SELECT w.video_id, w.n_windows, e.n_embeddings, v.n_videos
        FROM (SELECT video_id, count(*) AS n_windows, count(DISTINCT window_idx) AS d FROM windows GROUP BY 1) w
        JOIN (SELECT video_id, count(*) AS n_embeddings FROM embeddings GROUP BY 1) e USING (video_id)
        JOIN (SELECT video_id, count(*) AS n_videos FROM videos GROUP BY 1) v USING (video_id)
        WHERE w.d = w.n_windows""").to_pylist()
    want = {"x", "y"} if overlap else {"a1", "a2", "b1", "b2"}
    assert {r["video_id"] for r in rows} == want
    assert all(r["n_windows"] == r["n_embeddings"] and r["n_videos"] == 1 for r in rows)


@pytest.mark.slow
def test_kill_9_during_commits_leaves_whole_chunks(tmp_path):
    root = tmp_path / "s"
    FeatureStore(root).close()
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        import numpy as np
        from featurestore.store import FeatureStore, WriteBatch, embeddings_table
        s = FeatureStore({str(root)!r}, create=False)
        k = 0
        while True:
            vid, n = f"v{{k % 5}}", 50 + k % 7
            b = WriteBatch()
            b.replace("windows", {{"video_id": [vid] * n, "window_idx": list(range(n)),
                                  "start_s": [0.0] * n, "end_s": [1.0] * n}})
            b.replace("embeddings", embeddings_table("e", 256, [vid] * n, range(n),
                                                     np.full((n, 256), k, np.float32)))
            b.replace("videos", [{{"video_id": vid, "status": "ok", "duration_s": float(k)}}])
            s.commit(b)
            print(k, flush=True)
            k += 1
    """)
    for delay in (0.0, 0.4, 1.1):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        # Kill at a time relative to the first commit, not to the start: a loaded machine may
        # take seconds to import and open the store.
        assert p.stdout.readline().strip() == "0"
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        store = FeatureStore(root, create=False)
        rows = store.query("""
            SELECT v.video_id, v.duration_s, w.n, e.n AS n_emb, e.lo, e.hi
            FROM videos v
            JOIN (SELECT video_id, count(*) AS n FROM windows GROUP BY 1) w USING (video_id)
            JOIN (SELECT video_id, count(*) AS n, min(embedding[1]) AS lo, max(embedding[1]) AS hi
                  FROM embeddings GROUP BY 1) e USING (video_id)""").to_pylist()
        assert rows, "nothing committed before the kill"
        for r in rows:   # the three tables of each video come from one and the same commit
            k = int(r["duration_s"])
            assert r["n"] == r["n_emb"] == 50 + k % 7 and r["lo"] == r["hi"] == k, r
        store.close()
    store = FeatureStore(root, create=False)
    add_video(store, "after", 2, {"audio": 4})          # the store still takes commits
    assert store.query("SELECT count(*) AS n FROM windows WHERE video_id = 'after'").column("n")[0].as_py() == 2


@pytest.mark.slow
def test_feature_sets_are_named_choices(tmp_path):
    store = FeatureStore(tmp_path / "s")
    add_video(store, "v1", 3, {"text": 4})
    add_video(store, "v2", 3, {"text": 6})   # a trial encoder on one video
    assert store.feature_sets() == {}
    assert store.use_encoders(["text-4"]) == {"text": "text-4"}
    assert store.query("SELECT count(*) AS n FROM fusion_vectors WHERE text IS NOT NULL").column("n")[0].as_py() == 3
    add_video(store, "v3", 3, {"text": 6})   # more trial vectors do not switch anything
    assert store.feature_sets()["text"]["encoder_id"] == "text-4"
    con = store.connect(encoders={"text": "text-6"})   # a model's own choice, on one connection
    assert con.execute("SELECT count(*) FROM fusion_vectors WHERE text IS NOT NULL").fetchone() == (6,)
    con.close()
    with pytest.raises(StoreError, match="no embeddings of encoder 'nope'.*text-4"):
        store.use_encoders(["nope"])


@pytest.mark.slow
def test_time_travel_and_compaction(tmp_path):
    store = FeatureStore(tmp_path / "s")
    for k in range(6):
        add_video(store, f"v{k}", 4, {"audio": 8}, seed=k)
    snap = store.current_snapshot()
    add_video(store, "v0", 9, {"audio": 8}, seed=99)          # replaced after the snapshot
    before = store.load_embeddings("audio-8", snapshot=snap)
    assert store.query("SELECT count(*) AS n FROM windows WHERE video_id = 'v0'",
                       snapshot=snap).column("n")[0].as_py() == 4
    keys, now = store.load_embeddings("audio-8")
    result = store.compact()
    assert result["data_files_after"] < result["data_files_before"]
    keys2, after = store.load_embeddings("audio-8")
    np.testing.assert_array_equal(now, after)
    assert keys.equals(keys2)
    # Compaction keeps every snapshot readable.
    np.testing.assert_array_equal(store.load_embeddings("audio-8", snapshot=snap)[1], before[1])


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(tmp_path / "none", create=False)
    (tmp_path / "old" / "parts").mkdir(parents=True)
    with pytest.raises(StoreError, match="earlier parts/ format"):
        FeatureStore(tmp_path / "old")
    store = FeatureStore(tmp_path / "s")
    with pytest.raises(StoreError, match=r"expected \(n, 4\)"):
        store.write_embeddings("x", 4, ["a"], [0], np.zeros((1, 5), np.float32))
    with pytest.raises(StoreError, match="unknown store table"):
        store.put("nonsense", [{"a": 1}])


@pytest.mark.slow
def test_postgresql_catalog(tmp_path, postgres):
    url = postgres.replace("postgresql+psycopg2://", "postgresql://") + "?schema=store_test"
    store = FeatureStore(tmp_path / "pg", catalog=url)
    add_video(store, "v1", 3, {"audio": 4})
    assert json.loads((tmp_path / "pg" / "store.json").read_text())["catalog"] == url
    assert not (tmp_path / "pg" / "catalog.sqlite").exists()
    store.close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER.format(
        repo=str(REPO), tests=str(REPO / "tests"), root=str(tmp_path / "pg"), n=6, ids=["x", "y"], seed=p)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    again = FeatureStore(tmp_path / "pg", create=False)
    assert again.query("SELECT seq FROM store_commits").column("seq")[0].as_py() == 1 + 12
    assert again.query("SELECT count(DISTINCT video_id) AS n FROM videos").column("n")[0].as_py() == 3


@pytest.mark.slow
def test_the_file_reader_equals_duckdb_in_every_state(tmp_path):
    """load_embeddings' pyarrow path (data files + delete files, as DuckLake lists them) returns
    what DuckDB returns: fresh commits, partial replacements, compaction, old snapshots."""
    store = FeatureStore(tmp_path / "s")

    def write(vids, seed):
        n = 5
        b = WriteBatch()
        for eid, d in (("a", 6), ("b", 3)):
            m = np.random.default_rng(seed).standard_normal((n * len(vids), d)).astype(np.float32)
            m[1] = np.nan
            b.replace("embeddings", embeddings_table(eid, d, np.repeat(vids, n), np.tile(np.arange(n), len(vids)), m))
        store.commit(b)

    def same(snapshot=None):
        for eid in ("a", "b"):
            kf, mf = store.load_embeddings(eid, snapshot=snapshot, engine="files")
            kd, md = store.load_embeddings(eid, snapshot=snapshot, engine="duckdb")
            assert kf.equals(kd) and np.array_equal(mf, md, equal_nan=True), (eid, snapshot)

    for k in range(4):
        write([f"v{k}a", f"v{k}b", f"v{k}c"], seed=k)
    same()
    write(["v0b"], seed=10)                   # a partial replacement: a delete file
    write(["v1a", "v2c"], seed=11)
    snap = store.current_snapshot()
    same()
    store.compact()
    same()
    same(snapshot=snap)
    write(["v3a"], seed=12)
    same()
    same(snapshot=snap)


@pytest.mark.slow
def test_compaction_while_a_writer_commits(tmp_path):
    root = tmp_path / "s"
    store = FeatureStore(root)
    for k in range(4):
        add_video(store, f"pre{k}", 3, {"audio": 16}, seed=k)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER.format(
        repo=str(REPO), tests=str(REPO / "tests"), root=str(root), n=15, ids=["w1", "w2", "w3"], seed=7)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    compactions = 0
    while writer.poll() is None:
        store.compact()
        compactions += 1
    out, err = writer.communicate()
    assert writer.returncode == 0 and "done" in out, err
    assert compactions >= 1
    rows = store.query("""SELECT w.video_id, count(*) AS n, any_value(e.n) AS n_emb FROM windows w
                          JOIN (SELECT video_id, count(*) AS n FROM embeddings GROUP BY 1) e USING (video_id)
                          GROUP BY 1""").to_pylist()
    assert {r["video_id"] for r in rows} == {"pre0", "pre1", "pre2", "pre3", "w1", "w2", "w3"}
    assert all(r["n"] == r["n_emb"] for r in rows)


def test_the_duckdb_command_line_client_reads_a_store(tmp_path):
    exe = Path(sys.executable).parent / "duckdb"
    if not exe.exists():
        from conftest import require
        require("the duckdb command-line client", "pip install duckdb-cli==1.5.5 (the dev extra)")
    store = FeatureStore(tmp_path / "s")
    add_video(store, "v1", 3, {"audio": 4})
    store.close()
    sql = (f"LOAD '{_packaged_extension('ducklake')}'; LOAD '{_packaged_extension('sqlite_scanner')}'; "
           "ATTACH 'ducklake:sqlite:catalog.sqlite' AS store (READ_ONLY); "
           "SELECT count(*) AS n FROM store.fusion_vectors;")
    r = subprocess.run([str(exe), "-csv", "-c", sql], cwd=tmp_path / "s", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["n", "3"], r.stderr
