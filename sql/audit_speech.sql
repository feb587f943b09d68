-- audit_speech: share of windows without speech (transcript NULL, blank or
-- [NO_SPEECH]) per split, and videos with no speech in any window.
WITH w AS (
    SELECT v.split, w.video_id,
           w.transcript IS NULL OR trim(w.transcript) IN ('', '[NO_SPEECH]') AS silent
    FROM windows AS w JOIN videos AS v ON v.video_id = w.video_id
), per_video AS (
    SELECT split, video_id, count(*) AS n_windows, count(*) FILTER (WHERE silent) AS n_silent
    FROM w GROUP BY split, video_id
)
SELECT split,
       CAST(sum(n_windows) AS BIGINT) AS n_windows,
       CAST(sum(n_silent) AS BIGINT) AS n_windows_no_speech,
       round(sum(n_silent) / sum(n_windows), 4) AS share_no_speech,
       count(*) AS n_videos,
       count(*) FILTER (WHERE n_silent = n_windows) AS n_videos_no_speech
FROM per_video
GROUP BY split
ORDER BY split;
