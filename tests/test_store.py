import subprocess
import sys
import textwrap

import duckdb
import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from featurestore.store import FeatureStore, StoreError


def add_video(store, vid, n, dims, missing=None, seed=0):
    """Write one video with n windows and one encoder per modality of the given dims."""
    rng = np.random.default_rng(seed)
    store.put("videos", [{"video_id": vid, "split": "train", "label": "Joy", "status": "ok"}])
    store.put("windows", [{"video_id": vid, "window_idx": i, "start_s": i * .5,
                                  "end_s": i * .5 + 1, "transcript": f"w{i}"} for i in range(n)])
    mats = {}
    for mod, dim in dims.items():
        eid = f"{mod}-{dim}"
        store.register_encoder(f"{mod}-enc", mod, dim, "1", {"dim": dim}, None, {}, eid)
        m = rng.standard_normal((n, dim)).astype(np.float32)
        reasons = [None] * n
        for i in (missing or {}).get(mod, []):
            m[i] = np.nan
            reasons[i] = f"no {mod}"
        store.write_embeddings(eid, dim, [vid] * n, range(n), m, reasons)
        mats[mod] = m
    return mats


@pytest.mark.parametrize("dims", [{"audio": 128, "video": 3, "text": 768},
                                  {"audio": 7, "video": 1, "text": 384}])
def test_round_trip_duckdb_and_pyarrow(tmp_path, dims):
    store = FeatureStore(tmp_path / "s")
    mats = add_video(store, "v1", 5, dims, missing={"video": [1, 3], "text": [4]})
    con = store.connect()
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE fusion_vectors)").fetchall())
    for mod, dim in dims.items():
        assert types[mod] == f"FLOAT[{dim}]"
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
    # pyarrow alone, without this package: the fixed dim survives as the Arrow type.
    tbl = ds.dataset(store.embedding_dir(f"text-{dims['text']}"), format="parquet").to_table()
    assert tbl.schema.field("embedding").type.list_size == dims["text"]
    assert tbl.column("embedding").null_count == 1
    keys, m = store.load_embeddings(f"audio-{dims['audio']}")
    np.testing.assert_array_equal(m, mats["audio"])
    keys, m = store.load_embeddings(f"text-{dims['text']}")
    assert np.isnan(m[4]).all() and keys.column("missing_reason")[4].as_py() == "no text"


def test_plain_duckdb_reads_the_catalog(tmp_path):
    store = FeatureStore(tmp_path / "s")
    add_video(store, "v1", 3, {"audio": 128, "video": 3, "text": 768})
    store.refresh_catalog()
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    assert con.execute("SELECT count(*) FROM fusion_vectors").fetchone() == (3,)
    assert con.execute("SELECT label FROM videos").fetchone() == ("Joy",)
    assert con.execute("SELECT count(*) FROM encoders").fetchone() == (3,)


def test_export_casts_arrays_to_lists_so_pyarrow_reads_nulls(tmp_path):
    # DuckDB writes FLOAT[n] columns holding NULL as Parquet that pyarrow rejects;
    # exports therefore cast to FLOAT[] (a list), which round-trips everywhere.
    store = FeatureStore(tmp_path / "s")
    add_video(store, "v1", 4, {"audio": 128, "video": 3, "text": 768}, missing={"video": [0]})
    con = store.connect()
    out = tmp_path / "fv.parquet"
    con.execute(f"COPY (SELECT video_id, window_idx, video::FLOAT[] AS video FROM fusion_vectors) TO '{out}'")
    col = pq.read_table(out).sort_by("window_idx").column("video").to_pylist()
    assert col[0] is None and len(col[1]) == 3


def test_rewrite_is_idempotent_newest_wins(tmp_path):
    store = FeatureStore(tmp_path / "s")
    add_video(store, "v1", 4, {"audio": 8}, seed=0)
    second = add_video(store, "v1", 4, {"audio": 8}, seed=1)
    store.put("videos", [{"video_id": "v1", "split": "train", "label": "Joy",
                                 "status": "failed", "error": "boom"}])
    con = store.connect()
    assert con.execute("SELECT count(*) FROM windows").fetchone() == (4,)
    assert con.execute("SELECT count(*) FROM fusion_vectors").fetchone() == (4,)
    assert con.execute("SELECT status, error FROM videos").fetchall() == [("failed", "boom")]
    _, m = store.load_embeddings("audio-8")
    np.testing.assert_array_equal(m, second["audio"])


