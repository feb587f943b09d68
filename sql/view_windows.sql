-- windows: 1.0 s windows at a 0.5 s hop, with the transcript words overlapping each.
-- A video's windows are written together in one part; the newest part per video
-- wins (part file names start with the write time).
CREATE OR REPLACE VIEW windows AS
SELECT video_id, window_idx, start_s, end_s, transcript, written_at
FROM read_parquet({glob}, union_by_name = true, filename = true)
WHERE filename IN (SELECT max(filename) FROM read_parquet({glob}, union_by_name = true, filename = true)
                   GROUP BY video_id);
