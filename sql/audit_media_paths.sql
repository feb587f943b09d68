-- audit_media_paths: distinct media paths of the stored videos (the audit
-- hashes those that exist as files).
SELECT DISTINCT path FROM videos WHERE path IS NOT NULL ORDER BY path;
