-- audit_pooled: one mean-pooled vector per (modality, video) over the windows
-- whose embedding is present, from the encoder fusion_vectors uses, centred
-- by subtracting the mean over all videos of that modality. Centring matters:
-- sentence encoders are anisotropic (raw cosines of unrelated videos' e5
-- vectors have a median of 0.96 on the 498 real transcripts, centred ones
-- about 0), so a 0.98 threshold only means "near duplicate" after it.
-- Distances, and so exact equality, are unchanged by centring.
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
    SELECT modality, video_id, i, avg(x) AS x
    FROM flat
    GROUP BY modality, video_id, i
), centred AS (
    SELECT modality, video_id, i, x - avg(x) OVER (PARTITION BY modality, i) AS x
    FROM means
)
SELECT modality, video_id, list(x ORDER BY i) AS vec
FROM centred
GROUP BY modality, video_id;
