"""What embed's content-change check costs: the stat path against the full SHA-256.

``featurestore.media.input_fingerprint`` reuses a stored SHA-256 only while the input file's
size, mtime, ctime and inode all match what was stored, and hashes the whole file otherwise
(a new or replaced file, or every file with ``embed --rehash``). This measures, in one run on
the same disk with a warm page cache:

* the full SHA-256 of ``--mib`` MiB files, in seconds per GiB (what a new or replaced file,
  or ``--rehash``, costs);
* the stat path per unchanged file (``os.stat`` plus an open, as a re-run pays per video),
  in microseconds, and its ratio against hashing a reel-sized file (10 MiB).

    .venv/bin/python -m bench.input_fingerprint [--mib 256] [--files 2000] [--tmp DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from featurestore.media import file_sha256, input_fingerprint

COMMAND = ".venv/bin/python -m bench.input_fingerprint --mib {mib} --files {files}"
REEL_MIB = 10


def measure(mib: int = 256, files: int = 2000, tmp: str | None = None) -> dict[str, float]:
    """``{"sha256_s_per_gib", "stat_us_per_file", "reel_hash_ms"}`` measured on files under ``tmp``."""
    root = Path(tempfile.mkdtemp(prefix="fingerprint-", dir=tmp))
    try:
        big = root / "big.bin"
        with open(big, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        file_sha256(big)  # warm the page cache
        best = min(_timed(lambda: file_sha256(big)) for _ in range(3))
        s_per_gib = best * 1024 / mib
        small = root / "reel.bin"
        small.write_bytes(os.urandom(REEL_MIB << 20))
        stored = {}
        paths = []
        for i in range(files):
            p = root / f"f{i}.bin"
            p.write_bytes(b"x" * 64)
            paths.append(p)
            fp = input_fingerprint({"path": str(p)})
            stored[str(p)] = {"path": str(p), "transcript_path": None, "media_sha256": fp.sha256,
                              "media_size": fp.size, "media_mtime": fp.mtime,
                              "media_ctime_ns": fp.ctime_ns, "media_inode": fp.inode}
        t = time.perf_counter()
        for p in paths:
            input_fingerprint({"path": str(p), "transcript_path": None}, stored[str(p)])
        stat_us = (time.perf_counter() - t) / files * 1e6
        reel_ms = min(_timed(lambda: file_sha256(small)) for _ in range(3)) * 1e3
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"sha256_s_per_gib": s_per_gib, "stat_us_per_file": stat_us, "reel_hash_ms": reel_ms}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(quick: bool = False) -> list[dict]:
    mib, files = (32, 200) if quick else (256, 2000)
    m = measure(mib, files)
    cmd = COMMAND.format(mib=mib, files=files)
    return [
        {"figure": "embed's full SHA-256 of an input file (new, replaced, or --rehash)",
         "value": m["sha256_s_per_gib"], "unit": "s per GiB", "baseline": None, "ratio": None, "command": cmd},
        {"figure": "re-run check of an unchanged input (stat: size, mtime, ctime, inode; open)",
         "value": m["stat_us_per_file"], "unit": "µs per file", "baseline": m["reel_hash_ms"] * 1e3,
         "ratio": m["reel_hash_ms"] * 1e3 / m["stat_us_per_file"], "command": cmd},
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=256, help="size of the hashed file")
    ap.add_argument("--files", type=int, default=2000, help="unchanged files checked by stat")
    ap.add_argument("--tmp", help="folder for the files (default: the system's temp folder)")
    a = ap.parse_args(argv)
    m = measure(a.mib, a.files, a.tmp)
    print(f"full SHA-256: {m['sha256_s_per_gib']:.2f} s per GiB ({a.mib} MiB file, warm cache)")
    print(f"unchanged file, stat path: {m['stat_us_per_file']:.1f} µs per file ({a.files} files); "
          f"hashing a {REEL_MIB} MiB reel instead: {m['reel_hash_ms']:.1f} ms "
          f"({m['reel_hash_ms'] * 1e3 / m['stat_us_per_file']:.0f}x the stat path)")


if __name__ == "__main__":
    main()
