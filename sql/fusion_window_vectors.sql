-- fusion_window_vectors: window vectors of a chosen set of videos, in (video_id, window_idx) order.
-- Placeholders filled by fusion.data: <videos> = a sub-query returning video_id (e.g.
-- fusion_training_videos.sql); <columns> = the modality columns of fusion_vectors to load.
-- A NULL array means that modality is missing for the window.
SELECT f.video_id, f.window_idx, {columns}
FROM fusion_vectors AS f
WHERE f.video_id IN (SELECT video_id FROM ({videos}))
ORDER BY f.video_id, f.window_idx
