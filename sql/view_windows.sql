-- windows: 1.0 s windows at a 0.5 s hop, with the transcript words overlapping each.
-- A video's windows are written together in one part; the newest part per video
-- wins (part file names start with the write time).
CREATE OR REPLACE VIEW windows AS
SELECT w.video_id, w.window_idx, w.start_s, w.end_s, w.transcript, w.written_at
FROM read_parquet({glob}, union_by_name = true, filename = true) AS w
SEMI JOIN (SELECT video_id, max(filename) AS filename
           FROM read_parquet({glob}, union_by_name = true, filename = true)
           GROUP BY video_id) AS newest USING (video_id, filename);
