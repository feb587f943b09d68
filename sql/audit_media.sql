-- audit_media: SHA-256 and size of each video file that exists (the paths
-- placeholder: a list literal of existing files), so byte-identical files under different ids match.
CREATE OR REPLACE TEMP TABLE audit_media AS
SELECT v.video_id, b.size, sha256(b.content) AS sha256
FROM read_blob({paths}) AS b
JOIN videos AS v ON v.path = b.filename;
