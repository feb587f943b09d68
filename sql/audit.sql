-- audit: the data audit of featurestore.audit (cli.py audit): scratch tables it fills, then one
-- query per report table. Duplicate pairs come from featurestore.duplicates (the one definition
-- that CV leakage groups use too), registered as audit_duplicate_pairs and
-- audit_duplicate_members.

-- name: setup_encoders#
-- The scratch table of encoders the queries read: one row per modality (schema.MODALITIES
-- order; encoder_id NULL where the store has none); `decides` marks modalities whose similarity
-- decides near duplicates.
CREATE OR REPLACE TEMP TABLE audit_encoders (
    modality_idx INTEGER, modality VARCHAR, encoder_id VARCHAR, name VARCHAR, dim INTEGER, decides BOOLEAN
);

-- name: insert_encoder
-- One modality's row (parameters: modality_idx, modality, encoder_id, name, dim, decides).
INSERT INTO audit_encoders VALUES (?, ?, ?, ?, ?, ?);

-- name: video_ids
-- Every stored video id (the audit compares all of them, whatever their status).
SELECT video_id FROM videos ORDER BY video_id;

-- name: window_keys
-- The key of every stored window; the audit pools only embeddings of windows that exist.
SELECT video_id, window_idx FROM windows;

-- name: media_paths
-- Distinct media paths of the stored videos (the audit hashes those that exist as files).
SELECT DISTINCT path FROM videos WHERE path IS NOT NULL ORDER BY path;

-- name: hash_media#
-- SHA-256 and size of each existing video file (parameter: the list of existing paths, empty
-- when hashing is off), so byte-identical files under different ids match.
CREATE OR REPLACE TEMP TABLE audit_media AS
SELECT v.video_id, b.size, sha256(b.content) AS sha256
FROM read_blob(?::VARCHAR[]) AS b
JOIN videos AS v ON v.path = b.filename;

-- name: no_media#
-- audit_media when no media is hashed (hashing off, or no file exists).
CREATE OR REPLACE TEMP TABLE audit_media (video_id VARCHAR, size BIGINT, sha256 VARCHAR);

-- name: media_hashes
-- The hashed files' SHA-256 per video.
SELECT video_id, sha256 FROM audit_media;

-- name: pairs#
-- Every pair of duplicate videos with the evidence, joined to both videos' split and label.
-- kind: 'exact'      same path, same bytes, or every deciding modality both videos have is
--                    equal (to float rounding);
--       'near'       every deciding modality both videos have reaches the cosine threshold;
--       'transcript' only the transcripts match: identical after normalisation
--                    (same_transcript), or near-identical (near_transcript, with the
--                    Jaccard similarity of their shingles in transcript_jaccard).
CREATE OR REPLACE TEMP TABLE audit_pairs AS
SELECT CASE
           WHEN p.same_path OR p.same_media OR p.equal_vectors THEN 'exact'
           WHEN p.near_vectors THEN 'near'
           ELSE 'transcript'
       END AS kind,
       p.video_a, p.video_b,
       va.split AS split_a, vb.split AS split_b, va.label AS label_a, vb.label AS label_b,
       p.same_path, p.same_media, p.same_transcript, p.near_transcript, p.transcript_jaccard,
       p.* EXCLUDE (video_a, video_b, same_path, same_media, same_transcript, near_transcript,
                    transcript_jaccard, near_vectors, equal_vectors, n_deciding)
FROM audit_duplicate_pairs AS p
JOIN videos AS va ON va.video_id = p.video_a
JOIN videos AS vb ON vb.video_id = p.video_b;

-- name: status
-- Videos per split and embed status.
SELECT split, status, count(*) AS n_videos
FROM videos
GROUP BY split, status
ORDER BY split, status;

-- name: failures
-- Videos whose last embed run failed for some modality: the modalities, the latest error, and
-- whether they are labelled (then left out of training_videos until a run succeeds; every
-- embed of a manifest listing them tries them again).
SELECT video_id, split, label, failed_modalities, error, path, transcript_path, updated_at
FROM videos
WHERE status = 'failed'
ORDER BY split, video_id;

