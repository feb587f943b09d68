-- fusion_vectors_for: fusion_vectors (sql/schema.sql) serving given feature sets instead of the
-- store's named choice, as a TEMP view on one connection: a model's own encoders at predict
-- time, or `tune-fusion --encoders`. Placeholders: {audio}, {video}, {text} = encoder_id
-- literals, or NULL for a modality left out.
CREATE OR REPLACE TEMP VIEW fusion_vectors AS
SELECT w.video_id, w.window_idx,
       a.embedding AS audio, v.embedding AS video, t.embedding AS text
FROM windows AS w
LEFT JOIN embeddings AS a
       ON a.video_id = w.video_id AND a.window_idx = w.window_idx AND a.encoder_id = {audio}
LEFT JOIN embeddings AS v
       ON v.video_id = w.video_id AND v.window_idx = w.window_idx AND v.encoder_id = {video}
LEFT JOIN embeddings AS t
       ON t.video_id = w.video_id AND t.window_idx = w.window_idx AND t.encoder_id = {text};
