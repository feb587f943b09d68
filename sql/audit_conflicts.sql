-- audit_conflicts: duplicate pairs whose two labels differ (noisy labels).
SELECT kind, video_a, label_a, video_b, label_b, split_a, split_b,
       * EXCLUDE (kind, video_a, label_a, video_b, label_b, split_a, split_b)
FROM audit_pairs
WHERE label_a IS NOT NULL AND label_b IS NOT NULL AND label_a <> label_b
ORDER BY video_a, video_b;
