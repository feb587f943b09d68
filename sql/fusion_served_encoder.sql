-- fusion_served_encoder: lineage of one encoder configuration (parameter: encoder_id), for
-- the record a model keeps of the feature sets it was trained on.
SELECT encoder_id, name, dim, version, weights_sha256
FROM encoders
WHERE encoder_id = ?
