"""Every README section and ``docs/benchmarks.md`` section that the code (or the benchmarks
notes) names exists, so a message that sends a user there does not send them nowhere."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CODE_DIRS = ("featurestore", "fusion", "reels_emotion", "reels_demo", "bench", "scripts")
#: "README, *Section*", "README's *Section*", "(README: *Section*)"
README_REF = re.compile(r"README(?:\.md)?`*(?:'s)?[,:]?\s+\*([^*\n]+)\*")
#: "docs/benchmarks.md, section 4", "``docs/benchmarks.md`` section 4"
BENCH_REF = re.compile(r"docs/benchmarks\.md`*,?\s+section\s+(\d+)")
BENCH_NAMED = re.compile(r"docs/benchmarks\.md`*,?\s+\*([^*\n]+)\*")


def _sources() -> list[Path]:
    files = [REPO / "cli.py", REPO / "Makefile", REPO / "README.md", REPO / "docs" / "benchmarks.md"]
    for d in CODE_DIRS:
        files += sorted((REPO / d).rglob("*.py"))
    return [f for f in files if f.exists()]


def _headings(text: str) -> set[str]:
    """Markdown headings and bold paragraph leads ("**Which data chose what.**")."""
    heads = {m.group(1).strip() for m in re.finditer(r"^#+\s+(.+?)\s*$", text, re.M)}
    heads |= {m.group(1).strip().rstrip(".") for m in re.finditer(r"\*\*([^*\n]+?)\*\*", text)}
    return heads


def test_every_section_the_code_names_exists():
    readme = _headings((REPO / "README.md").read_text(encoding="utf-8"))
    bench_text = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    bench = _headings(bench_text)
    numbered = {m.group(1) for m in re.finditer(r"^##\s+(\d+)\.", bench_text, re.M)}
    seen, missing = 0, []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(REPO)
        for m in README_REF.finditer(text):
            seen += 1
            name = " ".join(m.group(1).split())
            if name not in readme:
                missing.append(f"{where}: README section {name!r}")
        for m in BENCH_REF.finditer(text):
            seen += 1
            if m.group(1) not in numbered:
                missing.append(f"{where}: docs/benchmarks.md section {m.group(1)}")
        for m in BENCH_NAMED.finditer(text):
            seen += 1
            name = " ".join(m.group(1).split())
            if name not in bench:
                missing.append(f"{where}: docs/benchmarks.md section {name!r}")
    assert seen >= 5, "the patterns found (almost) no reference: are they still the project's style?"
    assert not missing, "\n".join(missing)


def test_no_code_cites_a_readme_section_by_a_name_it_does_not_have():
    # The form the old messages used: "(README, Measured figures)", a section that never existed.
    bad = [f"{p.relative_to(REPO)}" for p in _sources()
           if re.search(r"README,\s+Measured figures", p.read_text(encoding="utf-8"))]
    assert not bad


def test_the_readme_is_a_guide_that_links_each_docs_page_once():
    """The README stays a guide (at most 300 lines); the SQL tour, the scoring details, the
    development notes and the lab notes live in docs/, each page linked from it once."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    for page in sorted((REPO / "docs").glob("*.md")):
        links = re.findall(r"\]\((docs/" + re.escape(page.name) + r")(?:#[^)]*)?\)", readme)
        assert len(links) == 1, f"README links docs/{page.name} {len(links)} times; link it once"
