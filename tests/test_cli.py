"""The command line as a user meets it: exit codes, messages, SQL output."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def text_manifest(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    for i, w in enumerate(["senang sekali", "marah besar", "takut gelap", "sangat bangga"]):
        (d / f"t{i}.txt").write_text(f"0\t[NO_SPEECH]\n1\tsaya {w}\n2\tsaya {w}\n")
    (d / "m.csv").write_text("id,video,emotion,transcript\n"
                             "a,,Senang,t0.txt\nb,,Marah,t1.txt\nc,,Love,t2.txt\nd,,Bangga,t3.txt\n")
    return d / "m.csv"


@pytest.mark.slow
def test_bad_row_named_nonzero_exit_good_rows_stored(tmp_path, text_manifest):
    store = tmp_path / "s"
    r = cli("embed", "--store", str(store), "--manifest", str(text_manifest),
            "--modalities", "text", "--quiet")
    assert r.returncode == 1, r.stderr
    assert "row 3 (id 'c')" in r.stderr and "'Love'" in r.stderr
    assert "mapped 'Senang' -> Joy: 1" in r.stderr
    q = cli("sql", "--store", str(store), "--format", "json",
            "SELECT video_id, label, raw_label, status FROM videos ORDER BY video_id")
    assert q.returncode == 0, q.stderr
    rows = json.loads(q.stdout)
    assert [(x["video_id"], x["label"], x["status"]) for x in rows] == [
        ("a", "Joy", "ok"), ("b", "Anger", "ok"), ("d", "Proud", "ok")]
    csv_out = cli("sql", "--store", str(store), "--format", "csv",
                  "SELECT count(*) AS n FROM windows WHERE transcript IS NULL")
    assert csv_out.stdout.split() == ["n", "3"]


def test_duplicate_ids_stop_before_work(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("id,video,emotion\n1,a.mp4,Joy\n1,b.mp4,Joy\n")
    r = cli("embed", "--store", str(tmp_path / "s"), "--manifest", str(m))
    assert r.returncode == 2 and "duplicate id" in r.stderr
    assert not (tmp_path / "s").exists()


def test_missing_store(tmp_path):
    r = cli("sql", "--store", str(tmp_path / "nope"), "SELECT 1")
    assert r.returncode == 2 and "not a feature store" in r.stderr


@pytest.mark.slow
def cli_count(store, table: str) -> int:
    r = cli("sql", "--store", str(store), "--format", "json", f"SELECT count(*) AS n FROM {table}")
    return json.loads(r.stdout)[0]["n"]


def test_sql_error_is_a_message_not_a_traceback(tmp_path, text_manifest):
    store = tmp_path / "s"
    cli("embed", "--store", str(store), "--manifest", str(text_manifest), "--modalities", "text", "--quiet")
    r = cli("sql", "--store", str(store), "SELECT no_such_column FROM videos")
    assert r.returncode == 2 and "no_such_column" in r.stderr and "Traceback" not in r.stderr
    # a statement without a result set runs too: COPY to Parquet, read back
    out = tmp_path / "windows.parquet"
    r = cli("sql", "--store", str(store), f"COPY (FROM windows) TO '{out}' (FORMAT parquet)")
    assert r.returncode == 0, r.stderr
    import pyarrow.parquet as pq
    assert pq.read_table(out).num_rows == cli_count(store, "windows")


def test_console_entry_points_agree():
    # python -m reels_emotion and the checkout's cli.py shim are one parser. The library
    # package has no __main__ of its own: it would import the command line above it.
    b = cli("--help")
    c = subprocess.run([sys.executable, "-m", "reels_emotion", "--help"], cwd=REPO,
                       capture_output=True, text=True)
    assert b.returncode == c.returncode == 0 and b.stdout == c.stdout
    assert "tune-fusion" in c.stdout and "export-submission" in c.stdout
    assert not (REPO / "featurestore" / "__main__.py").exists()


@pytest.mark.slow
def test_compact_command(tmp_path, text_manifest):
    store = tmp_path / "s"
    cli("embed", "--store", str(store), "--manifest", str(text_manifest), "--modalities", "text",
        "--chunk-size", "1", "--quiet")
    before = cli("sql", "--store", str(store), "--format", "csv", "SELECT * FROM windows ORDER BY ALL")
    r = cli("compact", "--store", str(store))
    import re
    n_before, n_after = map(int, re.search(r"data files (\d+) -> (\d+)", r.stdout).groups())
    assert r.returncode == 0 and n_after < n_before
    after = cli("sql", "--store", str(store), "--format", "csv", "SELECT * FROM windows ORDER BY ALL")
    assert after.stdout == before.stdout and after.stdout.count("\n") == 1 + 9


@pytest.mark.slow
def test_a_notebook_reading_the_store_does_not_stop_embed_or_compact(tmp_path, text_manifest):
    """The README's way to query, a read-only attach in another process, held open while
    `embed` and `compact` write; its next query sees their work."""
    from featurestore.store import _packaged_extension
    store = tmp_path / "s"
    first = tmp_path / "first.csv"
    first.write_text("\n".join(text_manifest.read_text().splitlines()[:2]).replace(
        "t0.txt", str(text_manifest.parent / "t0.txt")) + "\n")
    r = cli("embed", "--store", str(store), "--manifest", str(first), "--modalities", "text", "--quiet")
    assert r.returncode == 0 and "embedded 1 video(s)" in r.stdout, (r.stdout, r.stderr)
    notebook = subprocess.Popen([sys.executable, "-c", f"""
