"""``embed --engine ray`` on a real local Ray instance (2 CPUs), against the local engine.

One Ray instance serves the module (``ray_cluster``); a second driver process joins it by
address. Real models, a real DuckLake store and, for the object-storage test, a real S3
server (moto on loopback).
"""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from featurestore.embed import build_embedder
from featurestore.manifest import read_manifest
from featurestore.store import FeatureStore
from reels_emotion import cli
import media_fixtures as mf

REPO = Path(__file__).resolve().parents[1]
#: The demo corpus speaks through espeak-ng (as in tests/test_embed.py).
needs_espeak = pytest.mark.usefixtures("espeak_ng")
#: Real Ray instances and real models end to end: the whole module is in the slow tier.
pytestmark = pytest.mark.slow

#: Rows that must be the same whichever engine wrote them (times of writing aside).
SAME_ROWS = {
    "videos": "SELECT * EXCLUDE (updated_at) FROM videos ORDER BY video_id",
    "windows": "SELECT * FROM windows ORDER BY video_id, window_idx",
    "segments": "SELECT * FROM segments ORDER BY video_id, source, segment_idx",
    "video_features": "SELECT * EXCLUDE (embedded_at) FROM video_features ORDER BY video_id, encoder_id",
    "encoders": "SELECT * EXCLUDE (registered_at) FROM encoders ORDER BY encoder_id",
    "feature_sets": "SELECT * EXCLUDE (chosen_at) FROM feature_sets ORDER BY modality",
    "embedding keys": "SELECT encoder_id, video_id, window_idx, missing_reason FROM embeddings ORDER BY ALL",
}


def _embed_ray(store, manifest, **kw):
    from featurestore.ray_engine import embed_manifest_ray
    return embed_manifest_ray(store, manifest, progress=False, log=lambda m: None, **kw)


def _embed_local(store, manifest, **kw):
    embedder, _ = build_embedder(store, manifest, progress=False, device="cpu", **kw)
    embedder.log = lambda m: None
    return embedder.run(manifest)


@pytest.fixture(scope="module")
def demo_manifest(tmp_path_factory):
    """Five demo-corpus clips, a file that is not a video and a missing one."""
    from reels_demo.corpus import build_demo_corpus
    d = tmp_path_factory.mktemp("demo")
    build_demo_corpus(d, n_per_class=2, seed=3, progress=False)
    rows = (d / "manifest.csv").read_text().splitlines()[:6]
    mf.make_text_as_video(d / "notes.mp4")
    rows += ["notes,notes.mp4,Joy,train", "gone,videos/gone.mp4,Fear,train"]
    (d / "part.csv").write_text("\n".join(rows) + "\n")
    return read_manifest(d / "part.csv")


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory, ray_cluster, demo_manifest):
    """The same manifest embedded by each engine into its own store (2-video blocks)."""
    root = tmp_path_factory.mktemp("engines")
    local, ray_store = FeatureStore(root / "local"), FeatureStore(root / "ray")
    t = time.perf_counter()
    local_report = _embed_local(local, demo_manifest, chunk_size=2)
    local_s = time.perf_counter() - t
    t = time.perf_counter()
    ray_report = _embed_ray(ray_store, demo_manifest, chunk_size=2, device="cpu")
    print(f"\nlocal engine {local_s:.1f} s, ray engine {time.perf_counter() - t:.1f} s")
    return local, local_report, ray_store, ray_report


@needs_espeak
def test_ray_engine_writes_the_local_engines_rows(both_engines):
    local, _, ray_store, report = both_engines
    assert report.engine == "ray" and report.n_embedded == 5 and report.n_windows > 0
    for name, sql in SAME_ROWS.items():
        a, b = local.query(sql), ray_store.query(sql)
        assert a.num_rows > 0 and a.equals(b), name
    for encoder_id in local.query("SELECT encoder_id FROM encoders").column(0).to_pylist():
        keys_a, xa = local.load_embeddings(encoder_id)
        keys_b, xb = ray_store.load_embeddings(encoder_id)
        assert keys_a.equals(keys_b)
        np.testing.assert_allclose(xa, xb, rtol=0, atol=1e-5)
    # The per-window tables came from the workers' own Parquet files, registered by the driver.
    files = ray_store.query("SELECT data_file FROM ducklake_list_files('store', 'embeddings')"
                            ).column(0).to_pylist()
    assert files and all(Path(f).name.startswith("ray-") for f in files)
    assert all("/encoder_id=" in f for f in files)
    assert "ray stages: decode: tasks" in report.summary()


