"""The README's and docs/queries.md's queries run as written: every ```sql block, through
`cli.py sql` and through plain DuckDB opened the way docs/queries.md's ```python block that
ATTACHes the store opens it."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The user-facing pages whose queries must run: the README and its SQL tour.
PAGES = [REPO / "README.md", REPO / "docs" / "queries.md"]
BLOCKS = [b for page in PAGES for b in re.findall(r"```(\w*)\n(.*?)```", page.read_text(encoding="utf-8"), re.S)]
SQL = [body.strip().rstrip(";") for lang, body in BLOCKS if lang == "sql"]
CLASSES = ["Anger", "Fear", "Joy", "Neutral", "Proud", "Sadness", "Surprise", "Trust"]
WORDS = ["marah besar", "takut gelap", "senang sekali", "biasa saja", "sangat bangga",
         "sedih sekali", "kaget sekali", "percaya kamu"]


def cli(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A small text-only store at ``demo_out/store`` with a model and test predictions: every
    table and view the README queries, built in seconds (the demo itself takes minutes)."""
    root = tmp_path_factory.mktemp("readme")
    m = root / "m"
    m.mkdir()
    rows = ["id,video,emotion,transcript,split"]
    for i in range(40):
        label, word = CLASSES[i % 8], WORDS[i % 8]
        (m / f"t{i}.txt").write_text(f"0\tsaya {word} {i}\n1\t{word} hari ini\n2\t[NO_SPEECH]\n")
        rows.append(f"demo{i:03d},,{label},t{i}.txt,{'train' if i < 32 else 'test'}")
    (m / "m.csv").write_text("\n".join(rows) + "\n")
    store = root / "demo_out" / "store"
    for args in (["embed", "--manifest", str(m / "m.csv"), "--modalities", "text", "--quiet"],
                 ["tune-fusion", "--trials", "2", "--folds", "2", "--estimate", "off",
                  "--confirm-top", "0", "--families", "pooled-logreg", "--quiet"],
                 ["predict", "--split", "test"]):
        r = cli(*args, "--store", str(store), cwd=root)
        assert r.returncode == 0, r.stderr[-3000:]
    return root


@pytest.mark.slow
def test_readme_has_sql_blocks():
    assert len(SQL) >= 6
    readme = re.findall(r"```(\w*)\n", PAGES[0].read_text(encoding="utf-8"))
    assert readme.count("sql") >= 2


@pytest.mark.slow
@pytest.mark.parametrize("query", SQL, ids=[q.splitlines()[0][:60] for q in SQL])
def test_readme_sql_runs_through_the_cli(demo_dir, query):
    r = cli("sql", "--store", "demo_out/store", query, cwd=demo_dir)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.slow
def test_readme_sql_runs_through_plain_duckdb(demo_dir):
    opener = next(body for lang, body in BLOCKS if lang == "python" and "ATTACH" in body)
    ns: dict = {}
    cwd = os.getcwd()
    os.chdir(demo_dir)
    try:
        exec(compile(opener, "docs/queries.md", "exec"), ns)
        for query in SQL:
            ns["con"].sql(query).fetchall()
    finally:
        os.chdir(cwd)
