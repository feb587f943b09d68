-- fusion_current_encoders: per modality, the encoder whose vectors fusion_vectors serves
-- (the most recently used configuration), for a model's lineage.
SELECT modality, encoder_id, name, dim, version, weights_sha256
FROM encoders
QUALIFY row_number() OVER (PARTITION BY modality ORDER BY last_used_at DESC) = 1
