-- export_models: every fitted model, newest first. Predict and export, when no model is
-- named, take the newest whose lineage's labels_sha256 is the store's current labelled set
-- (fusion.export.labelled_set over fusion_training_videos).
SELECT model_id, family, method, cv_macro_f1, path, encoders, lineage, created_at
FROM models
ORDER BY created_at DESC NULLS LAST, model_id DESC;