-- name: class_balance
-- Labelled videos per class (every class of emotion_classes() listed, zeros included), by split.
WITH classes AS (
    SELECT unnest(emotion_classes()) AS label, generate_subscripts(emotion_classes(), 1) AS class_idx
), splits AS (SELECT DISTINCT split FROM videos WHERE label IS NOT NULL)
SELECT s.split, c.label,
       count(v.video_id) AS n_videos,
       round(count(v.video_id) / sum(count(v.video_id)) OVER (PARTITION BY s.split), 4) AS share,
       count(v.video_id) FILTER (WHERE embedded(v.status)) AS n_embedded
FROM splits AS s
CROSS JOIN classes AS c
LEFT JOIN videos AS v ON v.split = s.split AND v.label = c.label
GROUP BY s.split, c.label, c.class_idx
ORDER BY s.split, c.class_idx;

-- name: speech
-- Share of windows without speech (not speaks(transcript)) per split, and videos with no
-- speech in any window.
WITH w AS (
    SELECT v.split, w.video_id, NOT speaks(w.transcript) AS silent
    FROM windows AS w JOIN videos AS v ON v.video_id = w.video_id
), per_video AS (
    SELECT split, video_id, count(*) AS n_windows, count(*) FILTER (WHERE silent) AS n_silent
    FROM w GROUP BY split, video_id
)
SELECT split,
       CAST(sum(n_windows) AS BIGINT) AS n_windows,
       CAST(sum(n_silent) AS BIGINT) AS n_windows_no_speech,
       round(sum(n_silent) / sum(n_windows), 4) AS share_no_speech,
       count(*) AS n_videos,
       count(*) FILTER (WHERE n_silent = n_windows) AS n_videos_no_speech
FROM per_video
GROUP BY split
ORDER BY split;

-- name: coverage
-- Per split and modality, the share of windows whose embedding (from the encoder
-- fusion_vectors serves) is present, and the missing reasons.
WITH w AS (
    SELECT v.split, w.video_id, w.window_idx
    FROM windows AS w JOIN videos AS v ON v.video_id = w.video_id
), joined AS (
    SELECT w.split, c.modality_idx, c.modality, c.name, c.encoder_id, c.dim,
           e.embedding IS NOT NULL AS present,
           CASE WHEN e.embedding IS NULL THEN coalesce(e.missing_reason, 'not embedded') END AS reason
    FROM w
    CROSS JOIN audit_encoders AS c
    LEFT JOIN embeddings AS e
           ON e.encoder_id = c.encoder_id AND e.video_id = w.video_id AND e.window_idx = w.window_idx
), reasons AS (
    SELECT split, modality, string_agg(reason || ': ' || n, '; ' ORDER BY n DESC, reason) AS missing_reasons
    FROM (SELECT split, modality, reason, count(*) AS n FROM joined WHERE reason IS NOT NULL
          GROUP BY split, modality, reason)
    GROUP BY split, modality
)
SELECT j.split, j.modality, any_value(j.name) AS encoder, any_value(j.encoder_id) AS encoder_id,
       any_value(j.dim) AS dim,
       count(*) AS n_windows,
       count(*) FILTER (WHERE j.present) AS n_present,
       round(count(*) FILTER (WHERE j.present) / count(*), 4) AS share_present,
       any_value(r.missing_reasons) AS missing_reasons
FROM joined AS j
LEFT JOIN reasons AS r ON r.split = j.split AND r.modality = j.modality
GROUP BY j.split, j.modality
ORDER BY j.split, any_value(j.modality_idx);

-- name: groups
-- duplicate pairs joined into groups (connected components: a~b and b~c put
-- a, b, c in one group; featurestore.duplicates.leakage_groups, the components CV keeps on one
-- side of a fold, registered as audit_duplicate_members), with each group's labels. A group
-- with several labels is one clip labelled inconsistently. group_id is the smallest video_id
-- of the group.
WITH members AS (
    SELECT video_id, group_id FROM audit_duplicate_members
), label_counts AS (
    SELECT m.group_id, v.label, count(*) AS n
    FROM members AS m JOIN videos AS v USING (video_id)
    WHERE v.label IS NOT NULL
    GROUP BY m.group_id, v.label
), labels AS (
    SELECT group_id, count(*) AS n_labels,
           string_agg(label || ': ' || n, ', ' ORDER BY n DESC, label) AS labels
    FROM label_counts GROUP BY group_id
)
SELECT m.group_id,
       count(*) AS n_videos,
       count(*) FILTER (WHERE v.split = 'test') AS n_test,
       coalesce(any_value(l.n_labels), 0) AS n_labels,
       any_value(l.labels) AS labels,
       string_agg(m.video_id, ' ' ORDER BY m.video_id) AS videos
