# The two commands of the README's Quick start. Each sets up what it needs.
.PHONY: demo test bench bench-all setup

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python -m reels_emotion demo

# pytest exits 5 when it collected no tests: that must not pass.
test: setup
	.venv/bin/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The README's headline table: `core` tier (~45 min on 2 cores); bench-all adds the
# `javanese` and `heldout` tiers (~80 and ~75 min). Each rewrites the rows it measured.
bench: setup
	.venv/bin/python -m bench --write-readme

bench-all: setup
	.venv/bin/python -m bench --tier all --write-readme
