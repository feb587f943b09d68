-- text_origins: where the embedded videos' window texts came from, counted per split and
-- labelled/unlabelled: 'transcript files' (the manifest's transcript column) or the ASR
-- identity 'asr:<backend>:<model>/<lang>' (videos.transcript_source less its text unit).
-- tune-fusion keeps the labelled videos' counts in a model's lineage, and predict
-- compares them with the predicted split's (featurestore.embed.text_origin says the same).
SELECT split,
       label IS NOT NULL AS labelled,
       CASE WHEN transcript_source LIKE 'file:%' THEN 'transcript files'
            ELSE regexp_replace(transcript_source, '#(word|segment)$', '') END AS origin,
       count(*) AS videos
FROM videos
WHERE status = 'ok' AND transcript_source IS NOT NULL
GROUP BY ALL
ORDER BY ALL;
