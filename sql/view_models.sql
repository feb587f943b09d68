-- models: fitted fusion models with their lineage (JSON).
CREATE OR REPLACE VIEW models AS
SELECT model_id, family, method, cv_macro_f1, path, encoders, lineage, written_at
FROM read_parquet({glob}, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY model_id ORDER BY written_at DESC) = 1;
