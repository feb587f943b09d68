-- video_predictions: window_predictions aggregated to one label per video by
-- every method: the UNION ALL of sql/aggregate_<method>.sql, spliced in below.
CREATE OR REPLACE VIEW video_predictions AS
SELECT model_id, video_id, method, emotion, confidence
FROM ({union}) AS agg;
