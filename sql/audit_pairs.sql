-- audit_pairs: every pair of videos that may be duplicates, with the evidence.
-- Candidates: same path, same file bytes, same transcript, or cosine
-- similarity >= the threshold of pooled vectors in any deciding modality.
-- kind: 'exact'      same path, same bytes, or every deciding modality both
--                    videos have is equal (to float rounding);
--       'near'       every deciding modality both videos have reaches the threshold;
--       'transcript' only the concatenated transcripts are identical.
-- Candidates that fit none of these are dropped. The sim_columns placeholder pivots the
-- per-modality similarity into one column per modality.
CREATE OR REPLACE TEMP TABLE audit_pairs AS
WITH cand AS (
    SELECT a.video_id AS video_a, b.video_id AS video_b
    FROM videos AS a JOIN videos AS b ON a.path = b.path AND a.video_id < b.video_id
    UNION
    SELECT a.video_id, b.video_id
    FROM audit_media AS a JOIN audit_media AS b ON a.sha256 = b.sha256 AND a.video_id < b.video_id
    UNION
    SELECT a.video_id, b.video_id
    FROM audit_transcripts AS a JOIN audit_transcripts AS b
         ON a.transcript = b.transcript AND a.video_id < b.video_id
    UNION
    SELECT a.video_id, b.video_id
    FROM audit_pooled AS a
    JOIN audit_pooled AS b ON a.modality = b.modality AND a.video_id < b.video_id
    JOIN audit_encoders AS c ON c.modality = a.modality AND c.decides
    WHERE list_cosine_similarity(a.vec, b.vec) >= {threshold}
), sims AS (
    SELECT c.video_a, c.video_b, pa.modality, e.decides,
           list_cosine_similarity(pa.vec, pb.vec) AS similarity,
           list_distance(pa.vec, pb.vec) <= 1e-4 * greatest(1.0, sqrt(list_inner_product(pa.vec, pa.vec))) AS equal
    FROM cand AS c
    JOIN audit_pooled AS pa ON pa.video_id = c.video_a
    JOIN audit_pooled AS pb ON pb.video_id = c.video_b AND pb.modality = pa.modality
    JOIN audit_encoders AS e ON e.modality = pa.modality
), per_pair AS (
    SELECT video_a, video_b,
           count(*) FILTER (WHERE decides) AS n_deciding,
           coalesce(bool_and(similarity >= {threshold}) FILTER (WHERE decides), false) AS all_near,
           coalesce(bool_and(equal) FILTER (WHERE decides), false) AS all_equal,
           {sim_columns}
    FROM sims
    GROUP BY video_a, video_b
), evidence AS (
    SELECT c.video_a, c.video_b,
           va.split AS split_a, vb.split AS split_b, va.label AS label_a, vb.label AS label_b,
           coalesce(va.path = vb.path, false) AS same_path,
           coalesce(ma.sha256 = mb.sha256, false) AS same_media,
           coalesce(ta.transcript = tb.transcript, false) AS same_transcript,
           coalesce(s.n_deciding, 0) AS n_deciding,
           coalesce(s.all_near, false) AS all_near,
           coalesce(s.all_equal, false) AS all_equal,
           s.* EXCLUDE (video_a, video_b, n_deciding, all_near, all_equal)
    FROM cand AS c
    JOIN videos AS va ON va.video_id = c.video_a
    JOIN videos AS vb ON vb.video_id = c.video_b
    LEFT JOIN audit_media AS ma ON ma.video_id = c.video_a
    LEFT JOIN audit_media AS mb ON mb.video_id = c.video_b
    LEFT JOIN audit_transcripts AS ta ON ta.video_id = c.video_a
    LEFT JOIN audit_transcripts AS tb ON tb.video_id = c.video_b
    LEFT JOIN per_pair AS s ON s.video_a = c.video_a AND s.video_b = c.video_b
)
SELECT CASE
           WHEN same_path OR same_media OR (n_deciding > 0 AND all_equal) THEN 'exact'
           WHEN n_deciding > 0 AND all_near THEN 'near'
           WHEN same_transcript THEN 'transcript'
       END AS kind,
       * EXCLUDE (n_deciding, all_near, all_equal)
FROM evidence
WHERE same_path OR same_media OR same_transcript OR (n_deciding > 0 AND all_near);
