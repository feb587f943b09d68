"""Held-out reels as *audio*: trained on the real transcripts, predicted through our ASR.

The verifier's path: text-only training on the competition's transcripts, then real reels
the model never saw, whose text comes from our Whisper. No reel audio ships, so each
held-out reel's transcript is spoken again with espeak-ng (Indonesian voice), every
segment at the time its windows place it, into a WAV file; ``embed`` then transcribes it
with the packaged Whisper base like any video. The training side is exactly
``bench/real_transcripts.py`` (same grouped split, same transcript files), and so is the
score: ``fusion.metrics.macro_f1`` over the classes of the training manifest's labels.

Both text units are scored on the same held-out audio: ``segment`` (the default; a
window carries every ASR segment it overlaps, as the competition's transcripts do) and
``word`` (a window carries only its own words).

    .venv/bin/python -m bench.spoken_transcripts [--trials 30] [--test-size 0.2] [--seed 0] [--units segment]
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.real_transcripts import (DATA, REPO, cli, held_out_macro_f1, split_args, split_manifests,
                                    train_labels)
from featurestore.sqlfiles import read_sql
from fusion.space import SEARCH_SPACE_VERSION

HOP_S, WINDOW_S = 0.5, 1.0
RATE = 22050  # espeak-ng's output rate


def segments_of(window_texts: list[str | None]) -> list[tuple[float, str]]:
    """``(start_s, text)`` of each segment in a window TSV's texts (one entry per window).

    A window inside one segment holds that segment's text; a window spanning a boundary
    holds both texts joined by a space. Segments are the texts that are not such a join
    of shorter ones; each starts a quarter window after the first window holding it.
    """
    texts = sorted({t for t in window_texts if t}, key=len)
    atoms: list[str] = []

    def joined(s: str) -> bool:
        return any(s == a or (s.startswith(a + " ") and joined(s[len(a) + 1:])) for a in atoms)

    for t in texts:
        if not joined(t):
            atoms.append(t)
    out = []
    for a in atoms:
        first = next(i for i, t in enumerate(window_texts)
                     if t and (t == a or t.startswith(a + " ") or t.endswith(" " + a) or f" {a} " in t))
        out.append((first * HOP_S + WINDOW_S / 4, a))
    return sorted(out)


def speak_reel(window_texts: list[str | None], path: Path) -> float:
    """Write ``path`` (.wav): the reel's segments spoken in order at their times.

    Returns the seconds of audio written (at least the reel's own duration).
    """
    from reels_demo.corpus import speak, write_talking_video

    duration = (len(window_texts) - 1) * HOP_S + WINDOW_S
    pieces, end = [], 0.0
    for start, text in segments_of(window_texts):
        speech, rate = speak(text, voice="id", speed=165)
        assert rate == RATE, rate
        at = max(start, end + 0.15)  # never over the previous segment
        pieces.append((int(at * RATE), speech))
        end = at + len(speech) / RATE
    audio = np.zeros(int(max(duration, end + 0.2) * RATE), np.float32)
    for at, speech in pieces:
        audio[at:at + len(speech)] = speech
    write_talking_video(path, None, 0, audio=audio, sample_rate=RATE)
    return len(audio) / RATE


def held_out_interval(y_true, y_pred, train_labels) -> tuple[float, float]:
    """95 % bootstrap interval of :func:`held_out_macro_f1` over the held-out reels (each its
    own group: the split already keeps duplicates on one side)."""
    from featurestore.schema import CLASSES
    from fusion.estimate import group_bootstrap
    code = {c: i for i, c in enumerate(CLASSES)}
    t = np.array([code.get(c, -1) for c in y_true], np.int64)
    p = np.array([code.get(c, -1) for c in y_pred], np.int64)
    trained = np.array([code.get(c, -1) for c in train_labels], np.int64)
    return group_bootstrap(t, p, np.arange(len(t)), np.unique(trained[trained >= 0]))


def read_window_texts(path: Path) -> list[str | None]:
    from featurestore.transcripts import read_transcript
    return list(read_transcript(path).texts)


def run(quick: bool = False, trials: int = 30, test_size: float = 0.2, seed: int = 0,
        out: Path | None = None, units: tuple[str, ...] = ("word", "segment")) -> list[dict]:
    if not DATA.exists():
        print(f"skip: {DATA} not found")
        return []
    out = out or REPO / "bench" / "out" / "spoken_transcripts"
    store = out / "store"
    train, test, labels = split_manifests(DATA, out, test_size, seed)
    trials = 6 if quick else trials
    test_df = pd.read_csv(test, dtype=str, keep_default_na=False)
    if quick:  # a smoke run: 120 training and 20 held-out reels
        out = out.with_name(out.name + "_quick")
        store = out / "store"
        test_df = test_df.head(20)
        small = out / "train.csv"
        small.parent.mkdir(parents=True, exist_ok=True)
        pd.read_csv(train, dtype=str, keep_default_na=False).sample(120, random_state=seed) \
            .to_csv(small, index=False)
        train = small
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seconds = 0.0
    for row in test_df.itertuples():
        wav = audio_dir / f"{row.id}.wav"
        seconds += speak_reel(read_window_texts(Path(row.transcript)), wav)
    tts_s = time.perf_counter() - t0
    spoken = out / "test_spoken.csv"
    test_df.assign(video=[str(audio_dir / f"{i}.wav") for i in test_df.id], transcript="") \
        .to_csv(spoken, index=False)
    print(f"spoke {len(test_df)} held-out reels ({seconds / 60:.1f} min of audio) in {tts_s:.0f} s")

    times = {
        "embed train": cli("embed", "--store", str(store), "--manifest", str(train),
                           "--modalities", "text", "--quiet"),
        "tune-fusion": cli("tune-fusion", "--store", str(store), "--trials", str(trials),
                           "--seed", str(seed), "--study", f"bench-{trials}-{seed}-space{SEARCH_SPACE_VERSION}",
                           "--quiet"),
    }
    from featurestore.store import FeatureStore
    model_id = FeatureStore(store).query(
        read_sql("queries", "newest_model")).column(0)[0].as_py()
    truth = pd.read_csv(labels, dtype=str).set_index("id").loc[test_df.id].reset_index()
    trained = train_labels(train)  # macro-F1 label set: the classes the model was trained on
    cmd = (f"python -m bench.spoken_transcripts --trials {trials} --test-size {test_size} --seed {seed} "
           f"--units {','.join(units)}")
    rows, scores, intervals = [], {}, {}
    for unit in units:
        times[f"embed test ({unit})"] = cli(
            "embed", "--store", str(store), "--manifest", str(spoken), "--split", "test",
            "--modalities", "text", "--text-unit", unit, "--quiet")
        times[f"predict ({unit})"] = cli("predict", "--store", str(store), "--split", "test",
                                         "--model", model_id)
        sub_path = out / f"submission_{unit}.csv"
        cli("export-submission", "--store", str(store), "--split", "test", "--model", model_id,
            "--out", str(sub_path))
        sub = pd.read_csv(sub_path, dtype=str)
        merged = truth.merge(sub, on="id", suffixes=("_true", "_pred"))
        assert len(merged) == len(truth), "submission must have one row per test id"
        scores[unit] = held_out_macro_f1(merged.emotion_true, merged.emotion_pred, trained)
        intervals[unit] = held_out_interval(merged.emotion_true, merged.emotion_pred, trained)
    surprise = held_out_macro_f1(truth.emotion, ["Surprise"] * len(truth), trained)
    for unit, f1 in scores.items():
        rows.append({"figure": f"held-out macro-F1, re-spoken reels through ASR, text unit {unit}",
                     "value": round(f1, 3), "unit": "F1", "baseline": round(surprise, 3),
                     "ratio": round(f1 / surprise, 2) if surprise else None, "command": cmd,
                     "interval": [round(x, 3) for x in intervals[unit]], "n_heldout": int(len(truth))})
    for k, v in times.items():
        print(f"{k:>22}: {v:7.1f} s")
    print(f"held-out macro-F1 on {len(truth)} re-spoken reels: " +
          ", ".join(f"{u} {f:.3f}" for u, f in scores.items()) + f" (always-Surprise {surprise:.3f})")
    return rows


def _units(p) -> None:
    p.add_argument("--units", default="word,segment", type=lambda s: tuple(s.split(",")),
                   help="text units to predict with, comma-separated (default word,segment)")
    p.add_argument("--out", type=Path, help="working folder (default bench/out/spoken_transcripts); "
                   "a new one times every stage from scratch")


def main(argv: list[str] | None = None) -> None:
    run(**split_args(__doc__, argv, _units))


if __name__ == "__main__":
    main()
