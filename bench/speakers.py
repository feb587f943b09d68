"""Speaker groups inferred from the voice, on the Java-SED sets with the actors hidden.

Data: ``/work/shared/data/javanese-speech`` (1008 clips) and ``javanese-av`` (144 clips),
actors 1-6, ``group`` = actor. Each corpus is embedded once (``cli.py embed``, audio by
``librosa-descriptors``, plus the speaker stage: Resemblyzer d-vectors); the voice vectors
and window vectors are then read from the store. What is measured:

1. **Clustering quality** (featurestore.speakers: AgglomerativeClustering, cosine, average
   linkage), the actors used only to score: adjusted Rand index, purity and the error rate of
   the "same speaker" decision over all video pairs, with the threshold chosen
   (a) on three actors' pairs and scored on the other three's videos, for all 20 splits of
   the six actors (mean and sd), and (b) on the other corpus's actors (the whole corpus scored).
   Each rule raw and after projecting out the emotion directions learned from the same
   actors' labelled clips (``featurestore.speakers.emotion_directions``; the shipped
   variant, :data:`SHIPPED`), with the ARI of the clusters against the emotions beside.
2. **Macro-F1 with the test fold's groups withheld**: actor-grouped 5-fold CV (every fold's
   test actors unseen), a pooled logistic regression (C=0.05, balanced) on per-speaker
   normalised audio vectors, trained with the training actors' own statistics; the test fold
   normalised by (i) its manifest groups (today's best), (ii) its inferred groups (clustered
   over all clips with the test fold's groups hidden, the threshold from the training actors'
   pairs, the fallback rule of ``featurestore.speakers``), (iii) one pool for all of them
   (today's fallback for videos without a group). Mean and sd over fold seeds.
3. **Fallback for a speaker with too few windows**: each test clip alone (one short clip of a
   new speaker, ~6 windows < MIN_SPEAKER_WINDOWS): normalised by the pooled statistics of every
   window, by the nearest training actor's by voice, or by its own windows.
4. **Matching a file to a stored speaker** (predict-video): one actor at a time unseen, the
   cut from the other five (``featurestore.speakers.assignment_threshold``); the share of the
   unseen actor's clips called new and of stored clips matched to their own actor.
5. **Cost**: the speaker stage's seconds per minute of audio beside librosa-descriptors', on
   the same decoded clips in one run (ratios; the machine is shared, so absolute times drift).

    .venv/bin/python -m bench.speakers --corpus speech
    .venv/bin/python -m bench.speakers --corpus av
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
CORPORA = {"speech": ("javanese-speech", "audio"), "av": ("javanese-av", "audio,video")}
AUDIO_ENCODER = "librosa-descriptors"


def manifest(corpus: str, work: Path, takes: int | None) -> Path:
    """The corpus's manifest; with ``takes``, only the clips of takes 1..takes (javanese-speech
    ids end in _01.._07: every actor, emotion and sentence, fewer repetitions)."""
    name, _ = CORPORA[corpus]
    src = SHARED / name / "labels.csv"
    if not takes:
        return src
    import pandas as pd
    df = pd.read_csv(src)
    df = df[df["id"].str.extract(r"_(\d+)$")[0].astype(int) <= takes]
    df["video"] = [str(SHARED / name / v) for v in df["video"]]
    out = work / f"{name}-takes{takes}.csv"
    df.to_csv(out, index=False)
    return out


def store_path(corpus: str, work: Path, takes: int | None) -> Path:
    return work / f"{CORPORA[corpus][0]}{f'-takes{takes}' if takes else ''}-store"


def embed(corpus: str, work: Path, takes: int | None = None) -> Path:
    """The corpus's store (embedded once; a re-run skips what is stored)."""
    name, modalities = CORPORA[corpus]
    store = store_path(corpus, work, takes)
    cmd = [sys.executable, str(ROOT / "cli.py"), "embed", "--store", str(store), "--manifest",
           str(manifest(corpus, work, takes)), "--modalities", modalities, "--audio-encoder", AUDIO_ENCODER,
           "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(proc.stderr[-3000:])
    print(proc.stdout.strip().splitlines()[-2] if proc.stdout.strip() else "", flush=True)
    return store


def voices(store_path: Path):
    from featurestore.speakers import voice_vectors
    from featurestore.store import FeatureStore
    from dataclasses import replace as dc_replace
    from featurestore.speakers import centre
    con = FeatureStore(store_path, create=False).connect()
    try:
        vv = voice_vectors(con)
    finally:
        con.close()
    return dc_replace(vv, voice=centre(vv.voice)[0])  # centred on the corpus's mean voice, as a store


RULES = ("balanced", "within-0.9")
#: Suffix of a rule applied after the emotion directions (learned from the grouped, labelled
#: clips that chose the cut) are projected out, as ``infer_speaker_groups`` does when it can.
EMO = " + emotion removed"
VARIANTS = (*RULES, *(r + EMO for r in RULES))
SHIPPED = "within-0.9" + EMO


def _space(variant: str, V, learn):
    """(``V`` as ``variant`` clusters it, the cut's rule): with EMO, ``V`` less the emotion
    directions learned from ``learn`` = (voices, groups, labels) of the rows that choose the cut."""
    from featurestore.speakers import emotion_directions, remove_directions
    B = emotion_directions(*learn) if variant.endswith(EMO) else None
    return remove_directions(V, B), variant.removesuffix(EMO)


def clustering_quality(vv, other=None) -> dict:
    """Per threshold rule: leave-three-actors-out thresholds (20 splits) and the other corpus's."""
    from featurestore.speakers import agreement, cluster, pair_threshold
    actors = sorted(set(vv.group))
    out = {}
    for variant in VARIANTS:
        rows = []
        for chosen in itertools.combinations(actors, 3):
            pick = np.isin(vv.group, chosen)
            V, rule = _space(variant, vv.voice, (vv.voice[pick], vv.group[pick], vv.label[pick]))
            t, _ = pair_threshold(V[pick], vv.group[pick], rule)
            held = ~pick
            codes = cluster(V[held], t)
            a = agreement(vv.group[held], codes)
            # How far the clusters follow the acted emotion instead (0: not at all).
            a["emotion_ari"] = agreement(vv.label[held], codes)["ari"]
            rows.append({**a, "threshold": t})
        r = {"leave_3_actors_out": {k: {"mean": float(np.mean([x[k] for x in rows])),
                                        "sd": float(np.std([x[k] for x in rows], ddof=1))}
                                    for k in ("ari", "purity", "pair_error", "false_same", "false_different",
                                              "n_clusters", "threshold", "emotion_ari")}}
        V, rule = _space(variant, vv.voice, (vv.voice, vv.group, vv.label))
        t_all, info = pair_threshold(V, vv.group, rule)
        r["own_pairs_threshold"] = {"threshold": t_all, **info}
        if other is not None:
            # The other corpus chooses the cut and (EMO) the directions; this one is clustered.
            learn = (other.voice, other.group, other.label)
            t, _ = pair_threshold(_space(variant, other.voice, learn)[0], other.group, rule)
            r["other_corpus_threshold"] = {**agreement(vv.group, cluster(_space(variant, vv.voice, learn)[0], t)),
                                           "threshold": t}
        out[variant] = r
    return out


def assignment_quality(vv) -> dict:
    """predict-video's matching of a file to a stored speaker, one actor at a time unseen: the
    cut from the five stored actors' clips (``assignment_threshold``); the unseen actor's clips
    should be called new, each stored actor's clips (its mean taken without the clip) matched
    to their own actor. Means over the six rounds."""
    from featurestore.speakers import _unit, assignment_threshold
    V, g = vv.voice, vv.group
    acts = sorted(set(g))
    new, kept, right, cuts = [], [], [], []
    for a in acts:
        stored = [b for b in acts if b != a]
        rows = np.flatnonzero(g != a)
        t = assignment_threshold(V[rows], list(g[rows]))
        cuts.append(t)
        C = _unit(np.array([V[g == b].mean(axis=0) for b in stored]))
        new.append(np.mean((1 - C @ V[g == a].T).min(axis=0) > t))
        for i in rows:
            own = (g == g[i]) & (np.arange(len(g)) != i)
            cents = _unit(np.array([V[own].mean(axis=0) if b == g[i] else V[g == b].mean(axis=0) for b in stored]))
            d = 1 - cents @ V[i]
            kept.append(d.min() <= t)
            right.append(stored[int(np.argmin(d))] == g[i] and d.min() <= t)
    return {"unseen_called_new": float(np.mean(new)), "stored_matched": float(np.mean(kept)),
            "stored_matched_to_own": float(np.mean(right)), "cut_mean": float(np.mean(cuts))}


def _load(store_path: Path):
    from fusion.lineage import open_source
    from fusion.data import load_store_window_data
    from featurestore.store import FeatureStore
    store = FeatureStore(store_path, create=False)
    st, con, _, snapshot, served = open_source(store)
    data = load_store_window_data(st, {"audio": served["audio"]}, snapshot=snapshot)
    return con, data


def withheld_f1(store_path: Path, vv, seeds: int, folds: int = 5) -> dict:
    """Macro-F1 of the test fold normalised by manifest / inferred / one pooled group; and the
    fallback rules for single short clips of new speakers."""
    from featurestore.speakers import MIN_SPEAKER_WINDOWS, POOLED, cluster, pair_threshold
    from fusion.aggregate import macro_f1
    from fusion.cv import fit_videos, predict_videos, prepare
    from fusion.groupnorm import GroupStats
    from fusion.oof import OOFPredictions
    from fusion.space import Config
    con, data = _load(store_path)
    config = Config("pooled-logreg", "mean", {"class_weight": "balanced", "C": 0.05}, pool_stats="mean")
    ids = data.videos["video_id"].to_numpy(str)
    actor = data.videos["group"].to_numpy(object)
    label = data.videos["label"].to_numpy(object)
    vpos = {v: i for i, v in enumerate(vv.video_id)}
    has_voice = np.array([v in vpos for v in ids])
    V = np.array([vv.voice[vpos[v]] if v in vpos else np.zeros(vv.voice.shape[1]) for v in ids])
    n_win = data.window_counts()
    settings = ("manifest", *(f"inferred ({r})" for r in VARIANTS), "pooled: the test fold's windows",
                "pooled: every window", "alone: pooled statistics", "alone: nearest actor", "alone: own windows")
    scores = {s: [] for s in settings}
    fallbacks = []
    for seed in range(seeds):
        td0 = prepare(con, folds, seed, data, speaker_groups="off")
        parts = {s: [] for s in settings}
        for tr, va in td0.folds:
            test = np.zeros(len(ids), bool)
            test[va] = True
            pools = {"manifest": actor.copy(),
                     "pooled: the test fold's windows": np.where(test, "", actor).astype(object),
                     "pooled: every window": np.where(test, POOLED, actor).astype(object)}
            for variant in VARIANTS:
                # The cut and the emotion directions from the training actors' clips only.
                train = ~test & has_voice
                X, rule = _space(variant, V, (V[train], actor[train], label[train]))
                t, _ = pair_threshold(X[train], actor[train], rule)
                # Clustered over every clip, the test clips' groups hidden (as embed clusters a store).
                codes = np.full(len(ids), -1)
                codes[has_voice] = cluster(X[has_voice], t)
                inferred = np.array([f"voice-{c}" if c >= 0 else None for c in codes], dtype=object)
                p = np.where(test, inferred, actor).astype(object)
                # A test speaker (inferred group among the test clips) with too few windows: fallback.
                for g in set(p[test]):
                    members = test & (p == g)
                    if g is None or n_win[members].sum() < MIN_SPEAKER_WINDOWS:
                        p[members] = POOLED
                        fallbacks.append(int(members.sum()))
                pools[f"inferred ({variant})"] = p
            pools["alone: pooled statistics"] = np.where(test, POOLED, actor).astype(object)
            cents = {a: V[(actor == a) & ~test & has_voice].mean(axis=0) for a in set(actor[~test])}
            names = sorted(cents)
            C = np.array([cents[a] / np.linalg.norm(cents[a]) for a in names])
            nearest = np.array([names[int(np.argmax(C @ V[i]))] for i in range(len(ids))], dtype=object)
            pools["alone: nearest actor"] = np.where(test, nearest, actor).astype(object)
            pools["alone: own windows"] = np.where(test, ids.astype(object), actor).astype(object)
            for s in settings:
                w = pools[s][data.video_code]
                w = np.array([x if isinstance(x, str) else POOLED for x in w], dtype=object)
                X = GroupStats.fit(data.X, w).transform(data.X, w)
                td = replace(td0, data=replace(data, X=X), _pooled={})
                est = fit_videos(td, config, tr, seed)
                parts[s].append(predict_videos(td, config, est, va))
        for s in settings:
            oof = OOFPredictions.concat(parts[s])
            pred = td0.aggregator.predict_codes(oof.probs, oof.video_id, oof.window_idx, td0.video_ids)
            scores[s].append(macro_f1(td0.y_video, pred[config.method], td0.labels))
        print(f"seed {seed}: " + ", ".join(f"{s} {scores[s][-1]:.3f}" for s in settings), flush=True)
    con.close()
    return {"macro_f1": {s: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                             "scores": v} for s, v in scores.items()},
            "test_clips_in_fallback": int(sum(fallbacks)), "n_videos": int(len(ids)), "seeds": seeds,
            "folds": folds}


