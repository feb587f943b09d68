-- export_best_model: the fitted model with the highest cross-validated macro-F1
-- (newest first on a tie). Predict and export use it when no model is named.
SELECT model_id, family, method, cv_macro_f1, path, encoders, lineage
FROM models
WHERE cv_macro_f1 IS NOT NULL
ORDER BY cv_macro_f1 DESC, created_at DESC, model_id
LIMIT 1;
