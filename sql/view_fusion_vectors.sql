-- fusion_vectors: one row per window, the chosen encoder's vector per modality
-- (NULL where that modality is missing). Dims come from the encoders' lineage;
-- each source reads only its own encoder's folder (sql/encoder_vectors.sql).
CREATE OR REPLACE VIEW fusion_vectors AS
SELECT w.video_id, w.window_idx,
       CAST(a.embedding AS FLOAT[{audio_dim}]) AS audio,
       CAST(v.embedding AS FLOAT[{video_dim}]) AS video,
       CAST(t.embedding AS FLOAT[{text_dim}]) AS text
FROM windows AS w
LEFT JOIN ({audio_source}) AS a ON a.video_id = w.video_id AND a.window_idx = w.window_idx
LEFT JOIN ({video_source}) AS v ON v.video_id = w.video_id AND v.window_idx = w.window_idx
LEFT JOIN ({text_source}) AS t ON t.video_id = w.video_id AND t.window_idx = w.window_idx;
