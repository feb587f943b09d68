-- video_predictions: window_predictions aggregated to one label per video by
-- every method; {union} is the UNION ALL of sql/aggregate_<method>.sql.
CREATE OR REPLACE VIEW video_predictions AS
SELECT model_id, video_id, method, emotion, confidence
FROM ({union});
