-- audit_media_empty: audit_media when no media is hashed (hashing off, or no file exists).
CREATE OR REPLACE TEMP TABLE audit_media (video_id VARCHAR, size BIGINT, sha256 VARCHAR);
