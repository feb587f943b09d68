-- fusion_store_counts: row counts of what a fusion model was trained on, for its lineage
-- (beside the store snapshot id, which identifies the data exactly).
SELECT (SELECT count(*) FROM videos) AS n_videos,
       (SELECT count(*) FROM fusion_vectors) AS n_fusion_vectors
