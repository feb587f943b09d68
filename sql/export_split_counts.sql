-- export_split_counts: videos of a split and how many of them have windows
-- (parameter: split).
SELECT count(*) AS n_videos,
       count(*) FILTER (WHERE v.video_id IN (SELECT video_id FROM windows)) AS n_with_windows
FROM videos AS v
WHERE v.split = ?;
