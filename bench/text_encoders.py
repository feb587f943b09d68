"""Compare the offline text encoders on the real labelled transcripts.

Per video: window transcripts -> encoder -> NaN-aware mean over windows -> one
vector (zeros for a video without speech). Grouped stratified 5-fold CV by
video, grouped by the project's one definition of duplicate videos
(``featurestore.duplicates``: identical or near-identical transcripts -- windows
concatenated as the ``video_evidence`` query does -- and the same media fingerprint,
which for a transcript-only video is the SHA-256 of its transcript file, as the
store computes it; pooled vectors are not compared, so the groups do not depend on
the encoder), so duplicates never straddle train and test. Standardised features +
logistic regression (class_weight="balanced"); scored with the project's one
macro-F1 (``fusion.metrics.macro_f1``) on the pooled out-of-fold predictions of
every video, over the classes of the labelled set. Baselines in the same folds:
TF-IDF + LR, always-Surprise.

Embeddings of distinct texts are cached in bench/out/ (per encoder_id), so an
interrupted run resumes where it stopped; texts/s counts only encoding time.

Run:  .venv/bin/python bench/text_encoders.py [--data DIR] [--encoders e5-small mpnet]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featurestore.schema import CLASSES  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "reels-transcripts"
NO_SPEECH = "[NO_SPEECH]"


def read_windows(path: Path) -> list[str | None]:
    """Window texts of one seed-format transcript (``idx<TAB>text``; ``[NO_SPEECH]`` -> None)."""
    rows: dict[int, str | None] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        idx, sep, text = line.partition("\t")
        if not sep or not idx.strip().isdigit():
            raise ValueError(f"{path}:{lineno}: expected 'window_idx<TAB>text', got {line[:60]!r}")
        text = text.strip()
        rows[int(idx)] = None if (not text or text == NO_SPEECH) else text
    return [rows[k] for k in sorted(rows)]


def load(data: Path) -> tuple[list[str], list[list[str | None]], np.ndarray, np.ndarray]:
    """(video ids, window texts per video, labels, leakage groups (:func:`leakage_groups`))."""
    ids, texts, labels, files = [], [], [], []
    with open(data / "labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["emotion"] not in CLASSES:
                raise ValueError(f"{data / 'labels.csv'}: id {row['id']}: unknown emotion "
                                 f"{row['emotion']!r}; expected one of {CLASSES}")
            path = data / row["transcript"]
            ids.append(row["id"])
            texts.append(read_windows(path))
            labels.append(row["emotion"])
            files.append(path)
    groups, _ = leakage_groups(ids, texts, files)
    return ids, texts, np.array(labels), groups


def leakage_groups(ids: list[str], videos: list[list[str | None]],
                   files: list[Path]) -> tuple[np.ndarray, dict[str, int]]:
    """Leakage groups of transcript-only videos by the project's one definition.

    ``featurestore.duplicates`` on what a store would hold for them: the transcript of
    the ``video_evidence`` query (``duplicates.video_evidence`` over the windows ``videos``,
    window texts in order, None = no speech) and, as media fingerprint, the SHA-256 of
    each transcript file in ``files`` (the store's ``media_sha256`` of a video without
    media). No vectors: nothing is embedded yet.

    Returns ``(int64 (n,) group per video, videos merged per rule)``
    (``duplicates.leakage_groups``).
    """
    import duckdb
    import pyarrow as pa

    from featurestore import duplicates

    rows = [(v, i, t) for v, wins in zip(ids, videos) for i, t in enumerate(wins)]
    windows = pa.table({"video_id": pa.array([r[0] for r in rows], pa.string()),
                        "window_idx": pa.array([r[1] for r in rows], pa.int32()),
                        "transcript": pa.array([r[2] for r in rows], pa.string())})
    con = duckdb.connect(":memory:")
    try:
        con.register("windows", windows)
        evidence = duplicates.video_evidence(con, ids)
    finally:
        con.close()
    media = [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]
    pairs = duplicates.duplicate_pairs(ids, evidence["transcript"].tolist(), media=media)
    return duplicates.leakage_groups(ids, pairs)


def _load_cache(path: Path) -> tuple[dict[str, np.ndarray], float, int]:
    if not path.is_file():
        return {}, 0.0, 0
    z = np.load(path, allow_pickle=False)
    return dict(zip(z["texts"].tolist(), z["X"])), float(z["seconds"]), int(z["count"])


def _save_cache(path: Path, cache: dict[str, np.ndarray], seconds: float, count: int) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, texts=np.array(list(cache), dtype=str), X=np.stack(list(cache.values())),
             seconds=seconds, count=count)
    tmp.replace(path)


def video_vectors(name: str, videos: list[list[str | None]], cache_dir: Path,
                  chunk: int = 1000) -> tuple[np.ndarray, dict]:
    """NaN-aware mean of window embeddings per video, and encoder figures.

    Distinct texts are embedded in chunks and kept in ``cache_dir`` (keyed by
    encoder_id), so an interrupted run resumes; throughput is accumulated over
    the chunks actually encoded.
    """
    from featurestore.encoders import get_encoder
    from featurestore.encoders.text import normalise_text

    t0 = time.perf_counter()
    enc = get_encoder(name)
    load_s = time.perf_counter() - t0
    path = cache_dir / f"text_emb_{name}_{enc.encoder_id}.npz"
    cache, seconds, count = _load_cache(path)
    flat = [normalise_text(t) for v in videos for t in v]
    todo = [t for t in dict.fromkeys(t for t in flat if t is not None) if t not in cache]
    for i in range(0, len(todo), chunk):
        part = todo[i:i + chunk]
        t0 = time.perf_counter()
        X, _ = enc.encode(part)
        seconds += time.perf_counter() - t0
        count += len(part)
        cache.update(zip(part, X))
        _save_cache(path, cache, seconds, count)
        print(f"  {name}: {min(i + chunk, len(todo))}/{len(todo)} new distinct texts, "
              f"{count / seconds:.1f} texts/s", flush=True)
    out = np.zeros((len(videos), enc.dim), dtype=np.float64)
    i = 0
    for v, wins in enumerate(videos):
        vecs = [cache[t] for t in flat[i:i + len(wins)] if t is not None]
        i += len(wins)
        if vecs:
            out[v] = np.mean(vecs, axis=0)
    stats = {"dim": enc.dim, "load_s": load_s, "windows": len(flat),
             "distinct": len({t for t in flat if t is not None}),
             "texts_per_s": count / seconds if seconds > 0 else float("nan"),
             "encoder_id": enc.encoder_id}
    return out, stats


def throughput(name: str, videos: list[list[str | None]], n: int) -> float:
    """Texts/s of a fresh encoder on the first ``n`` distinct texts (no caches, after warm-up)."""
    from featurestore.encoders import get_encoder
    from featurestore.encoders.text import normalise_text

    texts = list(dict.fromkeys(t for v in videos for t in map(normalise_text, v) if t))[:n + 8]
    enc = get_encoder(name)
    enc.encode(texts[:8])
    t0 = time.perf_counter()
    enc.encode(texts[8:])
    return (len(texts) - 8) / (time.perf_counter() - t0)


def cv_score(make_model, X, y: np.ndarray, groups: np.ndarray, seed: int, n_splits: int) -> float:
    """Macro-F1 (``fusion.metrics.macro_f1``, over the classes of ``y``) of the pooled
    out-of-fold predictions of grouped stratified ``n_splits``-fold CV."""
    from sklearn.model_selection import StratifiedGroupKFold

    from fusion.aggregate import macro_f1

    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    pred = np.empty(len(y), dtype=object)
    for tr, te in cv.split(np.zeros(len(y)), y, groups):
        model = make_model()
        model.fit(X[tr] if not isinstance(X, list) else [X[i] for i in tr], y[tr])
        pred[te] = model.predict(X[te] if not isinstance(X, list) else [X[i] for i in te])
    return macro_f1(y, pred.astype(str), np.unique(y))


def main(argv: list[str] | None = None) -> int:
    import warnings

    from sklearn.dummy import DummyClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--encoders", nargs="+", default=["e5-small", "mpnet"])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out",
                    help="where embeddings of distinct texts are kept between runs")
    ap.add_argument("--throughput", type=int, default=0, metavar="N",
                    help="also time each encoder on N distinct texts without caches")
    ap.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the LR (fixed, not tuned)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="The least populated class")

    ids, videos, y, groups = load(args.data)
    args.cache.mkdir(parents=True, exist_ok=True)
    print(f"{len(ids)} videos, {len(set(groups))} leakage groups, "
          f"{sum(len(v) for v in videos)} windows; classes: "
          + ", ".join(f"{c} {int((y == c).sum())}" for c in CLASSES), flush=True)

    def lr():
        return LogisticRegression(class_weight="balanced", C=args.C, max_iter=5000)

    rows = []
    for name in args.encoders:
        X, st = video_vectors(name, videos, args.cache)
        if args.throughput:
            st["texts_per_s"] = throughput(name, videos, args.throughput)
        s = cv_score(lambda: make_pipeline(StandardScaler(), lr()), X, y, groups, args.seed, args.folds)
        rows.append((f"{name} mean + LR", st["dim"], s, st))
    docs = [" ".join(dict.fromkeys(t for t in v if t)) for v in videos]
    s = cv_score(lambda: make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                                        LogisticRegression(class_weight="balanced", C=10.0, max_iter=5000)),
                  docs, y, groups, args.seed, args.folds)
    rows.append(("TF-IDF(1-2 gram) + LR", None, s, None))
    s = cv_score(lambda: DummyClassifier(strategy="constant", constant="Surprise"),
                  np.zeros((len(y), 1)), y, groups, args.seed, args.folds)
    rows.append(("always-Surprise", None, s, None))

    print(f"\nvideo-level macro-F1 of the pooled out-of-fold predictions, "
          f"StratifiedGroupKFold({args.folds}, seed={args.seed}), LR C={args.C}")
    print(f"{'method':<24} {'dim':>5} {'macro-F1':>15} {'texts/s':>9} {'distinct/windows':>17} {'load s':>7}")
    for name, dim, s, st in rows:
        f1 = f"{s:.3f}"
        extra = (f"{st['texts_per_s']:9.1f} {st['distinct']:>8}/{st['windows']:<8} {st['load_s']:7.1f}"
                 if st else f"{'':>9} {'':>17} {'':>7}")
        print(f"{name:<24} {dim or '':>5} {f1:>15} {extra}")
    print("\ncommand: " + " ".join([Path(sys.executable).name, *sys.argv]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
