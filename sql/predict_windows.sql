-- predict_windows: window times and transcripts, in (video_id, window_idx) order
-- (predict-video joins them to the window probabilities it computed).
SELECT video_id, window_idx, start_s, end_s, transcript
FROM windows
ORDER BY video_id, window_idx;
