-- audit_videos: every stored video id (the audit compares all of them, whatever their status).
SELECT video_id FROM videos ORDER BY video_id;