@needs_espeak
def test_a_bad_file_is_recorded_as_the_local_engine_records_it(both_engines):
    local, local_report, ray_store, report = both_engines
    assert {f.video_id for f in report.failures} == {f.video_id for f in local_report.failures} \
        == {"notes", "gone"}
    sql = "SELECT video_id, status, error FROM videos WHERE status = 'failed' ORDER BY video_id"
    assert ray_store.query(sql).equals(local.query(sql))
    errors = {r["video_id"]: r["error"] for r in ray_store.query("SELECT video_id, error FROM videos").to_pylist()}
    assert "notes.mp4" in errors["notes"] and "gone.mp4" in errors["gone"]
    assert ray_store.query("SELECT count(*) FROM videos WHERE status = 'ok'").column(0)[0].as_py() == 5


@pytest.fixture(scope="module")
def text_manifest(tmp_path_factory):
    """48 text-only videos of 6 windows: quick to embed, many commits."""
    import media_fixtures as mf
    return mf.text_corpus(tmp_path_factory.mktemp("texts"), 48, 6)


def _part(manifest: Path, out: Path, start: int, stop: int) -> Path:
    """Rows ``start:stop`` of ``manifest`` in a manifest elsewhere (transcript paths made absolute)."""
    header, *rows = manifest.read_text().splitlines()
    fixed = [r.rpartition(",")[0] + f",{manifest.parent / r.rpartition(',')[2]}" for r in rows[start:stop]]
    out.write_text("\n".join([header, *fixed]) + "\n")
    return out


