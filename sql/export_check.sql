-- export_check: read a written submission back (placeholder {path}; parameter:
-- the list of class names): rows, distinct ids, and any emotion that is not a
-- class name (an integer code or NULL would land here).
SELECT count(*) AS n_rows,
       count(DISTINCT id) AS n_ids,
       list(DISTINCT coalesce(emotion, 'NULL'))
           FILTER (WHERE emotion IS NULL OR NOT list_contains(?, emotion)) AS bad_emotions
FROM read_csv({path}, header = true, delim = ',', all_varchar = true);
