-- export_submission: the submission CSV `id,emotion`, written by COPY.
-- Exactly one row per video of {split} (every manifest id the store knows),
-- in manifest order; emotion is a class NAME from video_predictions of
-- {model_id}/{method}, or {prior} (the training class prior) where the video
-- failed to embed or has no prediction.
-- Placeholders are SQL literals spliced in by featurestore.export: COPY's
-- target cannot be a prepared parameter.
COPY (
    SELECT v.video_id AS id,
           coalesce(p.emotion, {prior}) AS emotion
    FROM videos AS v
    LEFT JOIN video_predictions AS p
           ON p.video_id = v.video_id AND p.model_id = {model_id} AND p.method = {method}
    WHERE v.split = {split}
    ORDER BY v.manifest_row NULLS LAST, v.video_id
) TO {out} (FORMAT csv, HEADER, DELIMITER ',');
