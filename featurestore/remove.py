"""Remove videos from a store: every row of theirs, in every table keyed by video_id, in one
writer transaction.

A store is the union of every manifest ever embedded into it; :func:`remove_videos` takes
videos (or a whole manifest's, :func:`featurestore.manifest.manifest_ids`) out again. The
delete is one commit through :meth:`FeatureStore.commit`, so it bumps the commit counter like
every writer (a concurrent embed of the same videos either commits first and is removed, or
retries against the removal) and a reader sees each video whole or not at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import duckdb

from .errors import InputError
from .sqlfiles import read_sql
from .store import FeatureStore, WriteBatch

__all__ = ["VIDEO_KEYED_TABLES", "RemoveReport", "remove_videos", "video_rows"]

#: Every table with per-video rows (a ``video_id`` column); tests/test_remove.py checks the
#: list against the store's schema, so a new table cannot be forgotten here.
VIDEO_KEYED_TABLES = ("videos", "windows", "segments", "embeddings", "video_features",
                      "window_predictions", "speaker_groups")


@dataclass
class RemoveReport:
    """What :func:`remove_videos` deleted: the videos and the rows per table."""

    video_ids: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)    # asked for, not in the store (missing_ok)

    def summary(self) -> str:
        per_table = ", ".join(f"{t} {n}" for t, n in self.rows.items() if n) or "no rows"
        line = f"removed {len(self.video_ids)} video(s) in one commit; rows deleted: {per_table}"
        if self.skipped:
            line += (f"; {len(self.skipped)} id(s) were not in the store (first: {self.skipped[0]!r}) "
                     "and were skipped")
        return line


def video_rows(con: duckdb.DuckDBPyConnection, video_ids: list[str]) -> dict[str, int]:
    """Rows per table of ``VIDEO_KEYED_TABLES`` that ``video_ids`` hold, at ``con``'s snapshot."""
    return dict(con.execute(read_sql("queries", "video_rows"), {"ids": list(video_ids)}).fetchall())


def remove_videos(store: FeatureStore, video_ids: Iterable[str], missing_ok: bool = False) -> RemoveReport:
    """Delete every row of ``video_ids`` from every table keyed by video_id, in one commit.

    Raises :class:`InputError` (nothing removed) when no id is given, or when an id is not in
    the store's ``videos`` table; with ``missing_ok`` (a whole manifest, some of whose rows
    were never stored) such ids are skipped and listed in the report, and only none found
    at all is an error. Models trained on removed videos stay; their labelled set no longer
    matches, so ``predict`` asks for a model trained on the current labels.
    """
    ids = list(dict.fromkeys(str(v) for v in video_ids))
    if not ids:
        raise InputError("no video ids to remove; give --videos ID[,ID...] or --manifest M.csv")
    report = RemoveReport(list(ids))

    def plan(con: duckdb.DuckDBPyConnection) -> WriteBatch:
        # Read inside the writer's transaction: the counts are those the commit deletes.
        known = {r[0] for r in con.execute(read_sql("queries", "known_videos"), [ids]).fetchall()}
        missing = [v for v in ids if v not in known]
        if missing and missing_ok and known:
            report.video_ids, report.skipped = [v for v in ids if v in known], missing
        elif missing:
            shown = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise InputError(f"no video {shown} in the store {store.root}; nothing was removed (check "
                             "the ids with `sql --store S \"SELECT video_id FROM videos\"`)")
        report.rows = video_rows(con, report.video_ids)
        return WriteBatch().delete_videos(report.video_ids, tables=VIDEO_KEYED_TABLES)

    store.commit(plan)
    return report
