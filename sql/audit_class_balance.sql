-- audit_class_balance: labelled videos per class (every class listed, zeros
-- included; the classes placeholder is schema.CLASSES as a list literal), by split.
WITH classes AS (SELECT unnest({classes}) AS label, generate_subscripts({classes}, 1) AS class_idx),
splits AS (SELECT DISTINCT split FROM videos WHERE label IS NOT NULL)
SELECT s.split, c.label,
       count(v.video_id) AS n_videos,
       round(count(v.video_id) / sum(count(v.video_id)) OVER (PARTITION BY s.split), 4) AS share,
       count(v.video_id) FILTER (WHERE v.status = 'ok') AS n_embedded
FROM splits AS s
CROSS JOIN classes AS c
LEFT JOIN videos AS v ON v.split = s.split AND v.label = c.label
GROUP BY s.split, c.label, c.class_idx
ORDER BY s.split, c.class_idx;
