-- audit_duplicates: every duplicate pair (see audit_pairs for the kinds).
SELECT * FROM audit_pairs
ORDER BY CASE kind WHEN 'exact' THEN 0 WHEN 'near' THEN 1 ELSE 2 END, video_a, video_b;
