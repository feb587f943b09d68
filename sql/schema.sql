-- schema: the feature store's tables, the shared rules (macros, one definition each) and
-- the views, in one file of script queries (aiosql's convention, # after a name marks a script; read by
-- featurestore.sqlfiles.read_sql). featurestore.store runs `tables`, `rules`, `views` and
-- aggregate.sql's `install` inside the attached lake when it creates a store (and again when
-- STORE_SCHEMA_VERSION grows), so the macros and views are stored in the catalog and plain
-- duckdb sees them too. A connection without the catalog (an in-memory DuckDB) gets `rules`
-- as TEMP macros from featurestore.sqlfiles.define_rules.
--
-- Row ownership: a write replaces whole groups of rows, never single rows, and the keys of
-- those groups are featurestore.store.REPLACE_KEYS (videos by video_id, windows by video_id,
-- embeddings by (encoder_id, video_id), ...). Vectors are FLOAT[] (DuckLake has no fixed-size
-- arrays); their length is the encoder's dim in `encoders`.
--
-- What concurrent writers are guaranteed: any number of `embed` (of any modalities and
-- encoders, local or Ray), `predict`, `tune-fusion`, `compact` and `sql --write` processes, on
-- the same or different videos, at once: every row each of them computed is there afterwards,
-- and none is duplicated. Two rules make that so:
--   * Rows of one feature set (embeddings, video_features of an encoder_id), of one ASR source
--     (segments) and of one model (window_predictions, models) have one kind of writer: only a
--     run of that encoder, source or model writes them; speaker_groups has one too, the
--     clustering step (featurestore.speakers.infer_speaker_groups, after embed or `speakers`).
--   * The rows every embed run touches, a video's `videos` row and its `windows`, are merged,
--     never replayed: the run reads them inside its own transaction and writes back only what
--     it computed (an audio run keeps the text run's transcript and transcript_source; a text
--     run keeps the status of modalities it did not run). Every write transaction bumps
--     store_commits, so of two concurrent writers one always loses the commit race; the loser
--     rolls back and merges again against the winner's committed rows.
-- Newest wins only between writers of the same thing: the last manifest's facts (label, split,
-- group) and, between two text sources, the last text run's transcripts.

-- name: tables#
-- Every table of the store.
-- One row per manifest video: manifest facts, the media fingerprint the store's rows were
-- computed from, and the last embed run's outcome.
CREATE TABLE IF NOT EXISTS videos (
    video_id VARCHAR NOT NULL,
    split VARCHAR,
    label VARCHAR,              -- one of the classes, or NULL (unlabelled)
    raw_label VARCHAR,          -- as written in the manifest
    "group" VARCHAR,            -- speaker / account / series: CV keeps a group on one side
    path VARCHAR,               -- media file as the manifest named it
    transcript_path VARCHAR,
    manifest_row INTEGER,
    media_size BIGINT,          -- bytes
    media_mtime DOUBLE,         -- seconds since the epoch
    media_sha256 VARCHAR,       -- content hash of the media (or of the transcript file without media)
    media_ctime_ns BIGINT,      -- status-change time and inode of that file when it was hashed: the
    media_inode BIGINT,         -- hash is reused only while size, mtime, ctime and inode all match
    duration_s DOUBLE,
    window_s DOUBLE,            -- window geometry of the video's windows (seconds)
    hop_s DOUBLE,
    status VARCHAR,             -- 'ok' | 'failed' (failed while failed_modalities is not empty)
    error VARCHAR,              -- the latest failure's message
    failed_modalities VARCHAR[], -- the modalities whose last run failed; each later run re-tries them
    transcript_source VARCHAR,  -- 'file:<path>[#unit]', 'asr:<backend>:<model>/<lang>#<unit>' or NULL
    updated_at TIMESTAMP WITH TIME ZONE
);

-- The windows of each video (one geometry per video) and the text each window carries.
CREATE TABLE IF NOT EXISTS windows (
    video_id VARCHAR NOT NULL,
    window_idx INTEGER NOT NULL,
    start_s DOUBLE,
    end_s DOUBLE,
    transcript VARCHAR          -- NULL until a text run gives the window its text
);

