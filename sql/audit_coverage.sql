-- audit_coverage: per split and modality, the share of windows whose embedding
-- (from the encoder fusion_vectors uses) is present, and the missing reasons.
WITH w AS (
    SELECT v.split, w.video_id, w.window_idx
    FROM windows AS w JOIN videos AS v ON v.video_id = w.video_id
), joined AS (
    SELECT w.split, c.modality_idx, c.modality, c.name, c.encoder_id, c.dim,
           e.embedding IS NOT NULL AS present,
           CASE WHEN e.embedding IS NULL THEN coalesce(e.missing_reason, 'not embedded') END AS reason
    FROM w
    CROSS JOIN audit_encoders AS c
    LEFT JOIN embeddings AS e
           ON e.encoder_id = c.encoder_id AND e.video_id = w.video_id AND e.window_idx = w.window_idx
), reasons AS (
    SELECT split, modality, string_agg(reason || ': ' || n, '; ' ORDER BY n DESC, reason) AS missing_reasons
    FROM (SELECT split, modality, reason, count(*) AS n FROM joined WHERE reason IS NOT NULL
          GROUP BY split, modality, reason)
    GROUP BY split, modality
)
SELECT j.split, j.modality, any_value(j.name) AS encoder, any_value(j.encoder_id) AS encoder_id,
       any_value(j.dim) AS dim,
       count(*) AS n_windows,
       count(*) FILTER (WHERE j.present) AS n_present,
       round(count(*) FILTER (WHERE j.present) / count(*), 4) AS share_present,
       any_value(r.missing_reasons) AS missing_reasons
FROM joined AS j
LEFT JOIN reasons AS r ON r.split = j.split AND r.modality = j.modality
GROUP BY j.split, j.modality
ORDER BY j.split, any_value(j.modality_idx);
