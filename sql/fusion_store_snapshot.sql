-- fusion_store_snapshot: what a fusion model was trained on, for its lineage.
-- Row counts of the store's views and the newest written_at of videos and windows.
SELECT (SELECT count(*) FROM videos) AS n_videos,
       (SELECT count(*) FROM windows) AS n_windows,
       (SELECT count(*) FROM fusion_vectors) AS n_fusion_vectors,
       (SELECT CAST(max(written_at) AS VARCHAR) FROM videos) AS videos_written_at,
       (SELECT CAST(max(written_at) AS VARCHAR) FROM windows) AS windows_written_at
