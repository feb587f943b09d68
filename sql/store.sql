-- store: the feature store's own bookkeeping -- the commit counter, snapshots, the DuckLake
-- catalog's metadata that the spill layout, the file reader and compaction read -- read by
-- featurestore.sqlfiles.read_sql("store", name). The lake is attached as `store`
-- (featurestore.catalog.LAKE), so its metadata catalog is `__ducklake_metadata_store`: a
-- catalog name cannot be a prepared parameter (tests/test_sql.py checks the two agree).
-- DuckLake's procedures are called as table functions (SELECT * FROM f(...), what CALL f(...)
-- means), so that each query, parameters included, can be PREPAREd like every other.

-- name: bump_commit_counter
-- The first statement of every write transaction: two concurrent writers then always
-- conflict on this row, and the loser is retried (featurestore.writer).
UPDATE store_commits SET seq = seq + 1;

-- name: commit_rows
-- Whether the commit counter's one row exists yet (0 in a store being made).
SELECT count(*) FROM store_commits;

-- name: first_commit
-- The commit counter's one row, written when a store is made. Parameter: the schema version.
INSERT INTO store_commits VALUES (0, ?);

-- name: set_schema_version
-- Record the schema version an upgrade brought the store to. Parameter: the version.
UPDATE store_commits SET schema_version = ?;

-- name: snapshot_id
-- The newest snapshot of the lake.
SELECT max(snapshot_id) FROM store.snapshots();

-- name: snapshots
-- Every snapshot: id, time and what it changed.
SELECT snapshot_id, snapshot_time, changes FROM store.snapshots() ORDER BY snapshot_id;

-- name: encoder_dim
-- The width of one feature set's vectors. Parameter: the encoder id.
SELECT dim FROM encoders WHERE encoder_id = ?;

-- name: feature_set_rows
-- One feature set's window vectors through DuckDB (the file reader's fallback).
-- Parameter: the encoder id.
SELECT video_id, window_idx, missing_reason, embedding FROM embeddings WHERE encoder_id = ?;

-- name: listed_files
-- The data files (and their delete files) of a table as of a snapshot.
-- Parameters: the table name, the snapshot id.
SELECT data_file, delete_file
FROM ducklake_list_files('store', ?, snapshot_version => ?);

-- name: table_paths
-- Each live table's folder and its schema's, and whether each is relative to the parent.
SELECT t.table_name, s.path, s.path_is_relative, t.path, t.path_is_relative
FROM __ducklake_metadata_store.ducklake_table AS t
JOIN __ducklake_metadata_store.ducklake_schema AS s USING (schema_id)
WHERE t.end_snapshot IS NULL AND s.end_snapshot IS NULL;

-- name: partition_columns
-- The partition columns of each live table, in key order, with their transforms.
SELECT t.table_name, pc.partition_key_index, c.column_name, pc.transform
FROM __ducklake_metadata_store.ducklake_partition_info AS pi
JOIN __ducklake_metadata_store.ducklake_partition_column AS pc USING (partition_id, table_id)
JOIN __ducklake_metadata_store.ducklake_table AS t
  ON t.table_id = pi.table_id AND t.end_snapshot IS NULL
JOIN __ducklake_metadata_store.ducklake_column AS c
  ON c.table_id = pi.table_id AND c.column_id = pc.column_id AND c.end_snapshot IS NULL
WHERE pi.end_snapshot IS NULL;

-- name: live_data_files
-- How many data files the newest snapshot uses.
SELECT count(*) FROM __ducklake_metadata_store.ducklake_data_file WHERE end_snapshot IS NULL;

-- name: scheduled_files
-- Files that compaction replaced and that wait to be deleted: how many, and whether every one
-- has waited longer than the given age. Parameter: the age (an interval such as '1 hour').
SELECT count(*), max(CAST(schedule_start AS TIMESTAMPTZ)) < now() - CAST(? AS INTERVAL)
FROM __ducklake_metadata_store.ducklake_files_scheduled_for_deletion;

-- name: set_option
-- Set a DuckLake option of the lake (the store's Parquet settings, when it is made).
-- Parameters: the option name, its value.
SELECT * FROM store.set_option(?, ?);

-- name: rewrite_data_files
-- Compaction: rewrite the data files that carry many deleted rows.
SELECT * FROM ducklake_rewrite_data_files('store');

-- name: merge_adjacent_files
-- Compaction: merge small data files of a table into larger ones.
SELECT * FROM ducklake_merge_adjacent_files('store');

-- name: expire_snapshots
-- Expire the snapshots older than an age (time travel before then stops working).
-- Parameter: the age, an interval such as '30 days'.
SELECT * FROM ducklake_expire_snapshots('store', older_than => now() - CAST(? AS INTERVAL));

-- name: cleanup_old_files
-- Delete every file scheduled for deletion (compaction.py runs it only when each has waited
-- long enough: DuckLake's own age test deleted files scheduled a second earlier).
SELECT * FROM ducklake_cleanup_old_files('store', cleanup_all => true);

-- name: delete_orphaned_files
-- Delete data files that no snapshot lists and that are older than an age.
-- Parameter: the age, an interval such as '1 day'.
SELECT * FROM ducklake_delete_orphaned_files('store', older_than => now() - CAST(? AS INTERVAL));
