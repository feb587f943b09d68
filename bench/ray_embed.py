"""Local engine against ``embed --engine ray`` on the same clips, in one run, on this machine.

Makes reel-length talking-face clips (as ``bench.embed_speed`` does), embeds them into a
fresh store with each engine (every modality, Whisper base, segment windows, the same
``--chunk-size``), checks that both stores hold the same rows, and reports seconds of wall
time per minute of video, cold as a user runs ``cli.py embed`` (model loading included;
for Ray also its actors' start-up, with ``ray.init`` timed on its own), and each stage's
cost. The local engine then embeds the clips once more into a third store with its models
already loaded: its stage seconds there (this process's wall time per stage, no loading or
compiling billed) are the per-stage costs the README's scaling estimate uses. Ray's stage
seconds are worker seconds summed over the actors and tasks that ran at once (``commit``
is the driver's transactions).

    .venv/bin/python -m bench.ray_embed [--clips 12] [--seconds 30] [--chunk-size 4]

Writes ``bench/out/ray_embed.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from featurestore.embed import Embedder, build_embedder
from featurestore.manifest import read_manifest
from featurestore.store import FeatureStore

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


def same_rows(a: FeatureStore, b: FeatureStore) -> bool:
    """Whether two stores hold the same windows, segments and (to 1e-5) vectors."""
    for sql in ("SELECT * FROM windows ORDER BY video_id, window_idx",
                "SELECT * FROM segments ORDER BY video_id, segment_idx",
                "SELECT * EXCLUDE (updated_at) FROM videos ORDER BY video_id"):
        if not a.query(sql).equals(b.query(sql)):
            return False
    for encoder_id in a.query("SELECT encoder_id FROM encoders").column(0).to_pylist():
        ka, xa = a.load_embeddings(encoder_id)
        kb, xb = b.load_embeddings(encoder_id)
        if not ka.equals(kb) or not np.allclose(xa, xb, atol=1e-5, equal_nan=True):
            return False
    return True


def measure(n_clips: int, seconds: float, chunk_size: int, workdir: Path) -> dict:
    import ray

    from bench.embed_speed import make_reels
    from featurestore.ray_engine import embed_manifest_ray

    manifest = read_manifest(make_reels(workdir / "reels", n_clips, seconds))
    common = dict(chunk_size=chunk_size, progress=False, text_unit="segment", device="cpu")
    load = os.getloadavg()[0]
    t = time.perf_counter()
    local_store = FeatureStore(workdir / "local")
    embedder, spec = build_embedder(local_store, manifest, **common)
    embedder.log = lambda m: None
    local = embedder.run(manifest)
    local_wall = time.perf_counter() - t
    # Steady state: Whisper as loaded by the run above, librosa's kernels compiled in this
    # process, and new encoder instances (built outside the stage timers) so that no cache
    # of the first run's texts or frames serves the second.
    fresh = {m: spec.build_encoder(m, device="cpu") for m in embedder.encoders}
    warm = Embedder(FeatureStore(workdir / "warm"), fresh, embedder.transcriber, chunk_size=chunk_size,
                    progress=False, log=lambda m: None, text_unit="segment").run(manifest)

    t = time.perf_counter()
    ray.init(include_dashboard=False, logging_level=logging.WARNING)
    init_s = time.perf_counter() - t
    try:
        t = time.perf_counter()
        ray_store = FeatureStore(workdir / "ray")
        remote = embed_manifest_ray(ray_store, manifest, log=lambda m: None, **common)
        ray_wall = time.perf_counter() - t
    finally:
        ray.shutdown()
    return {"local": local, "warm": warm, "ray": remote, "local_wall_s": local_wall, "ray_wall_s": ray_wall,
            "ray_init_s": init_s, "same_rows": same_rows(local_store, ray_store),
            "load_average_before": load, "load_average_after": os.getloadavg()[0]}


def run(quick: bool = False, n_clips: int | None = None, seconds: float = 30.0,
        chunk_size: int = 4) -> list[dict]:
    n_clips = n_clips or (4 if quick else 12)
    cmd = f"python -m bench.ray_embed --clips {n_clips} --seconds {seconds:g} --chunk-size {chunk_size}"
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(n_clips, seconds, chunk_size, Path(tmp))
    local, warm, remote = m["local"], m["warm"], m["ray"]
    minutes = local.media_s / 60.0
    for name, report in (("local engine, cold", local), ("local engine, models loaded", warm),
                         ("ray engine, cold", remote)):
        print(f"{name}:\n{report.summary()}")
    print(f"ray.init {m['ray_init_s']:.1f} s; same rows in both stores: {m['same_rows']}; "
          f"load average {m['load_average_before']:.1f} -> {m['load_average_after']:.1f}")
    rows = [
        {"figure": f"embed, local engine, cold ({n_clips} clips, {local.media_s:.0f} s of media, "
                   f"chunk {chunk_size}, 2 cores)", "value": round(m["local_wall_s"] / minutes, 2),
         "unit": "s per min of video", "baseline": None, "ratio": None, "command": cmd},
        {"figure": "embed, --engine ray, cold (local Ray instance, actors start inside)",
         "value": round(m["ray_wall_s"] / minutes, 2), "unit": "s per min of video",
         "baseline": round(m["local_wall_s"] / minutes, 2),
         "ratio": round(m["local_wall_s"] / m["ray_wall_s"], 2), "command": cmd},
        {"figure": "ray.init of a local instance", "value": round(m["ray_init_s"], 1), "unit": "s",
         "baseline": None, "ratio": None, "command": cmd},
        {"figure": "embed, local engine, models already loaded", "value": round(warm.wall_s / minutes, 2),
         "unit": "s per min of video", "baseline": None, "ratio": None, "command": cmd},
    ]
    for engine, report in (("local", local), ("local warm", warm), ("ray", remote)):
        for stage, s in report.stage_s.items():
            rows.append({"figure": f"{engine} stage: {stage}" + (" (worker s)" if engine == "ray" else ""),
                         "value": round(s / minutes, 3), "unit": "s per min of video", "baseline": None,
                         "ratio": None, "command": cmd})
    blocks = -(-remote.n_embedded // chunk_size)
    rows.append({"figure": "ray: driver commit per block", "value": round(remote.stage_s["commit"] / max(blocks, 1), 3),
                 "unit": f"s per transaction of {chunk_size} videos", "baseline": None, "ratio": None,
                 "command": cmd})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ray_embed.json").write_text(json.dumps({
        "command": cmd, "same_rows": m["same_rows"], "ray_init_s": m["ray_init_s"],
        "local_wall_s": m["local_wall_s"], "ray_wall_s": m["ray_wall_s"], "media_s": local.media_s,
        "load_average": [m["load_average_before"], m["load_average_after"]],
        "local_stage_s": local.stage_s, "warm_stage_s": warm.stage_s, "warm_wall_s": warm.wall_s,
        "ray_stage_s": remote.stage_s, "ray_notes": remote.notes,
        "figures": rows}, indent=2, default=float))
    if not m["same_rows"]:
        raise RuntimeError("the two engines wrote different rows")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=12)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--chunk-size", type=int, default=4, help="videos per transaction (both engines) "
                   "and per model call")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    for row in run(quick=a.quick, n_clips=a.clips, seconds=a.seconds, chunk_size=a.chunk_size):
        print(f"{row['figure']:<78} {row['value']:>8} {row['unit']}")


if __name__ == "__main__":
    main()
