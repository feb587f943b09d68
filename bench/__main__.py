"""The README's headline figures, and every benchmark in ``bench/``.

    .venv/bin/python -m bench [--tier core|javanese|heldout|all] [--row ID] [--quick] [--write-readme]
    .venv/bin/python -m bench --only NAME[,NAME] [--quick] [--json FILE] | --list | --rows

Without ``--only``: the headline rows of ``bench._headline`` (the tiers asked for, default
``core``; ``--row ID`` one row), printed as the README's table; ``--write-readme`` stores
them in ``docs/headline.json`` with their commit and rewrites the README's table from it.
``--quick`` smoke-tests every row asked for at small sizes (its figures are labelled so and
never written to the README or the results file unless ``--readme``/``--results`` name
other files).

With ``--only``, the module protocol: a benchmark is a module ``bench/<name>.py`` exposing

Protocol: a benchmark is a module ``bench/<name>.py`` exposing

    run(quick: bool) -> list[dict]

each dict one figure with the keys ``figure`` (what was measured), ``value``,
``unit``, ``baseline`` (the comparison's value in the same unit, or None),
``ratio`` (how many times better than the baseline, or None) and ``command``
(the exact command that reproduces it). ``quick=True`` is a smoke run: small
inputs, seconds not minutes; its figures are not the ones to quote. A module
may print details (tables, profiles) to stdout/stderr while it runs. A module
with only ``main(argv)`` (or ``main()``) is run with no arguments, contributes no
figures, and is skipped by ``--quick``. Modules named ``_*`` are not benchmarks.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import pkgutil
import sys
import time
import traceback
from pathlib import Path

KEYS = ("figure", "value", "unit", "baseline", "ratio", "command")


def discover() -> list[str]:
    """Names of the benchmark modules in this package (sorted)."""
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)])
                  if not m.name.startswith("_") and not m.ispkg)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def table(rows: list[dict]) -> str:
    """Markdown table of figure rows (with their ``bench`` name)."""
    out = ["| bench | figure | value | unit | baseline | ratio | command |",
           "|---|---|---:|---|---:|---:|---|"]
    for r in rows:
        ratio = f"{_fmt(r.get('ratio'))}x" if r.get("ratio") is not None else ""
        cmd = f"`{r['command']}`" if r.get("command") else ""
        out.append(f"| {r['bench']} | {_fmt(r.get('figure'))} | {_fmt(r.get('value'))} | "
                   f"{_fmt(r.get('unit'))} | {_fmt(r.get('baseline'))} | {ratio} | {cmd} |")
    return "\n".join(out)


def _call_main(main) -> None:
    """A main-only module's ``main(argv)`` (or ``main()``) with no arguments."""
    takes_argv = bool(inspect.signature(main).parameters)
    rc = main([]) if takes_argv else main()
    if isinstance(rc, int) and rc != 0:
        raise RuntimeError(f"main() returned {rc}")


def run_one(name: str, quick: bool) -> tuple[list[dict], str | None]:
    """(figure rows, error text or None) of one benchmark module.

    In a quick run, a module without ``run(quick)`` is skipped: it has no smoke size.
    """
    try:
        mod = importlib.import_module(f"bench.{name}")
        if callable(getattr(mod, "run", None)):
            rows = mod.run(quick=quick) or []
        elif callable(getattr(mod, "main", None)):
            if quick:
                print(f"skip bench.{name} in --quick: it has main() but no run(quick)", flush=True)
                return [], None
            _call_main(mod.main)
            rows = []
        else:
            return [], None
        bad = [r for r in rows if not isinstance(r, dict) or not {"figure", "value"} <= set(r)]
        if bad:
            raise TypeError(f"run() must return dicts with keys {KEYS}; got {bad[0]!r}")
        return [{**{k: r.get(k) for k in KEYS}, "bench": name} for r in rows], None
    except Exception:  # one failing benchmark must not hide the others' figures
        return [], traceback.format_exc()


