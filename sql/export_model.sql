-- export_model: one named model's row (parameter: model_id).
SELECT model_id, family, method, cv_macro_f1, path, encoders, lineage
FROM models
WHERE model_id = ?;
