"""Fusion on real acted emotion: each modality alone, early fusion, specialists + stacking, late
fusion, and the ensemble, in actor-grouped CV on ``javanese-av`` / ``javanese-speech``.

Data: ``/work/shared/data/javanese-av`` (144 talking-face clips, actors 1-6) and
``javanese-speech`` (1008 speech clips, actors 1-6), 6 of our classes, ``group`` = actor.
The clips are embedded once into a store per corpus (``cli.py embed --modalities ...``), then
every configuration, on raw and on per-speaker normalised vectors (``fusion.groupnorm``), is
scored by 5-fold CV over the leakage groups (the actor merges each
actor's clips into one group, so every fold's validation actors are unseen), for several
fold seeds: the mean and spread over seeds of the project's one macro-F1 of the pooled
out-of-fold predictions. The ensemble runs a small study per fold seed
(``fusion.tune.tune_and_select``) and is scored by the nested estimate, as ``tune-fusion``
scores it.

    .venv/bin/python -m bench.javanese --corpus av                 # audio + video
    .venv/bin/python -m bench.javanese --corpus speech --seeds 3   # audio only
    .venv/bin/python -m bench.javanese --corpus av-text           # + the Whisper text

:func:`procedure_estimate` is the README's headline row for each corpus: ``tune-fusion`` as a
user runs it on the store (``--group-norm auto`` normalises per actor here), scored by its
nested estimate (``python -m bench --row javanese-speech`` / ``--row javanese-av``). The
configuration table above is a comparison on one CV: its best row was picked after seeing
them all, so it is not a figure to expect.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
#: corpus -> (data set, modalities). ``av-text`` adds the Whisper text, which carries no label
#: here (every emotion speaks the same sentences): the fusion must give it no weight.
CORPORA = {"av": ("javanese-av", "audio,video"), "av-text": ("javanese-av", "audio,video,text"),
           "speech": ("javanese-speech", "audio")}


def subset_manifest(corpus: str, work: Path, per_actor: int) -> Path:
    """A manifest of the first ``per_actor`` clips of each actor (absolute video paths)."""
    import csv
    name, _ = CORPORA[corpus]
    src = SHARED / name / "labels.csv"
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    seen: dict[str, int] = {}
    keep = []
    for r in rows:
        if seen.get(r["group"], 0) < per_actor:
            seen[r["group"]] = seen.get(r["group"], 0) + 1
            keep.append({**r, "video": str((src.parent / r["video"]).resolve())})
    out = work / f"{name}-{per_actor}-per-actor.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    return out


def embed(corpus: str, work: Path, audio_encoder: str | None = None, video_encoder: str | None = None,
          manifest: Path | None = None) -> Path:
    name, modalities = CORPORA[corpus]
    tag = "".join(f"-{e}" for e in (audio_encoder, video_encoder) if e)
    tag += f"-{manifest.stem}" if manifest is not None else ""
    store = work / f"{name}-{modalities.replace(',', '-')}{tag}-store"
    cmd = [sys.executable, str(ROOT / "cli.py"), "embed", "--store", str(store), "--manifest",
           str(manifest or SHARED / name / "labels.csv"), "--modalities", modalities, "--quiet"]
    if audio_encoder:
        cmd += ["--audio-encoder", audio_encoder]
    if video_encoder:
        cmd += ["--video-encoder", video_encoder]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        raise RuntimeError(proc.stderr[-3000:])
    print(f"embed {name} ({modalities}): {time.perf_counter() - t0:.0f} s", flush=True)
    return store


def only(data, modalities: tuple[str, ...]):
    """The same windows with only ``modalities``' columns."""
    from fusion.data import WindowData
    cols, slices, start = [], {}, 0
    for m in modalities:
        s = data.slices[m]
        cols.append(np.arange(s.start, s.stop))
        slices[m] = slice(start, start + s.stop - s.start)
        start += s.stop - s.start
    return WindowData(X=data.X[:, np.concatenate(cols)], video_id=data.video_id, window_idx=data.window_idx,
                      video_code=data.video_code, slices=slices, videos=data.videos)


