-- feature_sets: the named feature set per modality that fusion_vectors serves, with its lineage.
SELECT f.modality, f.encoder_id, e.name, e.dim, e.version, e.weights_sha256, f.chosen_at
FROM feature_sets AS f
LEFT JOIN encoders AS e USING (encoder_id)
ORDER BY f.modality;
