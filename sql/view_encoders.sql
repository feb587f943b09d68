-- encoders: lineage of every encoder configuration that wrote embeddings.
-- A configuration is written again each time a run uses it, so the newest
-- row per modality is the encoder that fusion_vectors uses.
CREATE OR REPLACE VIEW encoders AS
SELECT encoder_id, name, modality, dim, version, config, weights_sha256, packages,
       min(written_at) OVER (PARTITION BY encoder_id) AS first_used_at,
       written_at AS last_used_at
FROM read_parquet({glob}, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY encoder_id ORDER BY written_at DESC) = 1;
