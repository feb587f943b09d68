-- embeddings: every encoder's window vectors, keyed by (encoder_id, video_id, window_idx).
-- embedding is NULL where the modality is missing; missing_reason says why.
-- A video's windows are always written together in one part, so "newest wins"
-- is decided per (encoder, video) on part file names (they start with the write
-- time): the vectors themselves are never shuffled to de-duplicate.
CREATE OR REPLACE VIEW embeddings AS
SELECT e.encoder_id, e.video_id, e.window_idx, e.embedding, e.missing_reason, e.written_at
FROM read_parquet({glob}, hive_partitioning = true, union_by_name = true, filename = true) AS e
SEMI JOIN (SELECT encoder_id, video_id, max(filename) AS filename
           FROM read_parquet({glob}, hive_partitioning = true, union_by_name = true, filename = true)
           GROUP BY encoder_id, video_id) AS newest USING (encoder_id, video_id, filename);
