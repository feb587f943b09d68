-- audit_test_train: test videos that duplicate a training video (leakage, and
-- a known label for that test id), the test video first.
SELECT kind,
       CASE WHEN split_a = 'test' THEN video_a ELSE video_b END AS test_id,
       CASE WHEN split_a = 'test' THEN video_b ELSE video_a END AS train_id,
       CASE WHEN split_a = 'test' THEN label_b ELSE label_a END AS train_label,
       * EXCLUDE (kind, video_a, video_b, split_a, split_b, label_a, label_b)
FROM audit_pairs
WHERE (split_a = 'test' AND split_b = 'train') OR (split_a = 'train' AND split_b = 'test')
ORDER BY test_id, train_id;
