-- pool_video_vectors: pools one modality column of fusion_vectors per video, for the
-- video-level ("pooled-*") fusion families. One row per video that has the modality.
-- Placeholders filled by fusion.data.pool_video_vectors: <modality> = a column of
-- fusion_vectors (audio, video or text); <videos> = a sub-query returning the video_ids.
-- mean / std: element-wise mean and population std (DOUBLE[]) over the windows where the
-- modality is present; n_present: how many windows have it. A video missing the modality in
-- every window has no row (the caller fills NaN and a 0 share).
WITH present AS (
    SELECT video_id, {modality} AS vec
    FROM fusion_vectors
    WHERE {modality} IS NOT NULL
      AND video_id IN (SELECT video_id FROM ({videos}))
),
elements AS (
    SELECT video_id, unnest(range(1, len(vec) + 1)) AS d, unnest(vec) AS x FROM present
),
per_dim AS (
    SELECT video_id, d, avg(x) AS m, stddev_pop(x) AS s FROM elements GROUP BY video_id, d
),
counts AS (
    SELECT video_id, count(*) AS n_present FROM present GROUP BY video_id
)
SELECT p.video_id, list(p.m ORDER BY p.d) AS mean, list(p.s ORDER BY p.d) AS std, c.n_present
FROM per_dim AS p JOIN counts AS c USING (video_id)
GROUP BY p.video_id, c.n_present
ORDER BY p.video_id
