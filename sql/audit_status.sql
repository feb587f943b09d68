-- audit_status: videos per split and embed status.
SELECT split, status, count(*) AS n_videos
FROM videos
GROUP BY split, status
ORDER BY split, status;
