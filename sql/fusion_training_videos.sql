-- fusion_training_videos: the labelled videos that tune-fusion learns from.
-- Embedded successfully (status 'ok'), labelled, and not in the held-out 'test'
-- split (a NULL split counts as train). One row per video.
SELECT video_id, label, "group"
FROM videos
WHERE status = 'ok'
  AND label IS NOT NULL
  AND coalesce(split, 'train') <> 'test'
