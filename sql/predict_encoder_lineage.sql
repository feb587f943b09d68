-- predict_encoder_lineage: name, modality, dim and config of the encoder
-- configurations a model was trained on (parameter: list of encoder_ids).
SELECT encoder_id, name, modality, dim, config
FROM encoders
WHERE list_contains(?, encoder_id);
