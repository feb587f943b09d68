-- Whisper segments already in the store for videos about to be embedded, one row per
-- video: the media fingerprint it was transcribed from, its duration and its segments in order. Parameters: the
-- video ids, the ASR identity (segments.source), whether word timestamps are needed.
SELECT s.video_id, any_value(v.media_sha256) AS media_sha256, any_value(s.duration_s) AS duration_s,
       list({'start_s': s.start_s, 'end_s': s.end_s, 'text': s.text, 'words': s.words}
            ORDER BY s.segment_idx) AS segments
FROM segments AS s
JOIN videos AS v USING (video_id)
WHERE s.video_id IN (SELECT unnest(?::VARCHAR[]))
  AND s.source = ?
  AND (s.word_timestamps OR NOT ?)
GROUP BY s.video_id
