-- audit_pairs: every pair of duplicate videos with the evidence, from the pairs that
-- featurestore.duplicates.duplicate_pairs found (registered as audit_duplicate_pairs: the one
-- definition CV leakage groups use too), joined to both videos' split and label.
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
