"""Manifests: CSV ``id,video[,emotion][,transcript][,group][,split]`` -> clean video rows.

Rows with an unknown label are rejected (named, counted) while the rest
proceed; duplicate ids or missing columns stop everything before any work.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import InputError
from .labels import UnknownLabelError, normalise_label
from .schema import SPLITS

REQUIRED_COLUMNS = ("id", "video")
OPTIONAL_COLUMNS = ("emotion", "transcript", "group", "split")


class ManifestError(InputError):
    """The manifest as a whole cannot be used (nothing was processed)."""


@dataclass(frozen=True)
class RejectedRow:
    """One manifest row that was not taken, and why."""

    row: int          # 1-based data row number (header excluded)
    video_id: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row} (id {self.video_id!r}): {self.message}"


@dataclass
class Manifest:
    """A parsed manifest.

    ``videos`` has one row per accepted video with columns ``video_id, split,
    label, raw_label, group, path, transcript_path, manifest_row, error``;
    ``error`` is set where the row was accepted but its media cannot be found
    (such videos still belong to the split, e.g. to get a submission row).
    """

    source: Path
    videos: pd.DataFrame
    rejected: list[RejectedRow] = field(default_factory=list)
    label_counts: Counter = field(default_factory=Counter)   # (raw, label) -> n

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        lines = [f"{self.source}: {len(self.videos)} rows accepted, {len(self.rejected)} rejected"]
        remapped = {k: n for k, n in self.label_counts.items() if k[0] != k[1]}
        for (raw, label), n in sorted(remapped.items()):
            lines.append(f"  mapped {raw!r} -> {label}: {n}")
        for r in self.rejected:
            lines.append(f"  rejected {r}")
        return "\n".join(lines)


def _read_text(path: Path, encoding: str | None) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    encodings = [encoding] if encoding else ["utf-8-sig"]
    for enc in encodings:
        try:
            return data.decode(enc)
        except UnicodeDecodeError as exc:
            raise ManifestError(
                f"manifest {path} is not valid {enc} (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                "save it as UTF-8, or pass its encoding explicitly (e.g. --encoding cp1252)"
            ) from exc
    raise AssertionError("unreachable")


def _is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def read_manifest(
    path: str | Path,
    split: str | None = None,
    videos_dir: str | Path | None = None,
    encoding: str | None = None,
) -> Manifest:
    """Parse and validate a manifest CSV.

    Parameters
    ----------
    path : the CSV file. Relative ``video``/``transcript`` paths resolve against its folder.
    split : ``"train"`` or ``"test"`` for every row, unless the CSV has a ``split`` column.
        Defaults to ``"train"`` where labels are present, else ``"test"``.
    videos_dir : where URL videos were downloaded, as ``{videos_dir}/{id}.mp4``.
    encoding : text encoding of the CSV (default UTF-8, with or without BOM).
    """
    path = Path(path)
    text = _read_text(path, encoding)
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        rows = list(reader)
    except csv.Error as exc:
        raise ManifestError(f"manifest {path} is not a readable CSV: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            f"manifest {path} lacks column(s) {', '.join(missing)}; found {header or 'no header'}. "
            "Expected a header 'id,video[,emotion][,transcript][,group][,split]'"
        )
    # Normalise header spelling once so lookups below are simple.
    rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items() if k is not None} for r in rows]

    ids = Counter(r["id"] for r in rows)
    dupes = sorted(i for i, n in ids.items() if n > 1)
    if dupes:
        raise ManifestError(
            f"manifest {path} has duplicate id(s) {', '.join(dupes[:10])}"
            + (" ..." if len(dupes) > 10 else "") + "; ids must be unique"
        )

    base = path.resolve().parent
    vdir = Path(videos_dir) if videos_dir else None
    out, rejected, label_counts = [], [], Counter()
    for n, r in enumerate(rows, start=1):
        vid = r["id"]
        if not vid:
            rejected.append(RejectedRow(n, vid, "empty id"))
            continue
        raw = r.get("emotion") or None
        try:
            label = normalise_label(raw)
        except UnknownLabelError as exc:
            rejected.append(RejectedRow(n, vid, str(exc)))
            continue
        if raw is not None:
            label_counts[(raw, label)] += 1
        row_split = (r.get("split") or split or ("train" if label else "test")).lower()
        if row_split not in SPLITS:
            rejected.append(RejectedRow(n, vid, f"unknown split {row_split!r}; use one of {', '.join(SPLITS)}"))
            continue
        video, error, media = r.get("video") or "", None, None
        if video and _is_url(video):
            candidate = vdir / f"{vid}.mp4" if vdir else None
            if candidate is not None and candidate.exists():
                media = str(candidate.resolve())
            else:
                error = (f"video is a URL ({video}); download it to "
                         f"{candidate if candidate else '<videos-dir>/' + vid + '.mp4'} and pass --videos-dir")
        elif video:
            p = Path(video)
            media = str((p if p.is_absolute() else base / p).resolve())
        transcript = r.get("transcript") or None
        if transcript:
            t = Path(transcript)
            transcript = str((t if t.is_absolute() else base / t).resolve())
        if not video and not transcript:
            rejected.append(RejectedRow(n, vid, "neither a video nor a transcript is given"))
            continue
        out.append({
            "video_id": vid, "split": row_split, "label": label, "raw_label": raw,
            "group": r.get("group") or None, "path": media, "transcript_path": transcript,
            "manifest_row": n, "error": error,
        })
    videos = pd.DataFrame(out, columns=[
        "video_id", "split", "label", "raw_label", "group", "path", "transcript_path",
        "manifest_row", "error",
    ], dtype=object)  # object keeps None as None (pandas 3 would turn it into NaN)
    return Manifest(source=path, videos=videos, rejected=rejected, label_counts=label_counts)


def manifest_ids(path: str | Path, encoding: str | None = None) -> list[str]:
    """Every id of the manifest at ``path``, in row order: the videos ``remove --manifest`` and
    ``export-submission --manifest`` act on. Rows rejected for their content (a bad label...)
    are included, since an earlier embed of another version of the manifest may have stored
    them. Raises :class:`ManifestError` for a manifest that cannot be read at all."""
    manifest = read_manifest(path, encoding=encoding)
    rows = [(int(r), str(v)) for r, v in zip(manifest.videos["manifest_row"], manifest.videos["video_id"])]
    rows += [(r.row, str(r.video_id)) for r in manifest.rejected]
    return [v for _, v in sorted(rows)]
