-- window_predictions: per-window class probabilities (schema.CLASSES order) of each model.
CREATE OR REPLACE VIEW window_predictions AS
SELECT model_id, video_id, window_idx, CAST(probs AS FLOAT[8]) AS probs, written_at
FROM read_parquet({glob}, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY model_id, video_id, window_idx ORDER BY written_at DESC) = 1;
