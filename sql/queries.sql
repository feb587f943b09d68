-- queries: the named queries of the other stages (store, embed, fusion, predict), read by
-- featurestore.sqlfiles.read_sql("queries", name). The shared rules they use (trains(),
-- speaks(), served_encoders, training_videos, split_videos...) are defined in schema.sql.

-- name: feature_sets
-- The named feature set per modality that fusion_vectors serves, with its lineage.
SELECT f.modality, f.encoder_id, e.name, e.dim, e.version, e.weights_sha256, f.chosen_at
FROM served_encoders AS f
LEFT JOIN encoders AS e USING (encoder_id)
ORDER BY f.modality;

-- name: encoder_inventory
-- Every stored encoder configuration, how many videos and windows it has embedded, and
-- whether fusion_vectors serves it (`cli.py use-encoders` changes that).
SELECT e.encoder_id, e.name, e.modality, e.dim,
       count(DISTINCT x.video_id) AS n_videos,
       count(x.video_id) AS n_windows,
       coalesce(f.encoder_id IS NOT NULL, false) AS in_fusion_vectors,
       e.registered_at
FROM encoders AS e
LEFT JOIN embeddings AS x ON x.encoder_id = e.encoder_id
LEFT JOIN served_encoders AS f ON f.encoder_id = e.encoder_id AND f.modality = e.modality
GROUP BY ALL
ORDER BY e.modality, e.encoder_id;

-- name: cached_segments
-- Whisper segments already in the store for videos about to be embedded, one row per video:
-- the media fingerprint it was transcribed from, its duration and its segments in order.
-- Parameters: the video ids, the ASR identity (segments.source), whether word timestamps are needed.
SELECT s.video_id, any_value(v.media_sha256) AS media_sha256, any_value(s.duration_s) AS duration_s,
       list({'start_s': s.start_s, 'end_s': s.end_s, 'text': s.text, 'words': s.words}
            ORDER BY s.segment_idx) AS segments
FROM segments AS s
JOIN videos AS v USING (video_id)
WHERE s.video_id IN (SELECT unnest(?::VARCHAR[]))
  AND s.source = ?
  AND (s.word_timestamps OR NOT ?)
GROUP BY s.video_id;

-- name: text_origins
-- Where the embedded videos' window texts came from, counted per split and labelled/unlabelled:
-- 'transcript files' (the manifest's transcript column) or the ASR identity
-- 'asr:<backend>:<model>/<lang>' (videos.transcript_source less its text unit). tune-fusion
-- keeps the labelled videos' counts in a model's lineage, and predict compares them with the
-- predicted split's (featurestore.embed.text_origin says the same).
SELECT split,
       label IS NOT NULL AS labelled,
       CASE WHEN transcript_source LIKE 'file:%' THEN 'transcript files'
            ELSE regexp_replace(transcript_source, '#(word|segment)$', '') END AS origin,
       count(*) AS videos
FROM videos
WHERE embedded(status) AND transcript_source IS NOT NULL
GROUP BY ALL
ORDER BY ALL;

-- name: labelled_transcript_sources
-- Where the labelled training videos' window texts came from (videos.transcript_source:
-- 'file:<path>' for window TSV files, 'file:<path>#<unit>' for timed transcripts,
-- 'asr:<backend>:<model>/<lang>#<unit>'), so that new windows get their text the same way
-- (featurestore.embed.matching_text_unit).
SELECT DISTINCT v.transcript_source
FROM videos AS v
WHERE v.video_id IN (SELECT video_id FROM training_videos);

