-- audit_transcripts: each video's window transcripts concatenated in window
-- order, whitespace collapsed; windows without speech (NULL, blank,
-- [NO_SPEECH]) are skipped and videos with no speech at all are left out,
-- so silence never counts as an identical transcript.
CREATE OR REPLACE TEMP TABLE audit_transcripts AS
SELECT video_id,
       trim(regexp_replace(string_agg(transcript, ' ' ORDER BY window_idx), '\s+', ' ', 'g')) AS transcript
FROM windows
WHERE transcript IS NOT NULL AND trim(transcript) <> '' AND trim(transcript) <> '[NO_SPEECH]'
GROUP BY video_id;
