-- segments: what Whisper said in each transcribed video (sentence-like units with their
-- times and, when timed, their words), in the video's own seconds. A video's segments
-- are written together in one part; the newest part per video wins, as for windows.
CREATE OR REPLACE VIEW segments AS
SELECT s.video_id, s.segment_idx, s.start_s, s.end_s, s.text, s.words, s.source,
       s.word_timestamps, s.duration_s, s.written_at
FROM read_parquet({glob}, union_by_name = true, filename = true) AS s
SEMI JOIN (SELECT video_id, max(filename) AS filename
           FROM read_parquet({glob}, union_by_name = true, filename = true)
           GROUP BY video_id) AS newest USING (video_id, filename);