-- What Whisper said, per text source, so a new text unit or text encoder re-windows
-- without transcribing again.
CREATE TABLE IF NOT EXISTS segments (
    video_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,    -- 'asr:<backend>:<model>/<lang>'
    segment_idx INTEGER,
    start_s DOUBLE,
    end_s DOUBLE,
    text VARCHAR,
    words STRUCT(start_s DOUBLE, end_s DOUBLE, text VARCHAR)[],
    word_timestamps BOOLEAN,
    duration_s DOUBLE
);

-- Window vectors of every feature set (one encoder configuration = one encoder_id).
CREATE TABLE IF NOT EXISTS embeddings (
    encoder_id VARCHAR NOT NULL,
    video_id VARCHAR NOT NULL,
    window_idx INTEGER NOT NULL,
    embedding FLOAT[],          -- NULL where the modality is missing in that window
    missing_reason VARCHAR      -- why it is missing (no audio track, no face, no speech...)
);
-- (Partitioned by encoder_id, script `partitions`: a full-matrix load reads only one feature
-- set's data files.)

-- Which feature sets each video has, and what they were computed from: a video is done for
-- an encoder when its row here matches the media fingerprint, the window geometry and (text)
-- the text source of the run at hand.
CREATE TABLE IF NOT EXISTS video_features (
    video_id VARCHAR NOT NULL,
    encoder_id VARCHAR NOT NULL,
    modality VARCHAR,
    media_sha256 VARCHAR,
    window_s DOUBLE,
    hop_s DOUBLE,
    text_source VARCHAR,
    n_windows INTEGER,
    embedded_at TIMESTAMP WITH TIME ZONE
);

-- Lineage of every encoder configuration that wrote embeddings.
CREATE TABLE IF NOT EXISTS encoders (
    encoder_id VARCHAR NOT NULL,
    name VARCHAR,
    modality VARCHAR,
    dim INTEGER,
    version VARCHAR,
    config VARCHAR,             -- JSON
    weights_sha256 VARCHAR,
    packages VARCHAR,           -- JSON object: package -> version
    registered_at TIMESTAMP WITH TIME ZONE
);

-- The named choice of which feature set serves each modality in fusion_vectors
-- (`cli.py use-encoders`); embed sets a modality's choice only when it has none yet.
CREATE TABLE IF NOT EXISTS feature_sets (
    modality VARCHAR NOT NULL,
    encoder_id VARCHAR NOT NULL,
    chosen_at TIMESTAMP WITH TIME ZONE
);

-- Fitted fusion models. `encoders` is a JSON object modality -> encoder_id they read,
-- `snapshot_id` the store snapshot their training data was read at.
CREATE TABLE IF NOT EXISTS models (
    model_id VARCHAR NOT NULL,
    family VARCHAR,
    method VARCHAR,             -- default window -> video aggregation
    cv_macro_f1 DOUBLE,
    path VARCHAR,               -- model directory, relative to the store
    encoders VARCHAR,           -- JSON object: modality -> encoder_id
    lineage VARCHAR,            -- JSON
    snapshot_id BIGINT,
    created_at TIMESTAMP WITH TIME ZONE
);

-- Per-window class probabilities of each model, in class order emotion_classes().
CREATE TABLE IF NOT EXISTS window_predictions (
    model_id VARCHAR NOT NULL,
    video_id VARCHAR NOT NULL,
    window_idx INTEGER NOT NULL,
    probs FLOAT[]
);

-- Speaker groups inferred from the voice (featurestore.speakers, the clustering step: its
-- only writer, which replaces every row at once): per video with speech, its cluster of the
-- speaker stage's voice vectors and how the cluster was drawn. A video without speech has no
-- row. The manifest's videos."group" is never touched; video_speakers puts the two side by side.
CREATE TABLE IF NOT EXISTS speaker_groups (
    video_id VARCHAR NOT NULL,
    speaker_group VARCHAR,      -- 'voice-<n>': one cluster of similar voices
    n_speech_windows INTEGER,   -- windows whose voice vector entered the video's mean
    encoder_id VARCHAR,         -- the speaker stage's feature set the vectors came from
    threshold DOUBLE,           -- cosine-distance cut of the average-linkage clustering
    threshold_source VARCHAR,   -- 'manifest groups (...)' or 'default (...)': how it was chosen
    clustered_at TIMESTAMP WITH TIME ZONE
);

-- One row that every write transaction bumps: two concurrent writers then always conflict
-- on it, and the loser rolls back and re-plans its shared rows against the winner's (see Row
-- ownership above), so no two transactions can both write a video's rows unseen by each other.
CREATE TABLE IF NOT EXISTS store_commits (
    seq BIGINT NOT NULL,
    schema_version INTEGER NOT NULL
);