def test_a_killed_ray_driver_resumes_without_loss_or_duplicates(tmp_path, ray_cluster, text_manifest):
    store = tmp_path / "s"
    args = [sys.executable, "cli.py", "embed", "--store", str(store), "--manifest", str(text_manifest),
            "--modalities", "text", "--engine", "ray", "--ray-address", ray_cluster, "--chunk-size", "1",
            "--device", "cpu", "--quiet"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def n_ok() -> int:
        try:
            return FeatureStore(store, create=False).query(
                "SELECT count(*) FROM videos WHERE status = 'ok'").column(0)[0].as_py()
        except Exception:  # noqa: BLE001 - not created yet
            return 0

    deadline = time.time() + 240
    while time.time() < deadline and n_ok() < 2 and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    _, err = driver.communicate()
    done_before = n_ok()
    assert 0 < done_before < 48, f"the kill should land mid-run (rc {driver.returncode}): {err[-2000:]}"
    # The second driver is this process: it plans from the store and embeds the rest.
    st = FeatureStore(store, create=False)
    report = _embed_ray(st, read_manifest(text_manifest), modalities=["text"], chunk_size=4, device="cpu")
    assert report.n_skipped == done_before and report.n_embedded == 48 - done_before and report.ok
    con = st.connect()
    assert con.execute("SELECT count(*) FROM videos WHERE status = 'ok'").fetchone() == (48,)
    assert con.execute("SELECT count(*), count(DISTINCT (video_id, window_idx)) FROM windows").fetchone() \
        == (48 * 6, 48 * 6)
    assert con.execute("SELECT count(*), count(DISTINCT (video_id, window_idx)) FROM embeddings").fetchone() \
        == (48 * 6, 48 * 6)
    assert con.execute("SELECT count(*) FROM video_features").fetchone() == (48,)
    assert con.execute("SELECT count(*) FROM fusion_vectors WHERE text IS NULL").fetchone() == (0,)
    con.close()
    # Files the killed driver's workers wrote but never registered are orphans: compact
    # removes them (here at once) and every row stays.
    before = st.query("SELECT * FROM embeddings ORDER BY video_id, window_idx")
    assert st.compact(cleanup_older_than="0 seconds")["orphans_deleted"] == 0   # may be in flight
    result = st.compact(cleanup_older_than="0 seconds", orphans_older_than="0 seconds")
    assert result["orphans_deleted"] > 0
    assert st.query("SELECT * FROM embeddings ORDER BY video_id, window_idx").equals(before)


def test_a_store_on_s3_round_trip(tmp_path, ray_cluster, s3_server, text_manifest):
    """Ray workers write the data files to S3, the driver commits; plain duckdb with httpfs
    reads the store back, and so does the package's own file reader (pyarrow's S3)."""
    import boto3
    import duckdb

    from featurestore.store import _packaged_extension

    boto3.client("s3").create_bucket(Bucket="reels")
    few = _part(text_manifest, tmp_path / "few.csv", 0, 6)
    rc = cli.main(["embed", "--store", str(tmp_path / "s"), "--data-path", "s3://reels/run1",
                   "--manifest", str(few), "--modalities", "text", "--engine", "ray", "--chunk-size", "2",
                   "--device", "cpu", "--quiet"])
    assert rc == 0
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="reels", Prefix="run1/")["Contents"]]
    assert any(k.startswith("run1/main/embeddings/encoder_id=") and "/ray-" in k for k in keys)
    assert not (tmp_path / "s" / "data").exists()

    con = duckdb.connect()
    for ext in ("ducklake", "sqlite_scanner", "httpfs"):
        con.execute(f"LOAD '{_packaged_extension(ext)}'")
    port = s3_server.rsplit(":", 1)[1]
    con.execute(f"CREATE SECRET (TYPE s3, KEY_ID 'testing', SECRET 'testing', REGION 'us-east-1', "
                f"ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false)")
    con.execute(f"ATTACH 'ducklake:sqlite:{tmp_path / 's' / 'catalog.sqlite'}' AS lake (READ_ONLY)")
    assert con.execute("SELECT count(*), count(DISTINCT video_id) FROM lake.windows").fetchone() == (36, 6)
    assert con.execute("SELECT count(*) FROM lake.embeddings WHERE embedding IS NOT NULL").fetchone() == (36,)
    assert con.execute("SELECT count(*) FROM lake.videos WHERE status = 'ok'").fetchone() == (6,)
    plain = con.execute("SELECT video_id, window_idx, embedding FROM lake.embeddings "
                        "ORDER BY video_id, window_idx").fetchall()
    con.close()

    st = FeatureStore(tmp_path / "s", create=False)
    assert st.remote and st.data_path == "s3://reels/run1/"
    encoder_id = st.query("SELECT encoder_id FROM encoders").column(0)[0].as_py()
    keys_files, x_files = st.load_embeddings(encoder_id, engine="files")
    assert keys_files.select(["video_id", "window_idx"]).to_pylist() == \
        [{"video_id": v, "window_idx": w} for v, w, _ in plain]
    np.testing.assert_array_equal(x_files, np.array([e for *_, e in plain], np.float32))
    # The local engine writes to the same S3 store (DuckDB's own writes through httpfs).
    more = _part(text_manifest, tmp_path / "more.csv", 6, 8)
    assert cli.main(["embed", "--store", str(tmp_path / "s"), "--manifest", str(more), "--modalities", "text",
                     "--device", "cpu", "--quiet"]) == 0
    assert st.query("SELECT count(DISTINCT video_id) FROM embeddings").column(0)[0].as_py() == 8


def test_bad_engine_and_store_options_exit_2(tmp_path, text_manifest, capsys):
    m = str(text_manifest)
    assert cli.main(["embed", "--store", str(tmp_path / "a"), "--manifest", m, "--ray-address", "auto"]) == 2
    assert "only apply with --engine ray" in capsys.readouterr().err
    assert cli.main(["embed", "--store", "s3://reels/x", "--manifest", m]) == 2
    assert "--data-path s3://reels/x" in capsys.readouterr().err
    assert cli.main(["embed", "--store", str(tmp_path / "b"), "--data-path", "/tmp/x", "--manifest", m]) == 2
    assert "only s3://bucket/prefix" in capsys.readouterr().err
    assert cli.main(["embed", "--store", str(tmp_path / "c"), "--data-path", "s3://Bad_Bucket/x",
                     "--manifest", m]) == 2
    assert "not a valid S3 bucket name" in capsys.readouterr().err
    assert cli.main(["embed", "--store", str(tmp_path / "d"), "--manifest", m, "--engine", "ray",
                     "--ray-actors", "asr=x"]) == 2
    assert "--ray-actors 'asr=x'" in capsys.readouterr().err


