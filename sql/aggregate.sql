-- aggregate: window -> video labels by the four methods of featurestore.schema.AGGREGATIONS
-- (= aggregation_methods()), one definition for the store's video_predictions view and for
-- tuning (fusion.aggregate.Aggregator runs `install` on an in-memory DuckDB whose relation
-- window_predictions is the out-of-fold probabilities), so the tuned score is the score of the
-- deployed rule. Owned by fusion.aggregate; the store only runs `install` in its catalog.
--
-- Input: relation window_predictions(model_id, video_id, window_idx, probs FLOAT[n]) with
-- probs in class order emotion_classes(). A window's class is its argmax (a tie inside one
-- window goes to the earlier class), its confidence top_p its max probability.
-- Per (model_id, video_id, method) one row: emotion, confidence, probs (DOUBLE[n]):
--   majority  each window votes for its class; score = vote share (probs: every class's share)
--   weighted  the same vote weighted by top_p; score = weight share
--   mean      score = the class probability averaged over the windows (probs: the means)
--   max       score = the largest top_p among the windows of that class: the video takes the
--             class of its most confident window, probs = that window's probabilities (among
--             equally confident windows of the chosen class the lowest window_idx)
-- Winner: the highest score; ties broken by higher mean probability, then the earlier class
-- in class order (for mean the first tie-break is the score itself).

-- name: install#
-- The aggregation macro and the store's view over it (needs schema.sql's `rules` first).
CREATE OR REPLACE MACRO aggregate_windows(methods) AS TABLE
WITH classes AS (
    SELECT k, emotion_classes()[k] AS emotion FROM range(1, len(emotion_classes()) + 1) AS r(k)
), win AS (
    SELECT model_id, video_id, window_idx, probs,
           list_position(probs, list_max(probs)) AS top_k, list_max(probs)::DOUBLE AS top_p
    FROM window_predictions
), per_class AS (
    SELECT w.model_id, w.video_id, c.k, c.emotion,
           avg(w.probs[c.k]) AS mean_p,
           count(*) FILTER (WHERE w.top_k = c.k)::DOUBLE / count(*) AS vote_share,
           coalesce(sum(w.top_p) FILTER (WHERE w.top_k = c.k), 0) / sum(w.top_p) AS weight_share,
           max(w.top_p) FILTER (WHERE w.top_k = c.k) AS best_p,
           first(w.window_idx ORDER BY w.top_p DESC, w.window_idx) FILTER (WHERE w.top_k = c.k) AS best_window
    FROM win AS w CROSS JOIN classes AS c
    GROUP BY w.model_id, w.video_id, c.k, c.emotion
), scored AS (
    SELECT p.*, m.method,
           CASE m.method WHEN 'majority' THEN p.vote_share WHEN 'weighted' THEN p.weight_share
                         WHEN 'mean' THEN p.mean_p WHEN 'max' THEN p.best_p END AS score
    FROM per_class AS p CROSS JOIN (SELECT unnest(methods) AS method) AS m
), vec AS (
    SELECT model_id, video_id, method, list(score ORDER BY k) AS probs
    FROM scored GROUP BY model_id, video_id, method
), best AS (
    SELECT * FROM scored
    QUALIFY row_number() OVER (PARTITION BY model_id, video_id, method
                               ORDER BY score DESC NULLS LAST, mean_p DESC, k) = 1
)
SELECT b.model_id, b.video_id, b.method, b.emotion, b.score AS confidence,
       CASE WHEN b.method = 'max' THEN CAST(w.probs AS DOUBLE[]) ELSE v.probs END AS probs
FROM best AS b
JOIN vec AS v USING (model_id, video_id, method)
LEFT JOIN win AS w
       ON b.method = 'max' AND w.model_id = b.model_id AND w.video_id = b.video_id
      AND w.window_idx = b.best_window;

-- window_predictions aggregated to one label per video by every method.
CREATE OR REPLACE VIEW video_predictions AS
SELECT model_id, video_id, method, emotion, confidence
FROM aggregate_windows(aggregation_methods());

-- name: video_labels
-- Every row of aggregate_windows for the given methods (parameter: list of method names).
SELECT model_id, video_id, method, emotion, confidence, probs
FROM aggregate_windows(?::VARCHAR[]);
