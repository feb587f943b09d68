-- aggregate_mean: window -> video label by mean probability.
-- Input: relation window_predictions(model_id, video_id, window_idx, probs FLOAT[n]) with probs
-- in class order <classes> (filled by fusion.aggregate.aggregation_sql from schema.CLASSES).
-- Winner: argmax of the class probabilities averaged over the video's windows; ties broken by
-- the earlier class in class order.
-- Output, one row per (model_id, video_id): method, emotion, confidence = the winner's mean
-- probability, probs = mean probability of every class (DOUBLE[n]).
WITH classes AS (
    SELECT k, {classes}[k] AS emotion FROM range(1, len({classes}) + 1) AS r(k)
),
per_class AS (
    SELECT w.model_id, w.video_id, c.k, c.emotion, avg(w.probs[c.k]) AS score
    FROM window_predictions AS w CROSS JOIN classes AS c
    GROUP BY w.model_id, w.video_id, c.k, c.emotion
),
vec AS (
    SELECT model_id, video_id, list(score ORDER BY k) AS probs FROM per_class GROUP BY model_id, video_id
),
best AS (
    SELECT * FROM per_class
    QUALIFY row_number() OVER (PARTITION BY model_id, video_id ORDER BY score DESC, k) = 1
)
SELECT b.model_id, b.video_id, 'mean' AS method, b.emotion, b.score AS confidence, v.probs
FROM best AS b JOIN vec AS v USING (model_id, video_id)
