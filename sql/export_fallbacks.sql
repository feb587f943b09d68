-- export_fallbacks: videos of a split that get the class prior in the
-- submission because video_predictions has no row for them, and why.
-- Parameters: model_id, method, split.
WITH pred AS (
    SELECT video_id FROM video_predictions WHERE model_id = $model_id AND method = $method
), win AS (
    SELECT video_id, count(*) AS n_windows FROM windows GROUP BY video_id
)
SELECT v.video_id, v.manifest_row, v.status,
       CASE
           WHEN v.status = 'failed' THEN 'embedding failed: ' || coalesce(v.error, 'no error recorded')
           WHEN v.status IS DISTINCT FROM 'ok' THEN 'not embedded (status ' || coalesce(v.status, 'NULL') || ')'
           WHEN w.n_windows IS NULL THEN 'no windows stored'
           ELSE 'no prediction from this model'
       END AS reason
FROM videos AS v
LEFT JOIN win AS w ON w.video_id = v.video_id
WHERE v.split = $split AND v.video_id NOT IN (SELECT video_id FROM pred)
ORDER BY v.manifest_row NULLS LAST, v.video_id;
