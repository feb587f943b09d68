-- fusion_video_transcripts: one string per video, every window transcript in window order,
-- lower-cased with whitespace collapsed. Two videos with the same string are the same speech
-- (a re-upload), so CV puts them in one group. Videos with no speech at all are left out:
-- silence alone must not merge unrelated videos.
SELECT video_id,
       regexp_replace(lower(string_agg(trim(transcript), ' ' ORDER BY window_idx)), '\s+', ' ', 'g') AS transcript
FROM windows
WHERE transcript IS NOT NULL AND trim(transcript) <> ''
GROUP BY video_id
