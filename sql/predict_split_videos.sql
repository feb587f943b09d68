-- predict_split_videos: the videos of a split that predict scores: embedded
-- (status 'ok') and with at least one window (parameter: split). Failed videos
-- get no windows; the submission export gives them the training prior.
SELECT v.video_id
FROM videos AS v
WHERE v.split = ? AND v.status = 'ok'
  AND v.video_id IN (SELECT video_id FROM windows)
ORDER BY v.video_id;
