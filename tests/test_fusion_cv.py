"""Data loading and leakage-safe CV: no video (or re-upload group) on both sides of a fold."""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from fusion.cv import UnionFind, leakage_groups, subsample_windows, video_folds, video_transcripts
from fusion.data import load_window_data, vectors_to_matrix
from test_fusion_synthdata import DIMS, synthetic_con, synthetic_tables


@pytest.fixture(scope="module")
def con():
    return synthetic_con(n_videos=60, seed=1)


def test_load_window_data_shapes_and_nan_blocks(con):
    data = load_window_data(con)
    n_windows = con.execute("SELECT count(*) FROM fusion_vectors").fetchall()[0][0]
    assert data.X.shape == (n_windows, sum(DIMS.values())) and data.X.dtype == np.float32
    assert data.dims == DIMS and list(data.slices) == ["audio", "video", "text"]
    text = data.X[:, data.slices["text"]]
    n_null = con.execute("SELECT count(*) FROM fusion_vectors WHERE text IS NULL").fetchall()[0][0]
    assert int(np.isnan(text).all(axis=1).sum()) == n_null
    assert not np.isnan(text).any(axis=1)[~np.isnan(text).all(axis=1)].any()  # whole blocks only
    # rows are sorted by (video, window) and video_code points at data.videos
    assert (np.diff(data.video_code) >= 0).all()
    assert (data.videos["video_id"].to_numpy()[data.video_code] == data.video_id).all()
    first = con.execute("SELECT text FROM fusion_vectors WHERE text IS NOT NULL "
                        "ORDER BY video_id, window_idx LIMIT 1").fetchall()[0][0]
    np.testing.assert_allclose(text[~np.isnan(text).any(axis=1)][0], first, rtol=1e-6)


def test_dims_come_from_column_types_and_missing_columns_are_skipped():
    t = synthetic_tables(n_videos=30)
    con = duckdb.connect()
    con.register("videos", t["videos"])
    con.register("fusion_vectors", t["fusion_vectors"].select(["video_id", "window_idx", "text"]))
    data = load_window_data(con)
    assert data.dims == {"text": DIMS["text"]}


def test_bad_label_names_the_video():
    t = synthetic_tables(n_videos=30)
    labels = t["videos"]["label"].to_pylist()
    labels[4] = "Happiness"
    con = duckdb.connect()
    con.register("videos", t["videos"].set_column(2, "label", pa.array(labels)))
    con.register("fusion_vectors", t["fusion_vectors"])
    with pytest.raises(ValueError, match="vid004.*Happiness"):
        load_window_data(con)


def test_vectors_to_matrix_rejects_wrong_length():
    col = pa.array([[1.0, 2.0], None, [1.0]], pa.list_(pa.float32()))
    with pytest.raises(ValueError, match="row 2 has 1 values, expected 2"):
        vectors_to_matrix(col, 2, "text")
    ok = vectors_to_matrix(pa.array([[1.0, 2.0], None], pa.list_(pa.float32())), 2)
    assert np.isnan(ok[1]).all() and (ok[0] == [1, 2]).all()


def test_groups_merge_transcripts_embeddings_and_manifest_group(con):
    data = load_window_data(con)
    ids = list(data.videos["video_id"])
    groups, report = leakage_groups(data, video_transcripts(con, data.videos["video_id"].to_numpy()))
    g = dict(zip(ids, groups))
    assert g["vid000"] == g["vid001"], "identical transcripts must share a group"
    assert g["vid002"] == g["vid003"], "the manifest group column must be honoured"
    assert report.merged_by_transcript == 1 and report.merged_by_manifest_group == 1
    assert len(set(groups)) == report.n_groups == 58



def test_embedding_duplicates_merge():
    t = synthetic_tables(n_videos=30, windows=(6, 6))
    fv = t["fusion_vectors"].to_pandas()
    src = fv[fv.video_id == "vid005"].reset_index(drop=True)
    for col in ("audio", "video", "text"):
        fv.loc[fv.video_id == "vid006", col] = src[col].to_numpy()
    con = duckdb.connect()
    con.register("videos", t["videos"])
    con.register("fusion_vectors", pa.Table.from_pandas(fv, schema=t["fusion_vectors"].schema,
                                                        preserve_index=False))
    data = load_window_data(con)
    groups, report = leakage_groups(data)
    assert groups[5] == groups[6] and report.merged_by_embedding == 1


def test_no_fold_puts_a_video_or_group_on_both_sides(con):
    data = load_window_data(con)
    groups, _ = leakage_groups(data, video_transcripts(con, data.videos["video_id"].to_numpy()))
    y = data.video_labels()
    folds = video_folds(y, groups, n_folds=5, seed=7)
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen) == list(range(data.n_videos)), "every video validated exactly once"
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert not set(groups[tr]) & set(groups[va])
        # at window level: no video's windows on both sides
        tr_w = set(data.video_id[np.isin(data.video_code, tr)])
        va_w = set(data.video_id[np.isin(data.video_code, va)])
        assert not tr_w & va_w
    assert [list(va) for _, va in folds] == [list(va) for _, va in video_folds(y, groups, 5, 7)]
    with pytest.raises(ValueError, match="only 3 independent video group"):
        video_folds(y[:3], np.arange(3), n_folds=5)


def test_union_find():
    uf = UnionFind(6)
    assert uf.union_keys(["a", None, "b", "a", float("nan"), "b"]) == 2
    assert list(uf.labels()) == [0, 1, 2, 0, 3, 2]


def test_subsample_windows_evenly_spaced():
    codes = np.repeat([0, 1, 2], [3, 10, 40])
    keep = subsample_windows(codes, 8)
    counts = np.bincount(codes[keep])
    assert list(counts) == [3, 8, 8]
    pos = keep[codes[keep] == 2] - 13
    assert pos[0] == 0 and np.all(np.diff(pos) == 5)
    assert len(subsample_windows(codes, None)) == len(codes)


def test_folds_for_a_labelled_set_smaller_than_the_folds_per_class():
    """Two videos per class and three folds (the quick demo): grouped folds, no group split."""
    labels = np.repeat(np.arange(8), 2)
    groups = np.arange(16)
    groups[[0, 1]] = 0                                   # one group of two videos
    folds = video_folds(labels, groups, n_folds=3, seed=0)
    assert len(folds) == 3
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(16))
    for tr, va in folds:
        assert not set(groups[tr]) & set(groups[va])
