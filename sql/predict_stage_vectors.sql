-- predict_stage_vectors: the window vectors of the videos to score (relation
-- _predict_videos(video_id)), staged once in a temp table so that scoring in
-- batches does not re-run the fusion_vectors joins per batch.
-- Placeholder columns: the model's modality columns of fusion_vectors.
CREATE OR REPLACE TEMP TABLE _predict_vectors AS
SELECT f.video_id, f.window_idx, {columns}
FROM fusion_vectors AS f
WHERE f.video_id IN (SELECT video_id FROM _predict_videos);
