"""Compaction: fewer, larger data files and the deletion of files no snapshot needs.

Every step is DuckLake's own maintenance function, safe while other processes read and
write; each runs as its own transaction and is retried when it loses a race with a
writer's commit (it re-plans against the new files).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from .errors import StoreError
from .sqlfiles import read_sql
from .writer import with_retries

if TYPE_CHECKING:
    from .store import FeatureStore

__all__ = ["compact", "live_data_files"]


def compact(store: "FeatureStore", expire_older_than: str | None = None,
            cleanup_older_than: str = "1 hour", orphans_older_than: str = "1 day") -> dict[str, int]:
    """Merge small data files and rewrite files with many deletes, by DuckLake's own
    functions (safe while other processes read and write). With ``expire_older_than``
    (e.g. ``'30 days'``) snapshots older than that are expired and the files only they
    used are deleted: time travel before then, and models trained there, stop working.
    Files that compaction replaced are deleted once they have waited ``cleanup_older_than``
    (default ``'1 hour'``): a reader in the middle of a transaction may still read them
    (measured: deleting them at once made an open reader see an empty table).

    Data files no snapshot lists (orphans: written by a run killed before its commit, e.g.
    a Ray worker's block whose driver died) are deleted once ``orphans_older_than`` old
    (default ``'1 day'``). A younger one may belong to a commit still in flight (a writer
    writes its files before it commits; a Ray block's files wait for the driver), and
    deleting it would leave that commit pointing at a missing file: measured, a compact
    with a zero age beside two embeds broke the store for every later write.

    Returns counts: data files before and after, snapshots expired, files deleted, orphan
    files deleted, and files waiting to be deleted by a later ``compact``.
    """
    con = store.connect(read_only=False)

    def call(name: str, *params: str) -> list:
        # Each maintenance step is its own transaction; one that loses a race with a
        # writer's commit is run again (it re-plans against the new files).
        return with_retries(lambda: con.execute(read_sql("store", name), list(params)).fetchall())

    try:
        before = live_data_files(con)
        call("rewrite_data_files")
        call("merge_adjacent_files")
        expired = len(call("expire_snapshots", expire_older_than)) if expire_older_than else 0
        # Files that no snapshot needs any more (merged or rewritten, and expired), once no
        # open reader can still be reading them. The age test is ours: with a SQLite catalog
        # ducklake_cleanup_old_files(older_than => ...) deleted files scheduled a second
        # earlier (DuckLake 1.5.5), so it runs only when every scheduled file is old enough.
        n_scheduled, all_old = con.execute(read_sql("store", "scheduled_files"), [cleanup_older_than]).fetchone()
        deleted = len(call("cleanup_old_files")) if n_scheduled and all_old else 0
        orphans = len(call("delete_orphaned_files", orphans_older_than))
        after = live_data_files(con)
        waiting = con.execute(read_sql("store", "scheduled_files"), [cleanup_older_than]).fetchone()[0]
    except duckdb.Error as exc:
        raise StoreError(f"compact {store.root}: {exc}") from exc
    finally:
        con.close()
    return {"data_files_before": before, "data_files_after": after,
            "snapshots_expired": expired, "files_deleted": deleted, "orphans_deleted": orphans,
            "files_waiting": int(waiting)}


def live_data_files(con: duckdb.DuckDBPyConnection) -> int:
    """How many data files the newest snapshot of the store on ``con`` uses."""
    return int(con.execute(read_sql("store", "live_data_files")).fetchone()[0])
