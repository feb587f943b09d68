"""The README's headline figures: which benchmark prints each row, and the table they make.

Each :class:`Headline` names its data, its split, the choices made on those data before (so
which rows are in sample for them), the command that prints it, its tier and how long that
takes at full size on this project's 2-core CPU machine. ``python -m bench`` measures the
rows of the tiers asked for, prints them as one table, and with ``--write-readme`` stores them
in :data:`RESULTS` (each with the commit it was measured on) and rewrites the README's table
between :data:`START` and :data:`END` from that file, so every row in the README is one that
a command printed, at the commit the row names.

Tiers (full size, 2 cores; measured): ``core`` about 45 min (``make bench``), ``javanese``
about 80 min (embedding the two acted corpora dominates), ``heldout`` about 75 min (16
fresh held-out splits); ``make bench-all`` runs the three.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: The measured rows, by id, each with its commit: what the README's table is rendered from.
RESULTS = ROOT / "docs" / "headline.json"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
TIERS = ("core", "javanese", "heldout")
#: Files a run rewrites itself: their changes do not make the measured tree "dirty".
OWN_OUTPUTS = ("README.md", "docs/headline.json")


@dataclass(frozen=True)
class Headline:
    """One row of the README's table. ``measure(quick)`` returns ``{"figure", "spread"}``
    (markdown text, the figures as the code computed them)."""

    id: str
    tier: str
    minutes: int          # full size on 2 cores, as measured (the ``core`` tier's rows add up)
    data: str
    split: str
    chosen: str           # what was chosen on these data before this row was measured
    measure: Callable[[bool], dict]

    @property
    def command(self) -> str:
        return f"python -m bench --row {self.id}"


def _interval(lo: float, hi: float) -> str:
    return f"{lo:.3f}–{hi:.3f}"


def _load() -> str:
    """The machine's 1-minute load average against its cores: timings under other jobs say so."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end"


# ------------------------------------------------------------------ the rows' measurements
def _transcripts_nested(quick: bool) -> dict:
    from bench.tune_transcripts import nested_on_transcripts
    res, surprise = nested_on_transcripts(quick)
    est = res.estimate
    folds = est.fold_scores()
    chosen = ", ".join(f"{v} ×{n}" for v, n in est.chosen_variants.items())
    return {"figure": f"`tune-fusion` ({res.n_trials} trials, defaults), nested estimate of the whole procedure: "
                      f"macro-F1 **{est.macro_f1:.3f}**; always-Surprise {surprise:.3f}; variant per "
                      f"outer fold: {chosen}; deployed {res.variant}",
            "spread": f"95 % group-bootstrap interval {_interval(*est.interval)}; the {len(folds)} outer "
                      f"folds alone {min(folds):.3f}–{max(folds):.3f}"}


def _heldout_transcripts(quick: bool) -> dict:
    from bench.heldout_transcripts import FIRST_SEED, HEADLINE_SPLITS, run_splits
    n = 1 if quick else HEADLINE_SPLITS
    res = run_splits(FIRST_SEED, n, trials=4 if quick else 30, every=4 if quick else 1,
                     families="pooled-logreg" if quick else None,
                     work=Path("/tmp/bench-heldout-quick" if quick else "/tmp/bench-heldout"))

    def mean_se(key: str) -> tuple[float, float]:
        v = np.array([r[key] for r in res], float)
        return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    held, held_se = mean_se("heldout")
    est, est_se = mean_se("estimate")
    inside = sum(bool(r["in_set_range"]) for r in res)
    return {"figure": f"submission macro-F1 on the held-out quarter **{held:.3f}**; nested estimate "
                      f"{est:.3f}; held-out inside the range `export-submission` prints on {inside}/{len(res)}",
            "spread": (f"± {held_se:.3f} and ± {est_se:.3f} (SE over {len(res)} splits)" if len(res) > 1
                       else "one split: no spread over splits")}


def _spoken(quick: bool) -> dict:
    from bench.spoken_transcripts import run
    rows = run(quick=quick, trials=30, units=("segment",))
    r = rows[0]
    return {"figure": f"held-out submission macro-F1 **{r['value']:.3f}** from Whisper's text of the "
                      f"re-spoken reels; always-Surprise {r['baseline']:.3f}",
            "spread": f"95 % bootstrap interval over the {r['n_heldout']} held-out reels "
                      f"{_interval(*r['interval'])}"}


