-- video_evidence: per video, the evidence besides its vectors that decides duplicates
-- (featurestore.duplicates; CV leakage groups and the audit read this one query):
--   transcript  the speaking windows' texts in window order, joined by spaces. Windows without
--               speech (NULL, blank, [NO_SPEECH]) are skipped, and so is a window whose text
--               repeats the previous speaking window's: with segment windowing every window
--               inside a sentence carries the whole sentence, so without this a re-upload cut
--               a second longer or windowed with another hop would repeat a sentence a
--               different number of times. NULL for a video with no speech at all.
--   sha256      the media fingerprint the store computed on ingest (videos.media_sha256: the
--               file's SHA-256, or the transcript file's for a video without media).
--   path        the media path as the manifest named it.
-- Placeholders (featurestore.duplicates.video_evidence fills them from the relations that
-- exist, so a bare connection without these columns works): {ids} a relation of the wanted
-- video_id values; {videos} the videos relation or an empty stand-in; {windows} a relation
-- (video_id, window_idx, transcript); {sha256}, {path}: expressions over videos AS v.
WITH speech AS (
    SELECT video_id, window_idx, trim(transcript) AS text
    FROM {windows}
    WHERE transcript IS NOT NULL AND trim(transcript) NOT IN ('', '[NO_SPEECH]')
), runs AS (
    SELECT video_id, window_idx, text,
           text IS DISTINCT FROM lag(text) OVER (PARTITION BY video_id ORDER BY window_idx) AS starts
    FROM speech
), texts AS (
    SELECT video_id, string_agg(text, ' ' ORDER BY window_idx) AS transcript
    FROM runs
    WHERE starts
    GROUP BY video_id
)
SELECT i.video_id, t.transcript, {sha256} AS sha256, {path} AS path
FROM {ids} AS i
LEFT JOIN {videos} AS v ON v.video_id = i.video_id
LEFT JOIN texts AS t ON t.video_id = i.video_id
