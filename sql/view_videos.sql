-- videos: one row per video, the newest status written for it.
-- Every embed run appends a videos part; the latest written_at wins, so a
-- re-run or resume never needs to rewrite a file.
CREATE OR REPLACE VIEW videos AS
SELECT video_id, split, label, raw_label, "group", path, transcript_path, manifest_row,
       duration_s, status, error, transcript_source, written_at
FROM read_parquet({glob}, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY video_id ORDER BY written_at DESC) = 1;
