-- predict_batch_vectors: one batch of staged window vectors (relation
-- _predict_batch(video_id)), in (video_id, window_idx) order.
SELECT v.*
FROM _predict_vectors AS v
WHERE v.video_id IN (SELECT video_id FROM _predict_batch)
ORDER BY v.video_id, v.window_idx;
