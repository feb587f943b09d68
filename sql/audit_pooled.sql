-- audit_pooled: one mean-pooled vector per (modality, video) over the windows
-- whose embedding is present, from the encoder fusion_vectors uses.
CREATE OR REPLACE TEMP TABLE audit_pooled AS
WITH flat AS (
    SELECT c.modality, e.video_id,
           generate_subscripts(CAST(e.embedding AS FLOAT[]), 1) AS i,
           unnest(CAST(e.embedding AS FLOAT[])) AS x
    FROM embeddings AS e
    JOIN audit_encoders AS c ON c.encoder_id = e.encoder_id
    JOIN windows AS w ON w.video_id = e.video_id AND w.window_idx = e.window_idx
    WHERE e.embedding IS NOT NULL
), means AS (
    SELECT modality, video_id, i, CAST(avg(x) AS FLOAT) AS x
    FROM flat
    GROUP BY modality, video_id, i
)
SELECT modality, video_id, list(x ORDER BY i) AS vec
FROM means
GROUP BY modality, video_id;
