-- windows: 1.0 s windows at a 0.5 s hop, with the transcript words overlapping each.
CREATE OR REPLACE VIEW windows AS
SELECT video_id, window_idx, start_s, end_s, transcript, written_at
FROM read_parquet({glob}, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY video_id, window_idx ORDER BY written_at DESC) = 1;
