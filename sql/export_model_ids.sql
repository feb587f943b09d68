-- export_model_ids: every fitted model, best first.
SELECT model_id FROM models ORDER BY cv_macro_f1 DESC NULLS LAST, model_id;