def headline_main(a, p) -> int:
    """Measure the headline rows asked for, print their table; store and write with --write-readme."""
    from bench import _headline as hl
    if a.row:
        unknown = [r for r in a.row if r not in hl.BY_ID]
        if unknown:
            p.error(f"no headline row {', '.join(unknown)}; available: {', '.join(hl.BY_ID)}")
        chosen = [hl.BY_ID[r] for r in a.row]
    else:
        tiers = hl.TIERS if a.tier == "all" else tuple(a.tier.split(","))
        bad = [t for t in tiers if t not in hl.TIERS]
        if bad:
            p.error(f"no tier {', '.join(bad)}; choose from {', '.join(hl.TIERS)} or all")
        chosen = [h for h in hl.HEADLINES if h.tier in tiers]
    if a.write_readme and a.quick and (a.readme is None or a.results is None):
        p.error("--quick --write-readme needs --readme and --results naming other files: "
                "smoke figures never go into the repository's README")
    rows, failed = [], {}
    for h in chosen:
        print(f"\n== {h.id} ({h.tier} tier, ~{h.minutes} min at full size){' (quick)' if a.quick else ''}", flush=True)
        t = time.perf_counter()
        try:
            rows.append(hl.measure(h, a.quick))
        except Exception:  # one failing row must not hide the others
            failed[h.id] = traceback.format_exc()
            print(failed[h.id], file=sys.stderr)
        else:
            if a.write_readme:  # after each row, so a long run interrupted keeps what it measured
                hl.write_readme(hl.save_results(rows[-1:], a.results or hl.RESULTS), a.readme or hl.README)
                print(f"wrote {h.id} into {a.results or hl.RESULTS} and the table of {a.readme or hl.README}")
        print(f"== {h.id}: {time.perf_counter() - t:.0f} s", flush=True)
    print("\n" + hl.render({r["id"]: r for r in rows}))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"quick": a.quick, "rows": rows, "failed": failed}, indent=1))
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (tracebacks above)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: small inputs, fast")
    p.add_argument("--tier", default="core", help="headline tiers, comma-separated: core, javanese, "
                   "heldout, or all (default core: what `make bench` runs)")
    p.add_argument("--row", action="append", help="one headline row by id (repeatable); see --rows")
    p.add_argument("--rows", action="store_true", help="list the headline rows and exit")
    p.add_argument("--write-readme", action="store_true",
                   help="store the measured rows in docs/headline.json and rewrite the README's table")
    p.add_argument("--readme", type=Path, help="README to rewrite (default the repository's)")
    p.add_argument("--results", type=Path, help="results file (default docs/headline.json)")
    p.add_argument("--only", default="", help="module protocol: comma-separated module names, or 'all'")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here as JSON")
    p.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    a = p.parse_args(argv)

    names = discover()
    if a.list:
        print("\n".join(names))
        return 0
    if a.rows:
        from bench._headline import HEADLINES
        for h in HEADLINES:
            print(f"{h.id:22s} {h.tier:9s} ~{h.minutes:3d} min  {h.data}")
        return 0
    if not a.only:
        return headline_main(a, p)
    if a.only != "all":
        wanted = [n.strip() for n in a.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            p.error(f"no benchmark {', '.join(unknown)}; available: {', '.join(names)}")
        names = wanted

    rows, failed = [], {}
    for name in names:
        print(f"\n== bench.{name}{' (quick)' if a.quick else ''}", flush=True)
        t = time.perf_counter()
        got, err = run_one(name, a.quick)
        print(f"== bench.{name}: {len(got)} figure(s) in {time.perf_counter() - t:.1f} s", flush=True)
        if err:
            failed[name] = err
            print(err, file=sys.stderr)
        rows += got

    print("\n" + table(rows))
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (tracebacks above)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"quick": a.quick, "figures": rows, "failed": failed}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
