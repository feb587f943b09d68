-- window_predictions: per-window class probabilities (schema.CLASSES order) of each model.
-- predict writes whole videos per part; the newest part per (model, video) wins.
CREATE OR REPLACE VIEW window_predictions AS
SELECT p.model_id, p.video_id, p.window_idx, CAST(p.probs AS FLOAT[8]) AS probs, p.written_at
FROM read_parquet({glob}, union_by_name = true, filename = true) AS p
SEMI JOIN (SELECT model_id, video_id, max(filename) AS filename
           FROM read_parquet({glob}, union_by_name = true, filename = true)
           GROUP BY model_id, video_id) AS newest USING (model_id, video_id, filename);
