-- No encoder of this modality has written yet: no vectors.
SELECT CAST(NULL AS VARCHAR) AS video_id, CAST(NULL AS INTEGER) AS window_idx,
       CAST(NULL AS FLOAT[]) AS embedding
WHERE false