def test_a_cluster_address_nothing_answers_at_exits_2_at_once(tmp_path, text_manifest, capsys, ray_cluster):
    from conftest import _free_port
    t = time.perf_counter()
    assert cli.main(["embed", "--store", str(tmp_path / "s"), "--manifest", str(text_manifest), "--engine", "ray",
                     "--ray-address", f"127.0.0.1:{_free_port()}", "--modalities", "text", "--quiet"]) == 2
    assert "nothing answers there" in capsys.readouterr().err and time.perf_counter() - t < 60


def test_stage_plans_share_cpus_and_gpus():
    from featurestore.ray_engine import RayEngineError, plan_stages

    default = [("asr", True), ("audio", False), ("video", False), ("text", False)]
    small = {p.name: p for p in plan_stages(2, 0, default, "auto", chunk_size=8)}
    assert list(small) == ["decode", "asr", "audio", "video", "text", "write"]
    assert all(p.num_gpus == 0 and p.num_cpus == pytest.approx(0.4) for p in small.values())
    assert small["asr"].actors == (1, 1) and small["decode"].actors is None and small["asr"].batch_size == 8
    assert sum(p.num_cpus for n, p in small.items() if n not in ("decode", "write")) < 2
    # 16 CPUs and 4 GPUs: Whisper gets a GPU per actor and up to 4 of them; the CPU encoders scale on CPUs.
    big = {p.name: p for p in plan_stages(16, 4, default, "auto")}
    assert big["asr"].num_gpus == 1 and big["asr"].actors == (1, 4) and big["asr"].device == "cuda"
    assert big["video"].num_gpus == 0 and big["video"].num_cpus == 1 and big["video"].actors == (1, 3)
    # Two GPU stages on one GPU share it.
    shared = {p.name: p for p in plan_stages(8, 1, [("asr", True), ("text", True)], "auto")}
    assert shared["asr"].num_gpus == shared["text"].num_gpus == 0.5
    assert {p.name: p for p in plan_stages(8, 1, default, "cpu")}["asr"].num_gpus == 0
    custom = {p.name: p for p in plan_stages(16, 4, default, "auto", actors={"asr": 2}, batch={"text": 32},
                                             gpus={"asr": 0.5})}
    assert custom["asr"].actors == (1, 2) and custom["asr"].num_gpus == 0.5 and custom["text"].batch_size == 32
    with pytest.raises(RayEngineError, match="no GPU"):
        plan_stages(4, 0, default, "cuda")
    with pytest.raises(RayEngineError, match="CPU only"):
        plan_stages(4, 1, default, "auto", gpus={"video": 1})
    with pytest.raises(RayEngineError, match="unknown stage"):
        plan_stages(4, 0, default, actors={"ocr": 1})


def test_a_missing_ray_names_the_extra(monkeypatch):
    from featurestore import ray_engine

    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    with pytest.raises(ray_engine.RayEngineError, match=r"reels-emotion\[ray\]"):
        ray_engine.import_ray()


def test_s3_settings_from_the_aws_variables():
    from featurestore.objectstore import S3Settings, normalise_data_path

    s = S3Settings.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "k",
                             "AWS_SECRET_ACCESS_KEY": "s'x", "AWS_DEFAULT_REGION": "eu-west-1"})
    assert (s.endpoint, s.use_ssl, s.region) == ("127.0.0.1:9000", False, "eu-west-1")
    sql = s.duckdb_secret_sql()
    assert "ENDPOINT '127.0.0.1:9000'" in sql and "USE_SSL false" in sql and "SECRET 's''x'" in sql
    aws = S3Settings.from_env({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert aws.endpoint is None and aws.region == "us-east-1" and "ENDPOINT" not in aws.duckdb_secret_sql()
    assert normalise_data_path("s3://b/p/q") == "s3://b/p/q/" and normalise_data_path("s3://b") == "s3://b/"
    with pytest.raises(ValueError, match="expected http"):
        S3Settings.from_env({"AWS_ENDPOINT_URL": "ftp://x"})