FROM members AS m
JOIN videos AS v USING (video_id)
LEFT JOIN labels AS l USING (group_id)
GROUP BY m.group_id
ORDER BY n_labels DESC, n_videos DESC, m.group_id;

-- name: duplicates
-- every duplicate pair (see audit_pairs for the kinds).
SELECT * FROM audit_pairs
ORDER BY CASE kind WHEN 'exact' THEN 0 WHEN 'near' THEN 1 ELSE 2 END, video_a, video_b;

-- name: conflicts
-- duplicate pairs whose two labels differ (noisy labels).
SELECT kind, video_a, label_a, video_b, label_b, split_a, split_b,
       * EXCLUDE (kind, video_a, label_a, video_b, label_b, split_a, split_b)
FROM audit_pairs
WHERE label_a IS NOT NULL AND label_b IS NOT NULL AND label_a <> label_b
ORDER BY video_a, video_b;

-- name: test_train
-- test videos that duplicate a training video (leakage, and
-- a known label for that test id), the test video first.
SELECT kind,
       CASE WHEN split_a = 'test' THEN video_a ELSE video_b END AS test_id,
       CASE WHEN split_a = 'test' THEN video_b ELSE video_a END AS train_id,
       CASE WHEN split_a = 'test' THEN label_b ELSE label_a END AS train_label,
       * EXCLUDE (kind, video_a, video_b, split_a, split_b, label_a, label_b)
FROM audit_pairs
WHERE (split_a = 'test' AND split_b = 'train') OR (split_a = 'train' AND split_b = 'test')
ORDER BY test_id, train_id;

-- name: speaker_clusters
-- The inferred speaker groups (speaker_groups, featurestore.speakers): per voice cluster its
-- videos and speech windows, how many of them have a manifest group, the most common of those
-- groups and the share of the grouped members in it (1.0: the cluster agrees with the manifest),
-- and the threshold that drew it.
WITH members AS (
    SELECT s.speaker_group, s.video_id, s.n_speech_windows, s.threshold, s.threshold_source,
           nullif(trim(v."group"), '') AS manifest_group
    FROM speaker_groups AS s
    LEFT JOIN videos AS v USING (video_id)
), per_group AS (
    SELECT speaker_group, manifest_group, count(*) AS n
    FROM members WHERE manifest_group IS NOT NULL
    GROUP BY ALL
), majority AS (
    SELECT speaker_group, arg_max(manifest_group, n) AS majority_group, max(n) AS n_majority,
           sum(n) AS n_grouped, count(*) AS n_manifest_groups
    FROM per_group GROUP BY speaker_group
)
SELECT m.speaker_group, count(*) AS n_videos, sum(m.n_speech_windows) AS speech_windows,
       coalesce(any_value(j.n_grouped), 0) AS with_manifest_group,
       any_value(j.n_manifest_groups) AS manifest_groups,
       any_value(j.majority_group) AS majority_group,
       any_value(j.n_majority) / any_value(j.n_grouped) AS agreement,
       any_value(m.threshold) AS threshold
FROM members AS m
LEFT JOIN majority AS j USING (speaker_group)
GROUP BY m.speaker_group
ORDER BY n_videos DESC, m.speaker_group;

-- name: speaker_memberships
-- Each clustered video's voice cluster beside its manifest group (NULL: none), with the
-- threshold that drew the clusters: what the audit's speaker line scores the clusters against.
SELECT s.speaker_group, nullif(trim(v."group"), '') AS manifest_group, s.threshold, s.threshold_source
FROM speaker_groups AS s
LEFT JOIN videos AS v USING (video_id);
