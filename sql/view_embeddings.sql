-- embeddings: every encoder's window vectors, keyed by (encoder_id, video_id, window_idx).
-- embedding is NULL where the modality is missing; missing_reason says why.
CREATE OR REPLACE VIEW embeddings AS
SELECT encoder_id, video_id, window_idx, embedding, missing_reason, written_at
FROM read_parquet({glob}, hive_partitioning = true, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY encoder_id, video_id, window_idx ORDER BY written_at DESC) = 1;