def _javanese(corpus: str) -> Callable[[bool], dict]:
    def measure(quick: bool) -> dict:
        from bench.javanese import procedure_estimate
        res = procedure_estimate(corpus, trials=12, quick=quick)
        est = res.estimate
        folds = est.fold_scores()
        return {"figure": f"`tune-fusion` ({est.inner_trials}-trial studies, no window MLP, per-actor "
                          f"{'normalised' if res.model is not None and res.model.group_norm else 'raw'}), nested "
                          f"estimate of the whole procedure: macro-F1 **{est.macro_f1:.3f}** (chance 0.17); "
                          f"deployed {res.family} + {res.method} ({res.variant})",
                "spread": f"95 % bootstrap interval over {est.n_groups} actors {_interval(*est.interval)}; "
                          f"the {len(folds)} outer folds alone {min(folds):.3f}–{max(folds):.3f}"}
    return measure


def _embed_speed(quick: bool) -> dict:
    from bench.embed_speed import collect
    runs = ([collect(True)[0]] if quick else
            [collect(False, reels=2, short_clips=12, transcripts=60)[0] for _ in range(2)])

    def span(kind: str, key: str) -> tuple[float, float, float]:
        v = [r[kind][key] for r in runs]
        return float(np.median(v)), min(v), max(v)

    parts, spread = [], []
    for kind, what in (("reel", "reel-length clips"), ("short", "short clips")):
        if kind not in runs[0]:
            continue
        f = runs[0][kind]
        w, c = span(kind, "warm_s_per_min"), span(kind, "cold_s_per_min")
        ratio = span(kind, "cold_ratio")
        overlap = (f"; the stages' overlap {span(kind, 'overlap_ratio')[0]:.2f}× faster than every stage in "
                   f"turn" if "overlap_ratio" in f else "")
        parts.append(f"{f['clips']} {what} ({f['media_s']:.0f} s): warm **{w[0]:.2f}**, cold (`cli.py embed`) "
                     f"**{c[0]:.2f} s per min of video**, {ratio[0]:.2f}× the previous defaults' cold time"
                     f"{overlap}")
        spread.append(f"{kind} cold {c[1]:.2f}–{c[2]:.2f}")
    if "text_import" in runs[0]:
        t = [r["text_import"]["cold_texts_per_s"] for r in runs]
        parts.append(f"text import (`--modalities text`, {runs[0]['text_import']['distinct_texts']} distinct "
                     f"window texts): **{np.median(t):.0f} texts per s** cold")
        spread.append(f"text {min(t):.0f}–{max(t):.0f}")
    return {"figure": "; ".join(parts) + f" (median of {len(runs)} runs)",
            "spread": f"{len(runs)} runs: " + ", ".join(spread) + f"; {_load()}"}


def _store_load(quick: bool) -> dict:
    from bench.store_load import measure
    n = 6_000 if quick else 100_000
    r = measure(n, repeat=1 if quick else 3)
    times = r["store_all_s"]
    return {"figure": f"full-matrix load of {r['n']:,} windows × 899 float32 through `tune-fusion`'s path: "
                      f"**{r['store_s']:.2f} s** (fastest of {len(times)}), {r['npy_s'] / r['store_s']:.1f}× "
                      f"faster than one `.npy` per window, same run",
            "spread": (f"{len(times)} loads {min(times):.2f}–{max(times):.2f} s" if len(times) > 1
                       else "one load") + f"; {_load()}"}


DEFAULTS_ON_TRANSCRIPTS = ("in sample for the defaults: the text encoder (`e5-small`) and the model "
                           "defaults were chosen by grouped CV on all 498 transcripts")
