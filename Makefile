# The two commands of the README's Quick start. Each sets up what it needs.
.PHONY: demo test bench setup

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python -m reels_emotion demo

# pytest exits 5 when it collected no tests: that must not pass.
test: setup
	.venv/bin/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: setup
	.venv/bin/python -m bench