-- name: partitions#
-- Table partitioning, set once when a store is made (setting it again would start a new
-- partition layout).
ALTER TABLE embeddings SET PARTITIONED BY (encoder_id);

-- name: upgrade_columns#
-- Columns added since schema 1, for a store made before them (`tables` creates them in a new
-- store; IF NOT EXISTS makes this a no-op there).
ALTER TABLE videos ADD COLUMN IF NOT EXISTS media_ctime_ns BIGINT;
ALTER TABLE videos ADD COLUMN IF NOT EXISTS media_inode BIGINT;
ALTER TABLE videos ADD COLUMN IF NOT EXISTS failed_modalities VARCHAR[];

-- name: rules#
-- The shared rules as scalar macros (no table in them, so any connection can define them).
-- emotion_classes(): the class names in class order; featurestore.schema.CLASSES is the same
-- list (tests/test_sql.py asserts it), the order of every probs vector.
CREATE OR REPLACE MACRO emotion_classes() AS
    ['Anger', 'Fear', 'Joy', 'Neutral', 'Proud', 'Sadness', 'Surprise', 'Trust'];
-- aggregation_methods(): the window -> video aggregations (featurestore.schema.AGGREGATIONS).
CREATE OR REPLACE MACRO aggregation_methods() AS ['majority', 'weighted', 'mean', 'max'];
-- speaks(transcript): a window carries speech: its text is not NULL, blank or [NO_SPEECH].
CREATE OR REPLACE MACRO speaks(transcript) AS
    transcript IS NOT NULL AND trim(transcript) NOT IN ('', '[NO_SPEECH]');
-- embedded(status): the video's last embed run succeeded (it has windows and vectors to score).
CREATE OR REPLACE MACRO embedded(status) AS coalesce(status = 'ok', false);
-- trains(status, label, split): a labelled training video, what tune-fusion learns from and
-- what a model's labelled set is: embedded, labelled, and not in the held-out 'test' split
-- (a NULL split counts as train).
CREATE OR REPLACE MACRO trains(status, label, split) AS
    embedded(status) AND label IS NOT NULL AND coalesce(split, 'train') <> 'test';

-- name: views#
-- The views over the tables (after `tables`: DuckDB binds a view when it is created).
-- served_encoders: the feature set that serves each modality in fusion_vectors, one row per
-- modality. "Newest wins": the latest choice (chosen_at), ties to the larger encoder_id.
-- (feature_sets holds one row per modality, REPLACE_KEYS; this is the one reading of it.)
CREATE OR REPLACE VIEW served_encoders AS
SELECT modality, encoder_id, chosen_at
FROM feature_sets
QUALIFY row_number() OVER (PARTITION BY modality ORDER BY chosen_at DESC NULLS LAST, encoder_id DESC) = 1;

-- model_recency: every fitted model's rank, 1 = the newest ("newest wins": created_at, ties
-- and NULL times to the larger model_id after every timed model).
CREATE OR REPLACE VIEW model_recency AS
SELECT model_id, row_number() OVER (ORDER BY created_at DESC NULLS LAST, model_id DESC) AS recency
FROM models;

