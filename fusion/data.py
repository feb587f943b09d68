"""Window and video datasets for fusion, loaded from the store's DuckDB views.

Everything is fetched as Arrow and turned into numpy with vectorised calls:
no per-row Python loop, so 100k windows x 899 dims load in about a second.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.errors import InputError, MissingDataError
# Pooling lives in featurestore (the audit pools as CV does); fusion's callers import it from here.
from featurestore.pooling import POOL_STATS, pool_numpy, pooled_feature_names  # noqa: F401  (re-exported)
from featurestore.schema import CLASSES, MODALITIES
from featurestore.sqlfiles import define_rules
from featurestore.store import lists_to_numpy

from ._sql import fetch_arrow, read_sql, relation_columns, scalar, strip_statement

_ARRAY_DIM = re.compile(r"\[(\d+)\]\s*$")
VIDEO_COLUMNS = ("video_id", "label", "group", "status", "split")
#: Speaker columns a store with speaker groups adds to ``WindowData.videos``
#: (``featurestore.speakers``): the speaker (manifest group, else inferred), its source, the
#: inferred group, and the statistics pool that normalises the video.
SPEAKER_COLUMNS = ("speaker", "speaker_source", "inferred_group", "speaker_pool")


@dataclass
class WindowData:
    """Window vectors of a set of videos, sorted by (video_id, window_idx).

    Attributes:
        X: float32 (n_windows, d); NaN in a modality's columns where it is missing.
        video_id: str (n_windows,).
        window_idx: int32 (n_windows,).
        video_code: int64 (n_windows,), row of ``videos`` each window belongs to.
        slices: modality -> column slice of ``X`` (modalities in schema order).
        videos: one row per video (video_id, label, group, and ``SPEAKER_COLUMNS`` where
            the store has speaker groups), sorted by video_id; ``label`` is a class name or None.
    """

    X: np.ndarray
    video_id: np.ndarray
    window_idx: np.ndarray
    video_code: np.ndarray
    slices: dict[str, slice]
    videos: pd.DataFrame
    dropped_videos: list[str] = field(default_factory=list)

    @property
    def dims(self) -> dict[str, int]:
        """Modality -> number of columns in ``X``."""
        return {m: s.stop - s.start for m, s in self.slices.items()}

    @property
    def n_videos(self) -> int:
        return len(self.videos)

    def video_labels(self) -> np.ndarray:
        """int64 (n_videos,): class index in ``schema.CLASSES`` (-1 where unlabelled)."""
        lookup = {c: i for i, c in enumerate(CLASSES)}
        return np.array([lookup.get(v, -1) if isinstance(v, str) else -1
                         for v in self.videos["label"]], dtype=np.int64)

    def window_counts(self) -> np.ndarray:
        """int64 (n_videos,): number of windows of each video."""
        return np.bincount(self.video_code, minlength=self.n_videos)

    def take_videos(self, rows: np.ndarray) -> "WindowData":
        """The windows of videos ``rows`` (sorted row numbers of ``videos``), re-coded 0..len-1."""
        rows = np.asarray(rows, dtype=np.int64)
        new_code = np.full(self.n_videos, -1, np.int64)
        new_code[rows] = np.arange(len(rows))
        keep = new_code[self.video_code] >= 0
        return WindowData(X=self.X[keep], video_id=self.video_id[keep], window_idx=self.window_idx[keep],
                          video_code=new_code[self.video_code[keep]], slices=dict(self.slices),
                          videos=self.videos.iloc[rows].reset_index(drop=True))


#: A modality enters training only when at least this share of the training videos have it
#: in some window: a block that is NaN for nearly every training video teaches nothing, and
#: one that only test videos have would enter training all NaN.
MIN_MODALITY_COVERAGE = 0.10


def modality_dims(con, modalities: tuple[str, ...] | None = None,
                  videos_sql: str | None = None) -> dict[str, int]:
    """Modality -> dim of each vector column of ``fusion_vectors`` (its longest vector).

    With ``modalities`` None, the modalities a model should learn from: those present in at
    least ``MIN_MODALITY_COVERAGE`` of the videos of ``videos_sql`` (a sub-query returning
    ``video_id``; default every video), in ``schema.MODALITIES`` order. With ``modalities``
    (a fitted model's), exactly those, each required to exist.
    """
    cols = relation_columns(con, "fusion_vectors")
    if cols is None:
        raise MissingDataError("no relation 'fusion_vectors' on this connection: embed videos first "
                          "(or pass a store/connection that has the store's views)")
    wanted = modalities if modalities is not None else MODALITIES
    # Built here, not in sql/: the chosen videos' query is nested and each modality is a
    # column name, which a prepared parameter cannot be (each name is checked against
    # fusion_vectors' columns first).
    where = f"WHERE video_id IN (SELECT video_id FROM ({videos_sql}))" if videos_sql else ""
    n_videos = scalar(con, f"SELECT count(DISTINCT video_id) FROM fusion_vectors {where}") or 0
    dims: dict[str, int] = {}
    for m in wanted:
        if m not in cols:
            if modalities is not None:
                raise MissingDataError(f"fusion_vectors has no column {m!r} (has {sorted(cols)}); "
                                  "the model was trained with it")
            continue
        match = _ARRAY_DIM.search(cols[m])
        row = con.execute(f'SELECT max(len("{m}")), count(DISTINCT video_id) FILTER '
                          f'(WHERE "{m}" IS NOT NULL) FROM fusion_vectors {where}').fetchone()
        dim, covered = row
        if match and dim is None:
            dim = int(match.group(1))
        if modalities is None and (not covered or covered < MIN_MODALITY_COVERAGE * n_videos):
            continue
        if dim is None:
            raise MissingDataError(f"fusion_vectors.{m} is NULL everywhere; cannot infer its dim")
        dims[m] = int(dim)
    if not dims:
        raise MissingDataError("fusion_vectors has no modality that the videos have "
                          f"(looked for {list(wanted)}, found {sorted(cols)})")
    return dims


def vectors_to_matrix(col: pa.ChunkedArray | pa.Array, dim: int, name: str = "") -> np.ndarray:
    """Arrow list column -> float32 (n, dim); NULL rows become NaN rows.

    Raises ValueError naming the column when a non-NULL vector is not ``dim`` long.
    """
    return lists_to_numpy(col, dim, f"fusion_vectors.{name}")


def _videos_sql(labelled: bool) -> str:
    return strip_statement(read_sql("queries", "training_videos" if labelled else "embedded_videos"))


def _select_videos(con, labelled: bool) -> str:
    """Make ``selected_videos`` (a TEMP view: the training videos, or every embedded one) on
    ``con`` and return a query of it in video_id order."""
    define_rules(con)
    con.execute(f"CREATE OR REPLACE TEMP VIEW selected_videos AS {_videos_sql(labelled)}")
    return strip_statement(read_sql("queries", "selected_videos_in_order"))   # nested as a sub-query


def _check_videos(con) -> None:
    cols = relation_columns(con, "videos")
    if cols is None:
        raise MissingDataError("no relation 'videos' on this connection: ingest a manifest first")
    missing = [c for c in VIDEO_COLUMNS if c not in cols]
    if missing:
        raise MissingDataError(f"relation 'videos' lacks column(s) {missing}; it has {sorted(cols)}")


def _check_labels(videos: pd.DataFrame) -> None:
    videos["video_id"] = videos["video_id"].astype(str)
    bad = videos[videos["label"].notna() & ~videos["label"].isin(CLASSES)]
    if len(bad):
        row = bad.iloc[0]
        raise ValueError(f"videos: video_id {row['video_id']!r} has label {row['label']!r}, "
                         f"not one of {list(CLASSES)}; fix the manifest (labels are normalised "
                         f"on ingest) and re-ingest ({len(bad)} such video(s))")


def load_window_data(source, *, labelled: bool = True, modalities: tuple[str, ...] | None = None,
                     encoders: dict[str, str] | None = None, snapshot: int | None = None) -> WindowData:
    """The project's one window loader: the chosen videos' window vectors as a :class:`WindowData`.

    Two sources give the same :class:`WindowData` (``tests/test_fusion_tune.py`` checks):

    * a DuckDB connection: the ``fusion_vectors`` view joined to ``videos``, in SQL (works
      on any connection with those relations: a store's, or synthetic data in memory);
    * a ``FeatureStore`` with ``encoders``: one full read per feature set
      (``FeatureStore.load_embeddings``: the Parquet data files themselves) aligned to the
      windows in numpy, at full-matrix speed (what ``tune-fusion`` uses).

    Args:
        source: a DuckDB connection, or a ``FeatureStore``.
        labelled: True -> only labelled, embedded, non-test videos (training set);
            False -> every embedded video (for prediction).
        modalities: (connection only) modalities to load, in this order (a fitted model's);
            None -> every modality that ``MIN_MODALITY_COVERAGE`` of the videos have, in
            ``schema.MODALITIES`` order.
        encoders: (store only) the ``{modality: encoder_id}`` that ``fusion_vectors`` serves;
            the same coverage rule picks the modalities.
        snapshot: (store only) the store snapshot to read; None: the newest.

    Raises:
        ValueError: a label outside ``schema.CLASSES`` (names the video and value).
        LookupError: missing relations/columns, or no labelled windows.
    """
    if hasattr(source, "load_embeddings"):
        if encoders is None or modalities is not None:
            raise TypeError("load_window_data(store, ...) takes encoders={modality: encoder_id} "
                            "(the feature sets to read), not modalities")
        return _load_from_store(source, encoders, snapshot=snapshot, labelled=labelled)
    if encoders is not None or snapshot is not None:
        raise TypeError("load_window_data(con, ...) reads the connection's fusion_vectors: "
                        "encoders and snapshot need a FeatureStore (or a connection at that snapshot)")
    return _load_from_sql(source, labelled=labelled, modalities=modalities)


def _chosen_videos(con, labelled: bool) -> str:
    """Check ``videos`` on ``con`` and make the chosen videos' TEMP view; returns its query
    (video_id order)."""
    _check_videos(con)
    return _select_videos(con, labelled)


def _video_rows(con, videos_sql: str) -> pd.DataFrame:
    """The chosen videos' rows with speaker columns, labels checked: one per video, by video_id."""
    videos = with_speakers(con, fetch_arrow(con, videos_sql).to_pandas())
    _check_labels(videos)
    return videos


def _load_from_sql(con, *, labelled: bool, modalities: tuple[str, ...] | None) -> WindowData:
    """:func:`load_window_data` through the ``fusion_vectors`` view on ``con``."""
    videos_sql = _chosen_videos(con, labelled)
    dims = modality_dims(con, modalities, videos_sql)
    videos = _video_rows(con, videos_sql)
    table = con.execute(read_sql("queries", "window_vectors"), [list(dims)]).to_arrow_table()
    _check_windows(table, videos, labelled)
    X = np.concatenate([vectors_to_matrix(table[m], d, m) for m, d in dims.items()], axis=1)
    return _window_data(X, table, videos, _slices(dims))


def with_speakers(con, videos: pd.DataFrame) -> pd.DataFrame:
    """``videos`` with :data:`SPEAKER_COLUMNS` where the store on ``con`` has inferred speaker
    groups (``featurestore.speakers.video_speakers``); unchanged otherwise (manifest groups only)."""
    from featurestore.speakers import FALLBACK, POOLED, normalisation_pools, video_speakers, voice_vectors
    sp = video_speakers(con)
    if sp is None or not sp["inferred_group"].notna().any():
        return videos
    pools = normalisation_pools(sp, fallback=FALLBACK,
                                voices=voice_vectors(con) if FALLBACK == "nearest" else None)
    cols = ["video_id", "speaker", "speaker_source", "inferred_group"]
    out = videos.merge(sp[cols], on="video_id", how="left")
    out["speaker_pool"] = out["video_id"].map(pools).fillna(POOLED)
    return out


def _check_windows(keys: pa.Table, videos: pd.DataFrame, labelled: bool) -> None:
    if keys.num_rows == 0:
        what = "labelled training" if labelled else "embedded"
        todo = ("embed a labelled manifest (one with an emotion column) first" if labelled
                else "embed a manifest first")
        raise MissingDataError(f"no windows in fusion_vectors for the {len(videos)} {what} video(s); {todo}")


def _slices(dims: dict[str, int]) -> dict[str, slice]:
    """Modality -> its columns of the concatenated window vector, in ``dims`` order."""
    slices, start = {}, 0
    for m, d in dims.items():
        slices[m] = slice(start, start + d)
        start += d
    return slices


def _window_data(X: np.ndarray, keys: pa.Table, videos: pd.DataFrame,
                 slices: dict[str, slice]) -> WindowData:
    """:class:`WindowData` from the matrix, its rows' (video_id, window_idx) and the videos
    asked for; videos with no window are left out and listed as dropped."""
    video_id = np.asarray(keys["video_id"].to_numpy(zero_copy_only=False)).astype(str)
    window_idx = keys["window_idx"].to_numpy(zero_copy_only=False).astype(np.int32)
    have = np.isin(videos["video_id"].to_numpy(dtype=str), np.unique(video_id))
    dropped = videos.loc[~have, "video_id"].tolist()
    videos = videos.loc[have].reset_index(drop=True)
    video_code = np.searchsorted(videos["video_id"].to_numpy(dtype=str), video_id)
    return WindowData(X=X, video_id=video_id, window_idx=window_idx,
                      video_code=video_code.astype(np.int64), slices=slices,
                      videos=videos[["video_id", "label", "group", *(c for c in SPEAKER_COLUMNS if c in videos)]],
                      dropped_videos=dropped)


def load_store_window_data(store, encoders: dict[str, str], *, snapshot: int | None = None,
                           labelled: bool = True) -> WindowData:
    """:func:`load_window_data` of a feature store (kept for existing callers)."""
    return load_window_data(store, encoders=encoders, snapshot=snapshot, labelled=labelled)


def _load_from_store(store, encoders: dict[str, str], *, snapshot: int | None,
                     labelled: bool) -> WindowData:
    """:func:`load_window_data` from the store's feature-set files, aligned in numpy."""
    con = store.connect(snapshot=snapshot)
    try:
        videos = _video_rows(con, _chosen_videos(con, labelled))
        keys = fetch_arrow(con, read_sql("queries", "window_keys"))
        vectors = {m: store.load_embeddings(encoders[m], snapshot=snapshot, con=con, sort=False)
                   for m in MODALITIES if encoders.get(m)}
    finally:
        con.close()
    _check_windows(keys, videos, labelled)
    ids = pa.array(videos["video_id"].astype(str).tolist(), pa.string())

    def codes(video_col, window_col) -> np.ndarray:
        v = pc.index_in(video_col, value_set=ids).to_numpy(zero_copy_only=False)
        v = np.where(np.isnan(v.astype(np.float64)), -1, v).astype(np.int64)
        return (v << 32) | window_col.to_numpy(zero_copy_only=False).astype(np.int64)

    window_key = codes(keys["video_id"], keys["window_idx"])
    video_code_all = window_key >> 32
    placed = {}   # modality -> (window rows, vector rows) of the vectors that have a window
    for m, (k, M) in vectors.items():
        key = codes(k["video_id"], k["window_idx"])
        src = np.flatnonzero(key >= 0)
        pos = np.minimum(np.searchsorted(window_key, key[src]), len(window_key) - 1)
        hit = window_key[pos] == key[src]
        rows, src = pos[hit], src[hit]
        present = np.unique(video_code_all[rows[~np.isnan(M[src, 0])]]) if len(src) else []
        if len(present) == 0 or len(present) < MIN_MODALITY_COVERAGE * len(videos):
            continue
        placed[m] = (rows, src)
    if not placed:
        raise MissingDataError("fusion_vectors has no modality that the videos have "
                          f"(feature sets {encoders})")
    slices = _slices({m: vectors[m][1].shape[1] for m in placed})
    # One allocation; each feature set's rows written into its columns in place.
    X = np.full((len(window_key), sum(s.stop - s.start for s in slices.values())), np.nan, np.float32)
    for m, (rows, src) in placed.items():
        X[rows, slices[m]] = vectors[m][1][src]
    return _window_data(X, keys, videos, slices)


