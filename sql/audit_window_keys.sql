-- audit_window_keys: the key of every stored window; the audit pools only embeddings of
-- windows that exist (as fusion_vectors joins them).
SELECT video_id, window_idx FROM windows;
