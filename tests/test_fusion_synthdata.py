"""Synthetic store relations with a known signal, for the fusion tests (and a check of them).

``synthetic_tables`` makes Arrow tables shaped like the store's views
(videos, windows, fusion_vectors); ``synthetic_con`` registers them in an
in-memory DuckDB. The class of a video shifts the mean of its audio and text
window vectors, so a working fusion model must beat chance by far.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from featurestore.schema import CLASSES

DIMS = {"audio": 12, "video": 3, "text": 40}


def _array(mat: np.ndarray, missing: np.ndarray) -> pa.FixedSizeListArray:
    d = mat.shape[1]
    return pa.FixedSizeListArray.from_arrays(pa.array(mat.astype(np.float32).ravel(), pa.float32()), d,
                                             mask=pa.array(missing))


def synthetic_tables(n_videos: int = 64, seed: int = 0, signal: float = 1.2,
                     windows: tuple[int, int] = (5, 12)) -> dict[str, pa.Table]:
    """Arrow tables ``videos``, ``windows``, ``fusion_vectors`` with a class signal.

    Every class has at least 3 videos; text is missing in ~30 % of windows, the
    whole video modality in every 7th video, audio in every 11th video's first window.
    Videos 0 and 1 have identical transcripts; videos 2, 3 share a manifest group.
    """
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    labels = np.concatenate([np.repeat(np.arange(k), 3), rng.integers(0, k, n_videos - 3 * k)])
    rng.shuffle(labels)
    centres = {m: rng.normal(size=(k, d)) for m, d in DIMS.items()}
    rows = {"video_id": [], "window_idx": [], "audio": [], "video": [], "text": [],
            "a_miss": [], "v_miss": [], "t_miss": [], "transcript": []}
    for v in range(n_videos):
        n = int(rng.integers(windows[0], windows[1] + 1))
        c = labels[v]
        for w in range(n):
            rows["video_id"].append(f"vid{v:03d}")
            rows["window_idx"].append(w)
            for m in DIMS:
                gain = signal if m != "video" else 0.3 * signal
                rows[m].append(gain * centres[m][c] + rng.normal(size=DIMS[m]))
            t_miss = bool(rng.random() < 0.3)
            rows["t_miss"].append(t_miss)
            rows["v_miss"].append(v % 7 == 0)
            rows["a_miss"].append(v % 11 == 0 and w == 0)
            word = f"kata{v if v > 1 else 0}_{w}"  # videos 0 and 1: same speech
            rows["transcript"].append(None if t_miss else word)
    vid = np.array(rows["video_id"])
    groups = [None] * n_videos
    groups[2] = groups[3] = "account-A"
    videos = pa.table({
        "video_id": [f"vid{v:03d}" for v in range(n_videos)],
        "split": ["train"] * n_videos,
        "label": [CLASSES[c] for c in labels],
        "raw_label": [CLASSES[c].lower() for c in labels],
        "group": pa.array(groups, pa.string()),
        "path": [f"/media/vid{v:03d}.mp4" for v in range(n_videos)],
        "duration_s": [10.0] * n_videos,
        "status": ["ok"] * n_videos,
        "error": pa.array([None] * n_videos, pa.string()),
    })
    # Videos 0 and 1 must share every window transcript: copy 0's onto 1 (window by window).
    tr = np.array(rows["transcript"], dtype=object)
    w_idx = np.array(rows["window_idx"])
    v0, v1 = np.flatnonzero(vid == "vid000"), np.flatnonzero(vid == "vid001")
    for i in v1:
        j = v0[w_idx[v0] == w_idx[i]]
        tr[i] = tr[j[0]] if len(j) else None
    windows_t = pa.table({
        "video_id": vid, "window_idx": pa.array(rows["window_idx"], pa.int32()),
        "start_s": np.array(rows["window_idx"]) * 0.5, "end_s": np.array(rows["window_idx"]) * 0.5 + 1.0,
        "transcript": pa.array(list(tr), pa.string()),
    })
    fusion = pa.table({
        "video_id": vid, "window_idx": pa.array(rows["window_idx"], pa.int32()),
        "audio": _array(np.stack(rows["audio"]), np.array(rows["a_miss"])),
        "video": _array(np.stack(rows["video"]), np.array(rows["v_miss"])),
        "text": _array(np.stack(rows["text"]), np.array(rows["t_miss"])),
    })
    return {"videos": videos, "windows": windows_t, "fusion_vectors": fusion}


def synthetic_con(**kwargs) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with the synthetic relations as tables (same names and types as the store)."""
    con = duckdb.connect(":memory:")
    for name, table in synthetic_tables(**kwargs).items():
        con.register(f"_{name}_arrow", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}_arrow")
        con.unregister(f"_{name}_arrow")
    return con


def test_synthetic_relations_have_store_types():
    con = synthetic_con(n_videos=30)
    types = {r[0]: r[1] for r in con.execute("DESCRIBE fusion_vectors").fetchall()}
    assert types["audio"] == "FLOAT[12]" and types["video"] == "FLOAT[3]" and types["text"] == "FLOAT[40]"
    n_null = con.execute("SELECT count(*) FROM fusion_vectors WHERE text IS NULL").fetchall()[0][0]
    assert n_null > 0
    labels = {r[0] for r in con.execute("SELECT DISTINCT label FROM videos").fetchall()}
    assert labels == set(CLASSES)
