-- labelled_transcript_sources: where the labelled videos' window texts came from
-- (videos.transcript_source: 'file:<path>' for window TSV files, 'file:<path>#<unit>' for
-- timed transcripts, 'asr:<backend>:<model>/<lang>#<unit>'), so that new windows get
-- their text the same way (featurestore.embed.matching_text_unit).
SELECT DISTINCT transcript_source
FROM videos
WHERE label IS NOT NULL;
