-- encoder_inventory: every stored encoder configuration, how many videos and windows it has
-- embedded, and whether fusion_vectors serves it (`cli.py use-encoders` changes that).
SELECT e.encoder_id, e.name, e.modality, e.dim,
       count(DISTINCT x.video_id) AS n_videos,
       count(x.video_id) AS n_windows,
       coalesce(f.encoder_id IS NOT NULL, false) AS in_fusion_vectors,
       e.registered_at
FROM encoders AS e
LEFT JOIN embeddings AS x ON x.encoder_id = e.encoder_id
LEFT JOIN feature_sets AS f ON f.encoder_id = e.encoder_id AND f.modality = e.modality
GROUP BY ALL
ORDER BY e.modality, e.encoder_id;