def test_parts_from_before_the_blob_column_still_load(tmp_path):
    """Stores written before ``embedding_f32`` existed hold only the FLOAT[] column."""
    import pyarrow.parquet as pq
    store = FeatureStore(tmp_path / "s")
    old = add_video(store, "v1", 5, {"audio": 8}, missing={"audio": [2]}, seed=0)
    for f in store.embedding_dir("audio-8").glob("*.parquet"):
        t = pq.read_table(f)
        if t.num_rows:
            pq.write_table(t.drop(["embedding_f32"]), f)
    new = add_video(store, "v2", 3, {"audio": 8}, seed=1)
    keys, m = store.load_embeddings("audio-8")
    order = np.argsort([f"{v}-{i:03d}" for v, i in zip(keys.column("video_id").to_pylist(),
                                                       keys.column("window_idx").to_pylist())])
    np.testing.assert_array_equal(m[order], np.vstack([old["audio"], new["audio"]]))
    assert np.isnan(m[order][2]).all() and keys.column("missing_reason").to_pylist()[order[2]] == "no audio"


def test_fusion_vectors_use_the_most_recent_encoder_and_never_mix(tmp_path):
    store = FeatureStore(tmp_path / "s")
    add_video(store, "v1", 2, {"text": 4})
    add_video(store, "v1", 2, {"text": 6})
    con = store.connect()
    assert dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE fusion_vectors)").fetchall())["text"] == "FLOAT[6]"
    store.choose_encoder("text-4")
    con = store.connect()
    assert dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE fusion_vectors)").fetchall())["text"] == "FLOAT[4]"
    with pytest.raises(StoreError, match="no encoder 'nope'"):
        store.choose_encoder("nope")


def test_wrong_dim_is_refused(tmp_path):
    store = FeatureStore(tmp_path / "s")
    with pytest.raises(StoreError, match=r"expected \(n, 4\)"):
        store.write_embeddings("x", 4, ["a"], [0], np.zeros((1, 5), np.float32))


def test_opening_a_non_store_without_create(tmp_path):
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(tmp_path / "nothing", create=False)


def test_two_concurrent_writer_processes(tmp_path):
    root = tmp_path / "s"
    FeatureStore(root)
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from featurestore.store import FeatureStore
        s = FeatureStore({str(root)!r})
        w = int(sys.argv[1])
        for k in range(40):
            vid = f"w{{w}}-{{k}}"
            s.put("windows", [{{"video_id": vid, "window_idx": i}} for i in range(3)])
            s.write_embeddings("enc", 16, [vid] * 3, range(3), np.full((3, 16), w, np.float32))
            if k % 10 == 0:
                s.refresh_catalog()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(w)]) for w in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = FeatureStore(root)
    con = store.connect()
    assert con.execute("SELECT count(*), count(DISTINCT video_id) FROM windows").fetchone() == (240, 80)
    assert con.execute("SELECT count(*) FROM embeddings").fetchone() == (240,)
    assert not list(root.rglob("*.tmp"))


def test_compact_keeps_every_view_and_newest_wins(tmp_path):
    store = FeatureStore(tmp_path / "s")
    for k in range(6):
        add_video(store, f"v{k}", 4, {"audio": 8, "text": 5}, missing={"text": [1]}, seed=k)
    newer = add_video(store, "v2", 3, {"audio": 8, "text": 5}, seed=99)   # v2 rewritten, fewer windows
    store.put("window_predictions", [{"model_id": "m", "video_id": "v0", "window_idx": i,
                                             "probs": [0.125] * 8} for i in range(4)])
    store.put("window_predictions", [{"model_id": "m", "video_id": "v0", "window_idx": i,
                                             "probs": [0.5] + [0.5 / 7] * 7} for i in range(2)])

    def views():
        con = store.connect()
        out = {q: con.execute(q).fetchall() for q in (
            "SELECT * EXCLUDE (written_at) FROM windows ORDER BY ALL",
            "SELECT video_id, window_idx, audio, text FROM fusion_vectors ORDER BY ALL",
            "SELECT * EXCLUDE (written_at) FROM window_predictions ORDER BY ALL",
            "SELECT video_id, status FROM videos ORDER BY ALL",
            "SELECT encoder_id, video_id, window_idx, missing_reason FROM embeddings ORDER BY ALL")}
        con.close()
        return out

    before = views()
    keys_before, m_before = store.load_embeddings("audio-8")
    merged = store.compact()
    assert merged["windows"] == 7 and merged["embeddings/encoder_id=audio-8"] == 7
    assert len(list(store.embedding_dir("audio-8").glob("*.parquet"))) == 1
    assert views() == before
    keys_after, m_after = store.load_embeddings("audio-8")
    assert keys_after.equals(keys_before) and np.array_equal(m_after, m_before, equal_nan=True)
    v2 = keys_after.column("video_id").to_numpy(zero_copy_only=False) == "v2"
    np.testing.assert_array_equal(m_after[v2], newer["audio"])
    # parts written after compaction still win
    latest = add_video(store, "v3", 4, {"audio": 8, "text": 5}, seed=7)
    _, m = store.load_embeddings("audio-8")
    got = store.query("SELECT audio FROM fusion_vectors WHERE video_id = 'v3' ORDER BY window_idx")
    np.testing.assert_array_equal(np.array(got.column(0).to_pylist(), np.float32), latest["audio"])