-- name: video_evidence
-- Per wanted video (relation evidence_ids(video_id)), the evidence besides its vectors that
-- decides duplicates (featurestore.duplicates; CV leakage groups and the audit read this one
-- query), from relations videos and windows (featurestore.duplicates.video_evidence registers
-- empty stand-ins for absent ones, so a bare connection works):
--   transcript  "same transcript": the speaking windows' texts (speaks()) in window order,
--               joined by spaces, a window whose text repeats the previous speaking window's
--               skipped (with segment windowing every window inside a sentence carries the whole
--               sentence, so a re-upload cut a second longer or windowed with another hop would
--               repeat a sentence a different number of times); NULL for a video with no speech.
--               duplicates.normalise_transcript then gives the key two videos share.
--   sha256      the media fingerprint the store computed on ingest (videos.media_sha256).
--   path        the media path as the manifest named it.
-- A videos relation without those columns gives NULLs (to_json(...) ->> reads absent keys as NULL).
WITH runs AS (
    SELECT video_id, window_idx, trim(transcript) AS text,
           trim(transcript) IS DISTINCT FROM lag(trim(transcript))
               OVER (PARTITION BY video_id ORDER BY window_idx) AS starts
    FROM windows
    WHERE speaks(transcript)
), texts AS (
    SELECT video_id, string_agg(text, ' ' ORDER BY window_idx) AS transcript
    FROM runs
    WHERE starts
    GROUP BY video_id
)
SELECT i.video_id, t.transcript,
       to_json(v) ->> 'media_sha256' AS sha256, to_json(v) ->> 'path' AS path
FROM evidence_ids AS i
LEFT JOIN videos AS v ON v.video_id = i.video_id
LEFT JOIN texts AS t ON t.video_id = i.video_id;

-- name: training_videos
-- The labelled videos tune-fusion learns from (rule trains()), one row per video.
SELECT video_id, label, "group" FROM videos WHERE trains(status, label, split) ORDER BY video_id;

-- name: embedded_videos
-- Every embedded video (labelled or not), for prediction.
SELECT video_id, label, "group" FROM videos WHERE embedded(status) ORDER BY video_id;

-- name: window_vectors
-- Window vectors of the chosen videos (relation selected_videos(video_id): fusion.data makes
-- it a TEMP view of training_videos or embedded_videos; parameter: the modality columns of
-- fusion_vectors to load), in (video_id, window_idx) order. A NULL array means that modality
-- is missing for the window.
SELECT f.video_id, f.window_idx, COLUMNS(c -> list_contains(?::VARCHAR[], c))
FROM fusion_vectors AS f
WHERE f.video_id IN (SELECT video_id FROM selected_videos)
ORDER BY f.video_id, f.window_idx;

-- name: window_keys
-- The keys of the chosen videos' windows (relation selected_videos), in order.
SELECT w.video_id, w.window_idx
FROM windows AS w
WHERE w.video_id IN (SELECT video_id FROM selected_videos)
ORDER BY w.video_id, w.window_idx;

-- name: store_counts
-- Row counts of what a fusion model was trained on, for its lineage (beside the store
-- snapshot id, which identifies the data exactly).
SELECT (SELECT count(*) FROM videos) AS n_videos,
       (SELECT count(*) FROM fusion_vectors) AS n_fusion_vectors;

-- name: served_encoder
-- Lineage of one encoder configuration (parameter: encoder_id): for the record a model keeps
-- of the feature sets it was trained on, and the name predict-video rebuilds an encoder by.
SELECT encoder_id, name, dim, version, weights_sha256
FROM encoders
WHERE encoder_id = ?;

-- name: models
-- Every fitted model, newest first (model_recency). Predict and export, when no model is
-- named, take the newest whose lineage's labels_sha256 is the store's current labelled set
-- (fusion.export.labelled_set over training_videos).
SELECT m.model_id, m.family, m.method, m.cv_macro_f1, m.path, m.encoders, m.lineage, m.created_at
FROM models AS m
JOIN model_recency AS r USING (model_id)
ORDER BY r.recency;

-- name: newest_model
-- The newest fitted model's id (model_recency), whatever its labelled set.
SELECT model_id FROM model_recency WHERE recency = 1;