def whisper_pca(data):
    """The same windows with the 1024 whisper statistics replaced by the shipped PCA's 128
    (``featurestore.encoders.audio.apply_pca``: the numbers ``whisper-stats`` would store)."""
    from dataclasses import replace
    from featurestore.encoders.audio import apply_pca, load_whisper_pca
    a = data.slices["audio"]
    if a.stop - a.start != 1024:
        raise SystemExit(f"--whisper-pca needs the 1024-D whisper-stats-1024 audio; have {a.stop - a.start}-D")
    reduced = apply_pca(data.X[:, a], load_whisper_pca())
    X = np.concatenate([data.X[:, :a.start], reduced, data.X[:, a.stop:]], axis=1)
    shift = reduced.shape[1] - (a.stop - a.start)
    slices = {m: (s if s.stop <= a.start else slice(a.start, a.start + reduced.shape[1]) if m == "audio"
                  else slice(s.start + shift, s.stop + shift)) for m, s in data.slices.items()}
    return replace(data, X=X, slices=slices)


def configs(modalities: tuple[str, ...]) -> dict[str, tuple[tuple[str, ...], object]]:
    from fusion.space import Config
    logreg = lambda: Config("pooled-logreg", "mean", {"class_weight": "balanced", "C": 0.05}, pool_stats="mean")  # noqa: E731
    out = {f"{m} alone (pooled logreg)": ((m,), logreg()) for m in modalities}
    if len(modalities) > 1:
        out["early fusion (pooled logreg over the concatenation)"] = (modalities, logreg())
        out["early fusion (window LightGBM, default trial)"] = (modalities, Config(
            "lightgbm", "mean", {"class_weight": "balanced", "num_leaves": 15, "learning_rate": 0.1,
                                 "feature_fraction": 0.2, "bagging_fraction": 0.8, "min_child_samples": 40,
                                 "lambda_l1": 0.01, "lambda_l2": 1.0}, max_windows=16))
        for fusion in ("stack", "late"):
            params = {"class_weight": "balanced", "fusion": fusion, "specialist_C": 0.05}
            if fusion == "stack":
                params["fusion_C"] = 1.0
            out[f"specialists + {fusion} fusion"] = (modalities, Config("stacked", "mean", params, pool_stats="mean"))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="av")
    ap.add_argument("--seeds", type=int, default=5, help="fold seeds 0..n-1")
    ap.add_argument("--ensemble-trials", type=int, default=12, help="0 skips the ensemble study")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-javanese"))
    ap.add_argument("--audio-encoder", help="audio encoder name (default: the store's default)")
    ap.add_argument("--video-encoder", help="face encoder name (default: the store's default)")
    ap.add_argument("--whisper-pca", action="store_true",
                    help="with --audio-encoder whisper-stats-1024: score the shipped PCA (what "
                         "`whisper-stats` stores) on the same embedding instead of embedding twice")
    args = ap.parse_args(argv)
    from featurestore.store import FeatureStore
    from fusion.data import load_store_window_data
    from fusion.cv import cross_validate, prepare
    from fusion.lineage import open_source

    args.work.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(embed(args.corpus, args.work, args.audio_encoder, args.video_encoder), create=False)
    st, con, _, snapshot, served = open_source(store)
    data = load_store_window_data(st, served, snapshot=snapshot)
    if args.whisper_pca:
        data = whisper_pca(data)
    modalities = tuple(data.slices)
    print(f"{data.n_videos} clips, {len(data.X)} windows, dims {data.dims}", flush=True)
    from fusion.groupnorm import normalise, stats_for
    # Every clip is labelled and has its actor as group: the statistics are over all its windows.
    normed = normalise(data, stats_for(data, data.dims))
    rows = []
    for (name, (mods, config)), norm in [(c, n) for c in configs(modalities).items() for n in (False, True)]:
        scores, weights, t0 = [], [], time.perf_counter()
        name = f"{name}{', per-speaker normalised' if norm else ''}"
        for seed in range(args.seeds):
            td = prepare(con, 5, seed, only(normed if norm else data, mods))
            td.group_norm = norm
            res = cross_validate(td, config, seed)
            scores.append(res.method_scores[config.method])
            if config.family == "stacked":
                from fusion.cv import fit_final
                weights.append(fit_final(td, config, seed).modality_weights_)
        row = {"configuration": name, "macro_f1_mean": float(np.mean(scores)),
               "macro_f1_sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
               "scores": scores, "seconds_per_seed": (time.perf_counter() - t0) / args.seeds}
        if weights:
            row["modality_weights"] = {m: float(np.mean([w[m] for w in weights])) for m in weights[0]}
        rows.append(row)
        print(f"{name:80s} {row['macro_f1_mean']:.3f} ± {row['macro_f1_sd']:.3f} (sd over {args.seeds} fold seeds)"
              + (f"  weights {row['modality_weights']}" if weights else ""), flush=True)
    if args.ensemble_trials:
        from fusion.estimate import nested_estimate
        from fusion.cv import fit_videos, predict_videos
        from fusion.selection import choose_variant, decision_offsets, fit_ensemble_members, predict_ensemble
        from fusion.tune import tune_and_select
        td = prepare(con, 5, 0, normed)   # tune-fusion's default here: --group-norm auto is on
        td.group_norm = True
        t0 = time.perf_counter()
        est = nested_estimate(td, lambda sub, nm: tune_and_select(sub, tuple(_families(modalities)),
                                                                   args.ensemble_trials, 0, 5, 2, nm),
                              fit_videos, predict_videos, decision_offsets,
                              lambda sub, sel: choose_variant(sub, sel, "auto", "auto", 0), seed=0,
                              ensemble=(fit_ensemble_members, predict_ensemble))
        row = {"configuration": f"tune-fusion's procedure ({args.ensemble_trials}-trial studies, per-speaker "
                                 "normalised), nested",
               "procedure": est.macro_f1, "procedure_interval": est.interval,
               "chosen_variants": est.chosen_variants, "fold_scores": est.fold_scores(),
               **{v: s for v, (s, _) in est.variant_scores.items()},
               **{f"{v}_interval": i for v, (_, i) in est.variant_scores.items()},
               "choices": est.choices, "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"nested estimate of the procedure (fold seed 0, variant chosen in each fold): "
              f"{est.macro_f1:.3f} {est.interval}; forced for comparison: single {row['single']:.3f}, "
              f"rule {row['rule']:.3f}, ensemble {row['ensemble']:.3f} ({row['seconds']:.0f} s); "
              f"chosen: {[(c['family'], c['variant']) for c in est.choices]}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "".join(f"_{e}" for e in (args.audio_encoder, args.video_encoder) if e)
    suffix += "_pca" if args.whisper_pca else ""
    (OUT / f"javanese_{args.corpus}{suffix}.json").write_text(json.dumps(rows, indent=2, default=float))


def procedure_estimate(corpus: str, trials: int = 12, work: Path = Path("/tmp/bench-javanese"),
                       quick: bool = False):
    """``tune-fusion`` on ``corpus``'s store with its defaults (``--group-norm auto``: per actor)
    and ``trials``-trial outer and inner studies over every family but the window MLP; its
    :class:`fusion.result.TuneResult` (``.estimate``: the nested estimate, variant choice
    included). ``quick``: 4 clips per actor, 2 pooled-logreg trials."""
    from fusion.tune import tune_fusion
    work.mkdir(parents=True, exist_ok=True)
    manifest = subset_manifest(corpus, work, 4) if quick else None
    store = embed(corpus, work, manifest=manifest)
    families = ("pooled-logreg",) if quick else tuple(_families(()))
    n = 2 if quick else trials
    res = tune_fusion(store, n_trials=n, estimate_trials=n, families=families, seed=0, show_progress=False,
                      study_name=f"bench-{corpus}-{n}-{uuid4().hex[:6]}",
                      **(dict(confirm_top=0) if quick else {}))
    print(res.summary(), flush=True)
    return res


def _families(modalities: tuple[str, ...]) -> list[str]:
    from fusion.modelio import FAMILIES
    return [f for f in FAMILIES if f != "mlp"]  # the window MLP: minutes per trial on 2 cores


if __name__ == "__main__":
    main()
