-- schema: every table and view of the feature store, in one file.
--
-- The store is a DuckLake (Parquet data files + a SQL catalog). featurestore.store runs this
-- file once when it creates a store (and again when STORE_SCHEMA_VERSION grows), inside the
-- attached lake, so the views below are stored in the catalog and plain duckdb sees them too.
-- Placeholders: {classes} = schema.CLASSES as a list literal; {aggregations} = the UNION ALL of
-- sql/aggregate_<method>.sql (window -> video labels by every method).
--
-- Row ownership: a write replaces whole groups of rows, never single rows, and the keys of
-- those groups are featurestore.store.REPLACE_KEYS (videos by video_id, windows by video_id,
-- embeddings by (encoder_id, video_id), ...). Vectors are FLOAT[] (DuckLake has no fixed-size
-- arrays); their length is the encoder's dim in `encoders`.

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
    duration_s DOUBLE,
    window_s DOUBLE,            -- window geometry of the video's windows (seconds)
    hop_s DOUBLE,
    status VARCHAR,             -- 'ok' | 'failed'
    error VARCHAR,
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
-- One feature set's vectors in their own data files: a full-matrix load reads only those.
ALTER TABLE embeddings SET PARTITIONED BY (encoder_id);

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

-- Per-window class probabilities of each model, in class order {classes}.
CREATE TABLE IF NOT EXISTS window_predictions (
    model_id VARCHAR NOT NULL,
    video_id VARCHAR NOT NULL,
    window_idx INTEGER NOT NULL,
    probs FLOAT[]
);

-- One row that every write transaction bumps: two concurrent writers then always conflict
-- on it, and the loser retries against the winner's rows, so no two transactions can both
-- insert the same video's rows unseen by each other.
CREATE TABLE IF NOT EXISTS store_commits (
    seq BIGINT NOT NULL,
    schema_version INTEGER NOT NULL
);

-- One row per window: the chosen feature set's vector per modality (NULL where missing).
CREATE OR REPLACE VIEW fusion_vectors AS
SELECT w.video_id, w.window_idx,
       a.embedding AS audio, v.embedding AS video, t.embedding AS text
FROM windows AS w
LEFT JOIN embeddings AS a
       ON a.video_id = w.video_id AND a.window_idx = w.window_idx
      AND a.encoder_id = (SELECT max(encoder_id) FROM feature_sets WHERE modality = 'audio')
LEFT JOIN embeddings AS v
       ON v.video_id = w.video_id AND v.window_idx = w.window_idx
      AND v.encoder_id = (SELECT max(encoder_id) FROM feature_sets WHERE modality = 'video')
LEFT JOIN embeddings AS t
       ON t.video_id = w.video_id AND t.window_idx = w.window_idx
      AND t.encoder_id = (SELECT max(encoder_id) FROM feature_sets WHERE modality = 'text');

-- window_predictions aggregated to one label per video by every method.
CREATE OR REPLACE VIEW video_predictions AS
SELECT model_id, video_id, method, emotion, confidence
FROM ({aggregations}) AS agg;