HEADLINES: tuple[Headline, ...] = (
    Headline("transcripts-nested", "core", 15, "498 public transcripts, text",
             "nested grouped 5-fold CV (outer folds by duplicate groups)",
             DEFAULTS_ON_TRANSCRIPTS + "; everything `tune-fusion` chooses is chosen inside the folds",
             _transcripts_nested),
    Headline("spoken-transcripts", "core", 20,
             "100 held-out transcripts re-spoken by espeak-ng, through Whisper base",
             "80/20 grouped split, seed 0, trained on the other 398 transcripts",
             DEFAULTS_ON_TRANSCRIPTS + " (these 100 among them); split seed 0 also chose C, the "
             "neighbour vote and the selection rule (`docs/benchmarks.md` section 3)", _spoken),
    Headline("embed-speed", "core", 14, "two 75 s talking-face reels (espeak-ng speech, a real face), "
             "12 `javanese-av` clips, 60 reels-transcripts", "–", "none (a timing; other jobs share the 2 cores)", _embed_speed),
    Headline("store-load", "core", 4, "synthetic windows × 899 float32 in a DuckLake store", "–",
             "none (a timing)", _store_load),
    Headline("javanese-speech", "javanese", 55, "`javanese-speech`, 1008 acted clips, audio",
             "nested 5-fold CV over 6 actors",
             "in sample for the default audio encoder (`descriptors-whisper`), chosen on both Javanese "
             "sets; everything `tune-fusion` chooses is chosen inside the folds", _javanese("speech")),
    Headline("javanese-av", "javanese", 25, "`javanese-av`, 144 acted talking-face clips, audio + face",
             "nested 5-fold CV over 6 actors",
             "in sample for the default audio encoder (chosen on both Javanese sets) and the face "
             "encoder (kept on this set); everything `tune-fusion` chooses is chosen inside the folds",
             _javanese("av")),
    Headline("heldout-transcripts", "heldout", 75, "498 public transcripts, text",
             "16 fresh grouped held-out quarters (split seeds 200–215, used for no choice)",
             DEFAULTS_ON_TRANSCRIPTS + ", held-out quarters included", _heldout_transcripts),
)
BY_ID = {h.id: h for h in HEADLINES}


# ------------------------------------------------------------------ commit, results, table
def commit() -> str:
    """The short commit measured, ``+dirty`` when tracked files other than the run's own outputs
    differ from it; ``unknown`` outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = [ln for ln in status if ln[3:].strip() not in OWN_OUTPUTS]
    return head + ("+dirty" if dirty else "")


def measure(h: Headline, quick: bool) -> dict:
    """Run one row; the row as stored (its figure and spread, commit, time, tier, command)."""
    measured_on = commit()   # before the run: the code it runs is the code of this commit
    t0 = time.perf_counter()
    got = h.measure(quick)
    return {"id": h.id, "tier": h.tier, "data": h.data, "split": h.split, "figure": got["figure"],
            "spread": got["spread"], "chosen": h.chosen, "command": h.command + (" --quick" if quick else ""),
            "commit": measured_on, "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "seconds": round(time.perf_counter() - t0), "quick": quick}


def load_results(path: Path = RESULTS) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(rows: list[dict], path: Path = RESULTS) -> dict[str, dict]:
    """Merge ``rows`` (by id) into the results file; rows of headlines that no longer exist go."""
    if any(r["quick"] for r in rows) and path == RESULTS:
        raise ValueError("quick (smoke) figures are not stored in docs/headline.json")
    merged = {**load_results(path), **{r["id"]: r for r in rows}}
    merged = {k: merged[k] for k in BY_ID if k in merged}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1, ensure_ascii=False) + "\n")
    return merged


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(results: dict[str, dict]) -> str:
    """The markdown table of ``results``, in :data:`HEADLINES` order."""
    out = ["| data | split | figure | spread | chosen on these data before | measured on | command (tier, full-size time on 2 cores) |",
           "|---|---|---|---|---|---|---|"]
    for h in HEADLINES:
        r = results.get(h.id)
        if r is None:
            continue
        quick = " **quick smoke run, not a figure to quote**" if r.get("quick") else ""
        out.append(f"| {_cell(r['data'])} | {_cell(r['split'])} | {_cell(r['figure'])}{quick} | "
                   f"{_cell(r['spread'])} | {_cell(r['chosen'])} | `{r['commit']}` ({r['measured_at']}) | "
                   f"`{r['command']}` ({h.tier}, ~{h.minutes} min) |")
    return "\n".join(out)


def write_readme(results: dict[str, dict], readme: Path = README) -> None:
    """Replace the README's table between :data:`START` and :data:`END` by :func:`render`."""
    text = readme.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{readme} needs one {START} line before one {END} line around the table")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    readme.write_text(f"{head}{START}\n{render(results)}\n{END}{tail}", encoding="utf-8")


def readme_table(readme: Path = README) -> str:
    """The table between the README's markers, as written."""
    text = readme.read_text(encoding="utf-8")
    return text.split(START)[1].split(END)[0].strip()
