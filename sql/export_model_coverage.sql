-- export_model_coverage: per model, how many videos of a split have a
-- prediction (parameter: split). Lets export say which models can be exported.
SELECT p.model_id, count(DISTINCT p.video_id) AS n_videos
FROM window_predictions AS p
JOIN videos AS v ON v.video_id = p.video_id
WHERE v.split = ?
GROUP BY p.model_id
ORDER BY n_videos DESC, p.model_id;
