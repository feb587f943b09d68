-- aggregate_weighted: window -> video label by confidence-weighted vote.
-- Input: relation window_predictions(model_id, video_id, window_idx, probs FLOAT[n]) with probs
-- in class order <classes> (filled by fusion.aggregate.aggregation_sql from schema.CLASSES).
-- Each window votes for its argmax class (a tie inside one window goes to the earlier class)
-- with weight = its max probability.
-- Winner: largest total weight; ties broken by higher mean probability over the video's
-- windows, then by the earlier class in class order.
-- Output, one row per (model_id, video_id): method, emotion, confidence = the winner's share of
-- the total weight, probs = weight share of every class (DOUBLE[n], sums to 1).
WITH classes AS (
    SELECT k, {classes}[k] AS emotion FROM range(1, len({classes}) + 1) AS r(k)
),
win AS (
    SELECT model_id, video_id, probs,
           list_position(probs, list_max(probs)) AS top_k, list_max(probs)::DOUBLE AS top_p
    FROM window_predictions
),
per_class AS (
    SELECT w.model_id, w.video_id, c.k, c.emotion,
           avg(w.probs[c.k]) AS mean_p,
           coalesce(sum(w.top_p) FILTER (WHERE w.top_k = c.k), 0) / sum(w.top_p) AS score
    FROM win AS w CROSS JOIN classes AS c
    GROUP BY w.model_id, w.video_id, c.k, c.emotion
),
vec AS (
    SELECT model_id, video_id, list(score ORDER BY k) AS probs FROM per_class GROUP BY model_id, video_id
),
best AS (
    SELECT * FROM per_class
    QUALIFY row_number() OVER (PARTITION BY model_id, video_id ORDER BY score DESC, mean_p DESC, k) = 1
)
SELECT b.model_id, b.video_id, 'weighted' AS method, b.emotion, b.score AS confidence, v.probs
FROM best AS b JOIN vec AS v USING (model_id, video_id)