import duckdb, sys, time
con = duckdb.connect()
con.execute("LOAD '{_packaged_extension('ducklake')}'"); con.execute("LOAD '{_packaged_extension('sqlite_scanner')}'")
con.execute("ATTACH 'ducklake:sqlite:{store}/catalog.sqlite' AS s (READ_ONLY, DATA_PATH '{store}/data/', OVERRIDE_DATA_PATH true)")
print(con.execute("SELECT count(*) FROM s.videos").fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute("SELECT count(*), min(video_id) FROM s.videos").fetchone(), flush=True)
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert notebook.stdout.readline().strip() == "1"
    r = cli("embed", "--store", str(store), "--manifest", str(text_manifest), "--modalities", "text", "--quiet")
    assert r.returncode == 1 and "embedded 2 video(s)" in r.stdout, r.stderr   # row 'c' is rejected
    assert cli("compact", "--store", str(store)).returncode == 0
    out, _ = notebook.communicate("\n", timeout=60)
    assert out.strip() == "(3, 'a')"
    q = cli("sql", "--store", str(store), "--format", "csv", "SELECT count(*) AS n FROM videos")
    assert q.stdout.split() == ["n", "3"]


def test_version_and_a_typo_in_a_modality_name(tmp_path):
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("reels-emotion ")
    from featurestore.store import FeatureStore
    FeatureStore(tmp_path / "s").close()
    r = cli("tune-fusion", "--store", str(tmp_path / "s"), "--encoders", "txt=3f2a9c1b0d4e")
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1].startswith("error: --encoders 'txt=3f2a9c1b0d4e': unknown modality 'txt'")


def test_an_unexpected_error_says_it_is_a_bug_and_where_the_traceback_went(monkeypatch, capsys):
    from reels_emotion import cli as cli_module

    def broken(args):
        raise RuntimeError("planted fault")
    monkeypatch.setattr(cli_module, "cmd_encoders", broken)
    assert cli_module.main(["encoders"]) == 2
    err = capsys.readouterr().err
    assert "This is a bug" in err and "planted fault" in err
    log = err.split("traceback is in ")[1].split(" ")[0]
    assert "RuntimeError: planted fault" in Path(log).read_text()
    Path(log).unlink()
    # --debug prints the traceback and still exits 2 (an uncaught exception would exit 1,
    # the code of "some videos failed")
    assert cli_module.main(["encoders", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: planted fault" in err


def test_sql_write_is_one_writer_transaction(tmp_path):
    """sql --write bumps the commit counter like every writer (so it conflicts with, and is
    retried against, a concurrent embed) and runs its statements in one transaction."""
    from featurestore.store import FeatureStore
    store = FeatureStore(tmp_path / "s")
    seq = lambda: store.query("SELECT seq FROM store_commits")["seq"][0].as_py()  # noqa: E731
    before = seq()
    r = cli("sql", "--store", str(store.root), "--write",
            "CREATE TABLE notes (n INTEGER); INSERT INTO notes VALUES (1), (2)")
    assert r.returncode == 0, r.stderr
    assert seq() == before + 1
    assert store.query("SELECT count(*) AS n FROM notes")["n"][0].as_py() == 2
    r = cli("sql", "--store", str(store.root), "--write", "INSERT INTO notes VALUES (3); SELECT no_such_column")
    assert r.returncode == 2 and seq() == before + 1          # rolled back whole
    assert store.query("SELECT count(*) AS n FROM notes")["n"][0].as_py() == 2
    r = cli("sql", "--store", str(store.root), "--write", "BEGIN; INSERT INTO notes VALUES (3); COMMIT")
    assert r.returncode == 2 and "leave out BEGIN/COMMIT" in r.stderr


def test_predict_video_without_a_model_says_what_to_give(tmp_path):
    r = cli("predict-video", str(tmp_path / "x.mp4"))
    assert r.returncode == 2 and r.stderr.startswith("error: predict-video needs a model: --store S")
