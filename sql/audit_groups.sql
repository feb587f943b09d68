-- audit_groups: duplicate pairs joined into groups (connected components: a~b and b~c put
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
