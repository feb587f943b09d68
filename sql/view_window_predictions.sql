-- window_predictions: per-window class probabilities (schema.CLASSES order) of each model.
-- predict writes whole videos per part; the newest part per (model, video) wins.
CREATE OR REPLACE VIEW window_predictions AS
SELECT model_id, video_id, window_idx, CAST(probs AS FLOAT[8]) AS probs, written_at
FROM read_parquet({glob}, union_by_name = true, filename = true)
WHERE filename IN (SELECT max(filename) FROM read_parquet({glob}, union_by_name = true, filename = true)
                   GROUP BY model_id, video_id);
