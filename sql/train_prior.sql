-- train_prior: the class prior from training, i.e. the most frequent label
-- among labelled training videos (ties go to the first name alphabetically,
-- which is also schema.CLASSES order). Videos without a prediction in an
-- exported submission get this label.
SELECT label, count(*) AS n_videos
FROM videos
WHERE split = 'train' AND label IS NOT NULL
GROUP BY label
ORDER BY n_videos DESC, label
LIMIT 1;
