"""Full-matrix load of the feature store, through the path ``tune-fusion`` uses.

``N`` windows x 899 float32 (audio 128 + video 3 + text 768, the design card's dims) are
written into a DuckLake store as ``embed`` writes them (one transaction per chunk of 8
videos of 60 windows) and compacted as ``cli.py compact`` does, then loaded three ways in
the same run, on the same disk, warm page cache:

* **store**: ``fusion.data.load_store_window_data`` - what ``tune-fusion`` calls: the
  videos and windows by SQL, each feature set from its Parquet data files (as DuckLake lists
  them, with their delete files), aligned in numpy into one ``(N, 899)`` matrix;
* **(a) one .npy per window per modality**: the seed's layout,
  ``<root>/<video_id>/<window_idx>.<modality>.npy`` (3 files a window), ``np.load`` each
  into a preallocated matrix;
* **(b) pyarrow on the same Parquet bytes**: ``pyarrow.parquet.read_table`` of the store's
  embeddings data files, vectors flattened to numpy: the limit for this storage.

Also: bytes per window of the store's embeddings data files (every vector is stored once, as
a ``FLOAT[]`` list) and, for reference, the SQL path (``SELECT`` from ``fusion_vectors``).
Every load is checked against the written matrix. Loads report the best of ``--repeat``.

    .venv/bin/python -m bench.store_load [--windows 100000] [--repeat 3] [--tmp DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from featurestore.schema import DESIGN_CARD_DIMS as DIMS, MODALITIES
from featurestore.store import FeatureStore, WriteBatch, embeddings_table

WINDOWS_PER_VIDEO = 60
CHUNK_VIDEOS = 8
COMMAND = ".venv/bin/python -m bench.store_load --windows {n}"


def _matrix(n_videos: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = n_videos * WINDOWS_PER_VIDEO
    audio = rng.standard_normal((n, DIMS["audio"]), dtype=np.float32)
    video = rng.dirichlet(np.ones(DIMS["video"]), n).astype(np.float32)
    video[rng.random(n) < 0.05] = np.nan                       # no face in some windows
    # A transcript segment spans ~4 windows: text vectors repeat over neighbours.
    text = rng.standard_normal((n // 4 + 1, DIMS["text"]), dtype=np.float32)
    text = np.repeat(text / np.linalg.norm(text, axis=1, keepdims=True), 4, axis=0)[:n]
    return np.concatenate([audio, video, text], axis=1)


def _ids(n_videos: int) -> list[str]:
    return [f"v{i:06d}" for i in range(n_videos)]


def write_store(root: Path, X: np.ndarray, n_videos: int) -> FeatureStore:
    store = FeatureStore(root)
    for m in MODALITIES:
        store.register_encoder(f"bench-{m}", m, DIMS[m], "1", {"bench": True}, None, {}, f"bench-{m}")
    ids = _ids(n_videos)
    slices = _slices()
    for c in range(0, n_videos, CHUNK_VIDEOS):
        vids = ids[c:c + CHUNK_VIDEOS]
        rows = slice(c * WINDOWS_PER_VIDEO, (c + len(vids)) * WINDOWS_PER_VIDEO)
        vid = np.repeat(vids, WINDOWS_PER_VIDEO)
        widx = np.tile(np.arange(WINDOWS_PER_VIDEO), len(vids))
        b = WriteBatch()
        b.replace("videos", [{"video_id": v, "split": "train", "label": "Joy", "status": "ok"} for v in vids])
        b.replace("windows", {"video_id": vid, "window_idx": widx, "start_s": widx * 0.5, "end_s": widx * 0.5 + 1})
        for m in MODALITIES:
            b.replace("embeddings", embeddings_table(f"bench-{m}", DIMS[m], vid, widx, X[rows, slices[m]]))
        store.commit(b)
    return store


def _slices() -> dict[str, slice]:
    out, start = {}, 0
    for m in MODALITIES:
        out[m] = slice(start, start + DIMS[m])
        start += DIMS[m]
    return out


def write_npy(root: Path, X: np.ndarray, n_videos: int) -> None:
    slices = _slices()
    for v, vid in enumerate(_ids(n_videos)):
        d = root / vid
        d.mkdir(parents=True)
        for w in range(WINDOWS_PER_VIDEO):
            row = X[v * WINDOWS_PER_VIDEO + w]
            for m in MODALITIES:
                np.save(d / f"{w}.{m}.npy", row[slices[m]])


def load_npy(root: Path, n_videos: int) -> np.ndarray:
    slices = _slices()
    out = np.empty((n_videos * WINDOWS_PER_VIDEO, sum(DIMS.values())), np.float32)
    for v, vid in enumerate(_ids(n_videos)):
        for w in range(WINDOWS_PER_VIDEO):
            for m in MODALITIES:
                out[v * WINDOWS_PER_VIDEO + w, slices[m]] = np.load(root / vid / f"{w}.{m}.npy")
    return out


def embedding_files(store: FeatureStore) -> list[str]:
    con = store.connect()
    try:
        return [r[0] for r in con.execute(
            "SELECT data_file FROM ducklake_list_files('store', 'embeddings')").fetchall()]
    finally:
        con.close()


def load_pyarrow(files: list[str]) -> dict[str, np.ndarray]:
    """The limit: the same Parquet bytes read by pyarrow, vectors flattened per feature set."""
    import pyarrow.compute as pc
    from concurrent.futures import ThreadPoolExecutor

    def read(f):   # each file alone: their paths hold hive-style partition names
        return pq.ParquetFile(f).read(columns=["encoder_id", "embedding"])
    with ThreadPoolExecutor(len(files) or 1) as pool:
        tables = list(pool.map(read, files))
    out = {m: [] for m in MODALITIES}
    for t in tables:
        for m in MODALITIES:
            col = t.filter(pc.equal(t["encoder_id"], f"bench-{m}"))["embedding"]
            out[m] += [c.flatten().to_numpy() for c in col.chunks]
    return {m: np.concatenate(v) for m, v in out.items()}


def _best(fn, repeat: int, times: list[float] | None = None):
    """(the fastest of ``repeat`` calls of ``fn`` in s, its value); every call's time is
    appended to ``times``."""
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        took = time.perf_counter() - t
        best = min(best, took)
        if times is not None:
            times.append(took)
    return best, value


def measure(n_windows: int = 100_000, repeat: int = 3, tmp: str | None = None) -> dict:
    from fusion.data import load_store_window_data, load_window_data

    n_videos = max(1, n_windows // WINDOWS_PER_VIDEO)
    n = n_videos * WINDOWS_PER_VIDEO
    X = _matrix(n_videos)
    work = Path(tempfile.mkdtemp(prefix="store-load-", dir=tmp))
    try:
        t = time.perf_counter()
        store = write_store(work / "store", X, n_videos)
        res = {"n": n, "store_write_s": time.perf_counter() - t}
        t = time.perf_counter()
        store.compact()
        res["compact_s"] = time.perf_counter() - t
        served = {m: f"bench-{m}" for m in MODALITIES}
        res["store_all_s"] = []
        res["store_s"], data = _best(lambda: load_store_window_data(store, served), repeat, res["store_all_s"])
        np.testing.assert_array_equal(data.X, X)
        files = embedding_files(store)
        res["bytes_per_window"] = sum(os.path.getsize(f) for f in files) / n
        res["pyarrow_s"], parts = _best(lambda: load_pyarrow(files), repeat)
        assert sum(p.size for p in parts.values()) == np.isfinite(X).sum()
        con = store.connect()
        res["sql_s"], sql = _best(lambda: load_window_data(con), 1)
        con.close()
        np.testing.assert_array_equal(sql.X, X)
        t = time.perf_counter()
        write_npy(work / "npy", X, n_videos)
        res["npy_write_s"] = time.perf_counter() - t
        res["npy_s"], M = _best(lambda: load_npy(work / "npy", n_videos), 1)
        np.testing.assert_array_equal(M, X)
        res["npy_files"] = n * len(MODALITIES)
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return res


def run(quick: bool) -> list[dict]:
    n = 6_000 if quick else 100_000
    r = measure(n, repeat=1 if quick else 3)
    cmd = COMMAND.format(n=n)
    return [
        {"figure": f"full-matrix load, tune-fusion's path ({r['n']:,} windows x 899)", "value": r["store_s"],
         "unit": "s", "baseline": r["npy_s"], "ratio": r["npy_s"] / r["store_s"], "command": cmd},
        {"figure": "full-matrix load vs pyarrow on the same Parquet bytes (the limit)",
         "value": r["store_s"], "unit": "s", "baseline": r["pyarrow_s"],
         "ratio": r["pyarrow_s"] / r["store_s"], "command": cmd},
        {"figure": "store bytes per window (embeddings data files)", "value": r["bytes_per_window"],
         "unit": "B", "baseline": None, "ratio": None, "command": cmd},
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tmp", help="folder for the stores (default: the system temp dir)")
    args = ap.parse_args(argv)
    r = measure(args.windows, args.repeat, args.tmp)
    print(f"{r['n']:,} windows x 899 float32; load average {os.getloadavg()[0]:.1f}")
    print(f"store: write {r['store_write_s']:.1f} s ({r['n'] // (WINDOWS_PER_VIDEO * CHUNK_VIDEOS) + 1} "
          f"commits), compact {r['compact_s']:.1f} s, {r['bytes_per_window']:,.0f} bytes per window")
    print(f"{'load path':62s} {'seconds':>8s} {'store is x faster':>18s}")
    rows = [("store, tune-fusion's path (load_store_window_data)", r["store_s"]),
            ("(a) one .npy per window per modality (%d files)" % r["npy_files"], r["npy_s"]),
            ("(b) pyarrow on the same Parquet bytes (the limit)", r["pyarrow_s"]),
            ("store through SQL (load_window_data over fusion_vectors)", r["sql_s"])]
    for name, s in rows:
        print(f"{name:62s} {s:8.2f} {s / r['store_s']:18.1f}")
    print(f".npy write {r['npy_write_s']:.1f} s")


if __name__ == "__main__":
    main()
