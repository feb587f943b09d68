-- audit_setup: the scratch table of encoders the audit_* queries read: one row
-- per modality (schema.MODALITIES order; encoder_id NULL where the store has
-- none); `decides` marks modalities whose similarity decides near duplicates.
CREATE OR REPLACE TEMP TABLE audit_encoders (
    modality_idx INTEGER, modality VARCHAR, encoder_id VARCHAR, name VARCHAR, dim INTEGER, decides BOOLEAN
);
