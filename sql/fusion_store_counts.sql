-- fusion_store_counts: fusion_store_snapshot for relations without written_at (a bare
-- DuckDB connection rather than a store): row counts only.
SELECT (SELECT count(*) FROM videos) AS n_videos,
       (SELECT count(*) FROM fusion_vectors) AS n_fusion_vectors
