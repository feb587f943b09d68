-- fusion_vectors: one row per window, the chosen encoder's vector per modality
-- (NULL where that modality is missing). Dims come from the encoders' lineage.
CREATE OR REPLACE VIEW fusion_vectors AS
SELECT w.video_id, w.window_idx,
       CAST(a.embedding AS FLOAT[{audio_dim}]) AS audio,
       CAST(v.embedding AS FLOAT[{video_dim}]) AS video,
       CAST(t.embedding AS FLOAT[{text_dim}]) AS text
FROM windows AS w
LEFT JOIN embeddings AS a
       ON a.encoder_id = {audio_encoder} AND a.video_id = w.video_id AND a.window_idx = w.window_idx
LEFT JOIN embeddings AS v
       ON v.encoder_id = {video_encoder} AND v.video_id = w.video_id AND v.window_idx = w.window_idx
LEFT JOIN embeddings AS t
       ON t.encoder_id = {text_encoder} AND t.video_id = w.video_id AND t.window_idx = w.window_idx;
