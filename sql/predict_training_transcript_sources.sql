-- predict_training_transcript_sources: where the labelled videos' window texts came from
-- (videos.transcript_source, e.g. 'asr:faster-whisper:whisper-base-ct2/id#segment'), so
-- new files are windowed with the same text unit.
SELECT DISTINCT transcript_source
FROM videos
WHERE label IS NOT NULL;