-- Which videos: training_videos (the labelled videos tune-fusion learns from, rule trains()),
-- embedded_videos (every embedded video, labelled or not: what can be predicted), and
-- split_videos (every video of each split; `scored`: embedded with at least one window, the
-- videos predict scores; the others get the training prior in a submission).
CREATE OR REPLACE VIEW training_videos AS
SELECT video_id, label, "group" FROM videos WHERE trains(status, label, split);

CREATE OR REPLACE VIEW embedded_videos AS
SELECT video_id, label, "group" FROM videos WHERE embedded(status);

CREATE OR REPLACE VIEW split_videos AS
SELECT v.split, v.video_id, v.manifest_row, v.status,
       embedded(v.status) AND v.video_id IN (SELECT video_id FROM windows) AS scored
FROM videos AS v;

-- video_speakers: each video's manifest group beside its inferred speaker group; `speaker` is
-- the one to use, the manifest's whenever it has one (a manifest group always wins), and
-- `speaker_source` says which ('manifest', 'inferred', NULL: no group and no speech).
CREATE OR REPLACE VIEW video_speakers AS
SELECT v.video_id, v."group", s.speaker_group AS inferred_group, s.n_speech_windows,
       coalesce(nullif(trim(v."group"), ''), s.speaker_group) AS speaker,
       CASE WHEN nullif(trim(v."group"), '') IS NOT NULL THEN 'manifest'
            WHEN s.speaker_group IS NOT NULL THEN 'inferred' END AS speaker_source
FROM videos AS v
LEFT JOIN speaker_groups AS s USING (video_id);

-- fusion_vectors_of(audio_encoder, video_encoder, text_encoder): one row per window with those
-- feature sets' vectors per modality (NULL where missing or where the encoder_id is NULL).
CREATE OR REPLACE MACRO fusion_vectors_of(audio_encoder, video_encoder, text_encoder) AS TABLE
SELECT w.video_id, w.window_idx,
       a.embedding AS audio, v.embedding AS video, t.embedding AS text
FROM windows AS w
LEFT JOIN embeddings AS a
       ON a.video_id = w.video_id AND a.window_idx = w.window_idx AND a.encoder_id = audio_encoder
LEFT JOIN embeddings AS v
       ON v.video_id = w.video_id AND v.window_idx = w.window_idx AND v.encoder_id = video_encoder
LEFT JOIN embeddings AS t
       ON t.video_id = w.video_id AND t.window_idx = w.window_idx AND t.encoder_id = text_encoder;

-- fusion_vectors: one row per window, the served feature set's vector per modality.
CREATE OR REPLACE VIEW fusion_vectors AS
SELECT * FROM fusion_vectors_of(
    (SELECT encoder_id FROM served_encoders WHERE modality = 'audio'),
    (SELECT encoder_id FROM served_encoders WHERE modality = 'video'),
    (SELECT encoder_id FROM served_encoders WHERE modality = 'text'));

-- name: connection_encoders#
-- fusion_vectors serving given feature sets instead of the store's choice, on one connection
-- (a model's own encoders at predict time, `tune-fusion --encoders`): the caller inserts
-- (modality, encoder_id) rows into connection_encoders (query connection_encoder), then the
-- TEMP view shadows the stored one.
CREATE OR REPLACE TEMP TABLE connection_encoders (modality VARCHAR, encoder_id VARCHAR);
CREATE OR REPLACE TEMP VIEW fusion_vectors AS
SELECT * FROM fusion_vectors_of(
    (SELECT encoder_id FROM temp.connection_encoders WHERE modality = 'audio'),
    (SELECT encoder_id FROM temp.connection_encoders WHERE modality = 'video'),
    (SELECT encoder_id FROM temp.connection_encoders WHERE modality = 'text'));

-- name: connection_encoder
-- One modality's feature set for this connection (parameters: modality, encoder_id).
INSERT INTO temp.connection_encoders VALUES (?, ?);
