-- One encoder configuration's window vectors, read straight from its folder.
-- A video's windows are written together in one part, so "newest wins" is
-- decided per video on part file names (they start with the write time).
SELECT e.video_id, e.window_idx, e.embedding
FROM read_parquet({glob}, filename = true) AS e
SEMI JOIN (SELECT video_id, max(filename) AS filename FROM read_parquet({glob}, filename = true)
           GROUP BY video_id) AS newest USING (video_id, filename)
