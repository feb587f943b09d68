"""The README's headline table is what ``python -m bench --write-readme`` renders from
``docs/headline.json``: every row with its commit, its spread and what was chosen on its data."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from bench import _headline as hl
from bench.__main__ import main


def test_the_readme_table_is_the_rendered_results_file():
    results = hl.load_results()
    assert hl.readme_table() == hl.render(results).strip()
    for key, row in results.items():
        assert key in hl.BY_ID and row["id"] == key and not row["quick"]
        assert re.fullmatch(r"[0-9a-f]{7,40}(\+dirty)?", row["commit"]), row
        assert row["spread"] and row["chosen"] and row["command"].startswith("python -m bench --row ")


def test_every_row_names_its_tier_time_and_choices_and_the_full_run_fits_the_tiers():
    assert {h.tier for h in hl.HEADLINES} == set(hl.TIERS)
    assert len(hl.BY_ID) == len(hl.HEADLINES)
    for tier in hl.TIERS:       # each tier fits one 90-minute CI-sized run on 2 cores
        assert sum(h.minutes for h in hl.HEADLINES if h.tier == tier) <= 90, tier
    assert all(h.chosen and h.data and h.split for h in hl.HEADLINES)


def test_stale_figures_no_command_prints_are_gone_from_the_readme():
    text = hl.README.read_text(encoding="utf-8")
    for stale in ("0.129–0.337", "2.99 s per minute", "0.726 ± 0.020", "seeds 100–119) |", "such videos: mean"):
        assert stale not in text, stale


@pytest.mark.slow
def test_a_quick_row_runs_through_the_command_and_rewrites_only_the_named_readme(tmp_path, capsys):
    readme = tmp_path / "README.md"
    shutil.copy(hl.README, readme)
    results = tmp_path / "headline.json"
    if hl.RESULTS.exists():         # the rows measured so far, which a new row must keep
        shutil.copy(hl.RESULTS, results)
    with pytest.raises(SystemExit):     # smoke figures never go into the repository's README
        main(["--row", "store-load", "--quick", "--write-readme"])
    before = hl.README.read_text(encoding="utf-8")
    assert main(["--row", "store-load", "--quick", "--write-readme", "--readme", str(readme),
                 "--results", str(results)]) == 0
    assert hl.README.read_text(encoding="utf-8") == before
    row = json.loads(results.read_text())["store-load"]
    assert row["quick"] and row["commit"] == hl.commit() and "6,000 windows" in row["figure"]
    table = hl.readme_table(readme)
    assert "store-load --quick" in table and "not a figure to quote" in table and row["commit"] in table
    assert "| data | split | figure | spread |" in capsys.readouterr().out
    # the other rows of the README's table are kept, each with its own commit
    kept = json.loads(results.read_text())
    assert all(kept[k] == v for k, v in hl.load_results().items() if k != "store-load")