def cost(corpus: str, n_clips: int) -> dict:
    """Seconds per minute of audio: the speaker stage and librosa-descriptors on the same clips."""
    import pandas as pd
    from featurestore.encoders.registry import get_encoder
    from featurestore.media import decode_video
    name, _ = CORPORA[corpus]
    rows = pd.read_csv(SHARED / name / "labels.csv").head(n_clips)
    clips = [decode_video(str(SHARED / name / p), video=False) for p in rows["video"]]
    minutes = sum(c.duration_s for c in clips) / 60
    out = {"clips": len(clips), "audio_minutes": minutes}
    for enc_name in ("resemblyzer", AUDIO_ENCODER):
        enc = get_encoder(enc_name, device="cpu")
        enc.encode_video(clips[0].audio, clips[0].windows)     # load the model outside the timing
        t0 = time.perf_counter()
        for c in clips:
            enc.encode_video(c.audio, c.windows)
        out[enc_name] = (time.perf_counter() - t0) / minutes
    out["ratio_speaker_to_descriptors"] = out["resemblyzer"] / out[AUDIO_ENCODER]
    return out


def figures(result: dict, command: str) -> list[dict]:
    """``python -m bench`` rows of one corpus's result: clustering with held-out actors (the
    shipped rule), macro-F1 with the test fold's groups withheld, and the stage's cost."""
    name = result["corpus"] + (f" takes 1-{result['takes']}" if result.get("takes") else "")
    held = result["clustering"][SHIPPED]["leave_3_actors_out"]
    f1 = result["withheld"]["macro_f1"]
    rows = [{"figure": f"{name}: {k} of voice clusters, 3 held-out actors ({SHIPPED})",
             "value": round(held[k]["mean"], 3), "unit": "", "baseline": None, "ratio": None, "command": command}
            for k in ("ari", "purity", "pair_error")]
    inferred = f1[f"inferred ({SHIPPED})"]["mean"]
    for base in ("manifest", "pooled: the test fold's windows", "pooled: every window"):
        rows.append({"figure": f"{name}: macro-F1, test groups inferred vs {base}", "value": round(inferred, 3),
                     "unit": "macro-F1", "baseline": round(f1[base]["mean"], 3), "ratio": None, "command": command})
    c = result["cost"]
    rows.append({"figure": f"{name}: speaker stage, s per minute of audio (baseline librosa-descriptors)",
                 "value": round(c["resemblyzer"], 2), "unit": "s/min", "baseline": round(c[AUDIO_ENCODER], 2),
                 "ratio": round(c[AUDIO_ENCODER] / c["resemblyzer"], 2), "command": command})
    return rows


