-- export: the submission CSV of featurestore.export (cli.py export) and its checks.

-- name: train_prior
-- The class prior: the most frequent label among the labelled training videos (rule trains();
-- ties go to the first name alphabetically, which is also class order). Videos without a
-- prediction in a submission get this label.
SELECT label, count(*) AS n_videos
FROM videos
WHERE trains(status, label, split)
GROUP BY label
ORDER BY n_videos DESC, label
LIMIT 1;

-- name: split_counts
-- Videos of a split and how many of them predict scores (parameter: split).
SELECT count(*) AS n_videos, count(*) FILTER (WHERE scored) AS n_with_windows
FROM split_videos
WHERE split = ?;

-- name: manifest_split_counts
-- split_counts for a manifest's videos only (parameters: $split, $ids), and which of the ids
-- the split lacks (not embedded into this store, or stored under the other split).
SELECT count(*) AS n_videos, count(*) FILTER (WHERE v.scored) AS n_with_windows,
       list(i.id ORDER BY i.pos) FILTER (WHERE v.video_id IS NULL) AS missing
FROM (SELECT unnest($ids::VARCHAR[]) AS id, generate_subscripts($ids::VARCHAR[], 1) AS pos) AS i
LEFT JOIN split_videos AS v ON v.video_id = i.id AND v.split = $split;

-- name: submission_rows
-- The submission `id,emotion`: exactly one row per video of the split (every manifest id the
-- store knows), in manifest order; emotion is a class name from video_predictions of the
-- model/method, or the training prior where the video has no prediction. Parameters:
-- $model_id, $method, $split, $prior, and $ids: a manifest's video_ids, in its order, to export
-- only those (NULL: every video of the split). featurestore.export writes it with COPY (the
-- one dynamic part: COPY's target file cannot be a prepared parameter).
SELECT v.video_id AS id, coalesce(p.emotion, $prior) AS emotion
FROM split_videos AS v
LEFT JOIN video_predictions AS p
       ON p.video_id = v.video_id AND p.model_id = $model_id AND p.method = $method
WHERE v.split = $split AND ($ids::VARCHAR[] IS NULL OR list_contains($ids::VARCHAR[], v.video_id))
ORDER BY list_position($ids::VARCHAR[], v.video_id) NULLS LAST, v.manifest_row NULLS LAST, v.video_id;

-- name: fallbacks
-- Videos of a split that get the class prior because video_predictions has no row for them,
-- and why. Parameters: $model_id, $method, $split, $ids (as in submission_rows).
WITH pred AS (
    SELECT video_id FROM video_predictions WHERE model_id = $model_id AND method = $method
)
SELECT v.video_id, v.manifest_row, v.status,
       CASE
           WHEN v.status = 'failed' THEN 'embedding failed: ' || coalesce(x.error, 'no error recorded')
           WHEN NOT embedded(v.status) THEN 'not embedded (status ' || coalesce(v.status, 'NULL') || ')'
           WHEN NOT v.scored THEN 'no windows stored'
           ELSE 'no prediction from this model'
       END AS reason
FROM split_videos AS v
JOIN videos AS x USING (video_id)
WHERE v.split = $split AND v.video_id NOT IN (SELECT video_id FROM pred)
  AND ($ids::VARCHAR[] IS NULL OR list_contains($ids::VARCHAR[], v.video_id))
ORDER BY list_position($ids::VARCHAR[], v.video_id) NULLS LAST, v.manifest_row NULLS LAST, v.video_id;

-- name: model_coverage
-- Per model, how many videos of a split have a prediction (parameter: split).
SELECT p.model_id, count(DISTINCT p.video_id) AS n_videos
FROM window_predictions AS p
JOIN videos AS v ON v.video_id = p.video_id
WHERE v.split = ?
GROUP BY p.model_id
ORDER BY n_videos DESC, p.model_id;

-- name: check
-- Read a written submission back (parameters: the file, the list of class names): rows,
-- distinct ids, and any emotion that is not a class name (an integer code or NULL lands here).
SELECT count(*) AS n_rows,
       count(DISTINCT id) AS n_ids,
       list(DISTINCT coalesce(emotion, 'NULL'))
           FILTER (WHERE emotion IS NULL OR NOT list_contains(?, emotion)) AS bad_emotions
FROM read_csv(?, header = true, delim = ',', all_varchar = true);
