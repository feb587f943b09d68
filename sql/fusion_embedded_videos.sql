-- fusion_embedded_videos: every successfully embedded video (labelled or not), for prediction.
SELECT video_id, label, "group"
FROM videos
WHERE status = 'ok'