-- name: model
-- One named model's row (parameter: model_id).
SELECT model_id, family, method, cv_macro_f1, path, encoders, lineage
FROM models
WHERE model_id = ?;

-- name: split_videos
-- The videos of a split that predict scores (split_videos.scored; parameter: split). Failed
-- videos get no windows; the submission export gives them the training prior.
SELECT video_id FROM split_videos WHERE split = ? AND scored ORDER BY video_id;

-- name: stage_vectors#
-- The window vectors of the videos to score (relation predict_videos(video_id)), staged once in
-- a temp table so that scoring in batches does not re-run the fusion_vectors joins per batch
-- (parameter: the model's modality columns of fusion_vectors).
CREATE OR REPLACE TEMP TABLE predict_vectors AS
SELECT f.video_id, f.window_idx, COLUMNS(c -> list_contains(?::VARCHAR[], c))
FROM fusion_vectors AS f
WHERE f.video_id IN (SELECT video_id FROM predict_videos);

-- name: batch_vectors
-- One batch of staged window vectors (relation predict_batch(video_id)), in (video_id, window_idx) order.
SELECT v.*
FROM predict_vectors AS v
WHERE v.video_id IN (SELECT video_id FROM predict_batch)
ORDER BY v.video_id, v.window_idx;

-- name: encoder_lineage
-- Name, modality, dim and config of the encoder configurations a model was trained on
-- (parameter: list of encoder_ids).
SELECT encoder_id, name, modality, dim, config
FROM encoders
WHERE list_contains(?, encoder_id);

-- name: windows
-- Window times and transcripts, in (video_id, window_idx) order (predict-video joins them to
-- the window probabilities it computed).
SELECT video_id, window_idx, start_s, end_s, transcript
FROM windows
ORDER BY video_id, window_idx;

-- name: registered_encoders
-- Every registered encoder configuration's id.
SELECT encoder_id FROM encoders;

-- name: videos_of
-- The committed videos rows of the ids in the registered table _video_ids (what an embed run
-- plans against, and what a writer's transaction merges into: featurestore.embed).
SELECT * FROM videos WHERE video_id IN (SELECT video_id FROM _video_ids);

-- name: video_features_of
-- The committed video_features rows (one per video and encoder) of the ids in _video_ids.
SELECT * FROM video_features WHERE video_id IN (SELECT video_id FROM _video_ids);

-- name: window_grids_of
-- The committed window grid (window_idx, start_s, end_s) of the ids in _video_ids.
SELECT video_id, window_idx, start_s, end_s FROM windows
WHERE video_id IN (SELECT video_id FROM _video_ids) ORDER BY video_id, window_idx;

-- name: failed_labelled
-- Labelled non-test videos left out of training because their last embed failed.
SELECT count(*) FROM videos
WHERE trains('ok', label, split) AND NOT embedded(status);

-- name: speaker_encoder
-- The speaker stage's feature set (video_features.modality = 'speaker') covering the most
-- videos, ties to the newest: the voice vectors speaker groups are drawn from.
SELECT encoder_id, count(DISTINCT video_id) AS n_videos
FROM video_features
WHERE modality = 'speaker'
GROUP BY encoder_id
ORDER BY n_videos DESC, max(embedded_at) DESC NULLS LAST, encoder_id DESC
LIMIT 1;

-- name: voice_vectors
-- One voice vector per embedded video with speech: the mean of its speech windows' vectors of
-- the speaker feature set (parameter: encoder_id), element by element, and how many windows
-- entered it; beside the video's manifest group and label. Windows without speech are NULL
-- and left out.
WITH speech AS (
    SELECT e.video_id, e.window_idx, e.embedding
    FROM embeddings AS e
    JOIN videos AS v ON v.video_id = e.video_id AND embedded(v.status)
    WHERE e.encoder_id = ? AND e.embedding IS NOT NULL
), elements AS (
    SELECT video_id, generate_subscripts(embedding, 1) AS i, unnest(embedding) AS x
    FROM speech
), means AS (
    SELECT video_id, list(m ORDER BY i) AS voice
    FROM (SELECT video_id, i, avg(x) AS m FROM elements GROUP BY video_id, i)
    GROUP BY video_id
)
SELECT m.video_id, m.voice, n.n_speech_windows, nullif(trim(v."group"), '') AS "group", v.label
FROM means AS m
JOIN (SELECT video_id, count(*) AS n_speech_windows FROM speech GROUP BY video_id) AS n USING (video_id)
JOIN videos AS v USING (video_id)
ORDER BY m.video_id;

-- name: video_speakers
-- Every video's manifest group, inferred speaker group and the one to use (view video_speakers),
-- with its stored windows (what a speaker's normalisation statistics are computed over).
SELECT s.video_id, s."group", s.inferred_group, s.speaker, s.speaker_source, s.n_speech_windows,
       coalesce(w.n_windows, 0) AS n_windows
FROM video_speakers AS s
LEFT JOIN (SELECT video_id, count(*) AS n_windows FROM windows GROUP BY video_id) AS w USING (video_id)
ORDER BY s.video_id;

-- name: prediction_summary
-- `cli.py predict`: per aggregation method, how many videos of a split each emotion got from
-- a model and their mean confidence (parameters: model_id, split).
SELECT method, emotion, count(*) AS videos, round(avg(confidence), 3) AS mean_confidence
FROM video_predictions AS p
JOIN videos AS v USING (video_id)
WHERE p.model_id = ? AND v.split = ?
GROUP BY ALL
ORDER BY method, videos DESC;

-- name: model_catalog
-- `cli.py models list` and `models show`: every fitted model's row, with the store snapshot
-- its training data was read at, newest first (model_recency).
SELECT m.model_id, m.created_at, m.family, m.method, m.cv_macro_f1, m.path, m.encoders,
       m.lineage, m.snapshot_id
FROM models AS m
JOIN model_recency AS r USING (model_id)
ORDER BY r.recency;

-- name: known_videos
-- `cli.py remove`: which of the given video_ids the store's videos table holds (parameter:
-- a list of video_ids).
SELECT video_id FROM videos WHERE list_contains(?, video_id);

-- name: video_rows
-- `cli.py remove`: the rows each table keyed by video_id holds for the given videos
-- (parameter $ids: a list of video_ids), read in one statement so at one snapshot. The
-- tables are featurestore.remove.VIDEO_KEYED_TABLES.
SELECT 'videos' AS table_name, count(*) AS n_rows FROM videos WHERE list_contains($ids, video_id)
UNION ALL SELECT 'windows', count(*) FROM windows WHERE list_contains($ids, video_id)
UNION ALL SELECT 'segments', count(*) FROM segments WHERE list_contains($ids, video_id)
UNION ALL SELECT 'embeddings', count(*) FROM embeddings WHERE list_contains($ids, video_id)
UNION ALL SELECT 'video_features', count(*) FROM video_features WHERE list_contains($ids, video_id)
UNION ALL SELECT 'window_predictions', count(*) FROM window_predictions WHERE list_contains($ids, video_id)
UNION ALL SELECT 'speaker_groups', count(*) FROM speaker_groups WHERE list_contains($ids, video_id);

-- name: clustered_videos
-- The videos that have a speaker_groups row (a clustering replaces them all).
SELECT video_id FROM speaker_groups;

-- name: video_manifest_groups
-- Every video's manifest group (NULL: none), for the statistics pools of group normalisation.
SELECT video_id, "group" FROM videos;

-- name: selected_videos_in_order
-- The chosen videos (relation selected_videos, a TEMP view fusion.data makes of
-- training_videos or embedded_videos) in video_id order.
SELECT * FROM selected_videos ORDER BY video_id;