def run(quick: bool) -> list[dict]:
    """``python -m bench``: speech takes 1-2 then av (quick: speech take 1, one seed)."""
    if not (SHARED / "javanese-speech").exists():
        print("skip bench.speakers: no javanese-speech data", flush=True)
        return []
    plans = ([["--corpus", "speech", "--takes", "1", "--seeds", "1", "--cost-clips", "5"]] if quick else
             [["--corpus", "speech", "--takes", "2"], ["--corpus", "av", "--other-takes", "2"]])
    rows = []
    for argv in plans:
        rows += figures(main(argv), "python -m bench.speakers " + " ".join(argv))
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="speech")
    ap.add_argument("--seeds", type=int, default=3, help="fold seeds 0..n-1")
    ap.add_argument("--cost-clips", type=int, default=60)
    ap.add_argument("--folds", type=int, default=5, help="actor-grouped folds (5: 1-2 test actors per "
                    "fold; 2: 3 test actors, closer to a test set of many new speakers)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-speakers"))
    ap.add_argument("--takes", type=int, help="only the clips of takes 1..N (javanese-speech: 7 takes; "
                    "2 gives 288 clips, every actor, emotion and sentence)")
    ap.add_argument("--other-takes", type=int, help="--takes of the other corpus's store (its threshold)")
    ap.add_argument("--skip-embed", action="store_true", help="use the stores as they are")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    store = (store_path(args.corpus, args.work, args.takes) if args.skip_embed
             else embed(args.corpus, args.work, args.takes))
    other_name = "av" if args.corpus == "speech" else "speech"
    other_store = store_path(other_name, args.work, args.other_takes)
    vv = voices(store)
    other = voices(other_store) if other_store.exists() else None
    result = {"corpus": CORPORA[args.corpus][0], "takes": args.takes, "n_voices": len(vv)}
    result["clustering"] = clustering_quality(vv, other)
    print(json.dumps(result["clustering"], indent=1, default=float), flush=True)
    result["assignment"] = assignment_quality(vv)
    print(json.dumps(result["assignment"], indent=1), flush=True)
    result["withheld"] = withheld_f1(store, vv, args.seeds, args.folds)
    result["cost"] = cost(args.corpus, args.cost_clips)
    print(json.dumps(result["cost"], indent=1), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"speakers_{args.corpus}{f'_takes{args.takes}' if args.takes else ''}"
           f"{f'_folds{args.folds}' if args.folds != 5 else ''}.json").write_text(json.dumps(result, indent=2, default=float))
    return result


if __name__ == "__main__":
    main()
