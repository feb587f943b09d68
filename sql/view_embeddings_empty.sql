-- embeddings before any encoder has written: the same columns, no rows.
CREATE OR REPLACE VIEW embeddings AS
SELECT CAST(NULL AS VARCHAR) AS encoder_id, CAST(NULL AS VARCHAR) AS video_id,
       CAST(NULL AS INTEGER) AS window_idx, CAST(NULL AS FLOAT[]) AS embedding,
       CAST(NULL AS VARCHAR) AS missing_reason, CAST(NULL AS TIMESTAMPTZ) AS written_at
WHERE false;
