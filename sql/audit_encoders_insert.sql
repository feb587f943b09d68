-- audit_encoders_insert: one modality's row (parameters: modality_idx, modality, encoder_id, name, dim, decides).
INSERT INTO audit_encoders VALUES (?, ?, ?, ?, ?, ?);
