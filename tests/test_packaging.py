"""A non-editable install (a wheel) runs from any directory: SQL ships as package data."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_install_runs_embed_and_sql(tmp_path):
    # Build from a copy: setuptools reuses an in-tree build/, which would ship files this
    # checkout has deleted since, and leaves one behind.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "out"))
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(wheels), str(source)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(wheels.glob("reels_emotion-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("featurestore/sql/") and n.endswith(".sql")}
    assert shipped == {p.name for p in (REPO / "sql").glob("*.sql")}
    assert "featurestore/encoders/whisper_base_stats_pca.npz" in names    # whisper-stats' PCA
    # The command line lives in a package (no top-level module named cli), the demo's media
    # generation in its own package (the demo command needs it), not in the library.
    assert "cli.py" not in names and not any(n.startswith("cli/") for n in names)
    assert "reels_emotion/cli.py" in names and "reels_emotion/__main__.py" in names
    assert "reels_demo/corpus.py" in names and "featurestore/demo.py" not in names
    assert "reels_emotion/demo.py" in names and "fusion/demo.py" not in names
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "reels-emotion = reels_emotion.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    # The installed copy, not this checkout: its own directory first on the path, run elsewhere.
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "t1.txt").write_text("0\tsaya senang sekali\n1\tsaya senang sekali\n2\thari ini\n")
    (work / "t2.txt").write_text("0\tsaya marah\n1\tkenapa begitu\n")
    (work / "m.csv").write_text("id,video,emotion,transcript\na,,Senang,t1.txt\nb,,Marah,t2.txt\n")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "reels_emotion", *args], capture_output=True,
                              text=True, cwd=work, env=env, timeout=600)
    where = subprocess.run([sys.executable, "-c", "import featurestore.sqlfiles as s; print(s.SQL_DIR)"],
                           capture_output=True, text=True, cwd=work, env=env)
    assert where.stdout.strip() == str(target / "featurestore" / "sql"), where.stderr
    r = run("embed", "--store", "s", "--manifest", "m.csv", "--modalities", "text",
            "--text-encoder", "e5-small", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    r = run("sql", "--store", "s", "--format", "csv",
            "SELECT video_id, count(*) AS n, count(text) AS with_text FROM fusion_vectors GROUP BY 1 ORDER BY 1")
    assert r.returncode == 0 and r.stdout.splitlines() == ["video_id,n,with_text", "a,3,3", "b,2,2"], r.stderr
