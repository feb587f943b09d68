-- aggregate_max: window -> video label of the single most confident window.
-- Input: relation window_predictions(model_id, video_id, window_idx, probs FLOAT[n]) with probs
-- in class order <classes> (filled by fusion.aggregate.aggregation_sql from schema.CLASSES).
-- A window's confidence is its max probability and its class the argmax (a tie inside one
-- window goes to the earlier class). The video takes the class of its most confident window.
-- Ties (several windows equally confident with different classes) are broken by higher mean
-- probability over the video's windows, then by the earlier class in class order; among
-- windows of the chosen class the lowest window_idx supplies probs.
-- Output, one row per (model_id, video_id): method, emotion, confidence = that window's max
-- probability, probs = that window's probabilities (DOUBLE[n]).
WITH classes AS (
    SELECT k, {classes}[k] AS emotion FROM range(1, len({classes}) + 1) AS r(k)
),
win AS (
    SELECT model_id, video_id, window_idx, probs,
           list_position(probs, list_max(probs)) AS top_k, list_max(probs) AS top_p
    FROM window_predictions
),
means AS (
    SELECT w.model_id, w.video_id, c.k, avg(w.probs[c.k]) AS mean_p
    FROM win AS w CROSS JOIN classes AS c
    GROUP BY w.model_id, w.video_id, c.k
),
best AS (
    SELECT w.*, m.mean_p FROM win AS w
    JOIN means AS m ON m.model_id = w.model_id AND m.video_id = w.video_id AND m.k = w.top_k
    QUALIFY row_number() OVER (PARTITION BY w.model_id, w.video_id
                               ORDER BY w.top_p DESC, m.mean_p DESC, w.top_k, w.window_idx) = 1
)
SELECT b.model_id, b.video_id, 'max' AS method, c.emotion, b.top_p::DOUBLE AS confidence,
       CAST(b.probs AS DOUBLE[]) AS probs
FROM best AS b JOIN classes AS c ON c.k = b.top_k
