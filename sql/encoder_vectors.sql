-- One encoder configuration's window vectors, read straight from its folder.
-- A video's windows are written together in one part, so "newest wins" is
-- decided per video on part file names (they start with the write time).
SELECT video_id, window_idx, embedding
FROM read_parquet({glob}, filename = true)
WHERE filename IN (SELECT max(filename) FROM read_parquet({glob}, filename = true) GROUP BY video_id)
