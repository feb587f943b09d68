"""Data loading and leakage-safe CV: no video (or re-upload group) on both sides of a fold."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from featurestore import duplicates
from fusion.cv import leakage_groups, subsample_windows, video_evidence, video_folds
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
    groups, report = leakage_groups(data, video_evidence(con, data.videos["video_id"].to_numpy()))
    g = dict(zip(ids, groups))
    assert g["vid000"] == g["vid001"], "identical transcripts must share a group"
    assert g["vid002"] == g["vid003"], "the manifest group column must be honoured"
    assert report.merged == {"transcript": 1, "near_transcript": 0, "vectors": 0, "media": 0,
                             "manifest_group": 1}
    assert len(set(groups)) == report.n_groups == 58
    assert report.describe() == ("60 videos -> 58 groups (merged: 1 by transcript, 0 by near transcript, "
                                 "0 by pooled vectors, 0 by media, 1 by manifest group)")
    d = report.as_dict()
    assert json.loads(json.dumps(d)) == d and d["thresholds"]["vector_cosine"] == duplicates.VECTOR_COSINE


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
    assert groups[5] == groups[6] and report.merged["vectors"] == 1
    assert report.pairs[["video_a", "video_b"]].values.tolist() == [["vid005", "vid006"]]
    assert bool(report.pairs.equal_vectors[0])


def test_no_fold_puts_a_video_or_group_on_both_sides(con):
    data = load_window_data(con)
    groups, _ = leakage_groups(data, video_evidence(con, data.videos["video_id"].to_numpy()))
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


SPEECH = ["Hari ini aku senang sekali,", "karena bertemu teman lama", "di pasar pagi dekat rumah nenek."]
#: SPEECH re-transcribed: case, punctuation and two words differ.
SPEECH_AGAIN = ["hari ini AKU senang sekali!", "karena ketemu teman lama...", "di pasar pagi dekat rumah kakek"]


def planted_con(rng_seed: int = 3) -> duckdb.DuckDBPyConnection:
    """Synthetic relations (60 videos) with one duplicate planted per rule.

    vid000 ~ vid001 identical transcripts and vid002 ~ vid003 one manifest group (the synthetic
    tables' own); vid010 ~ vid011 near-identical speech; vid020 ~ vid021 unrelated short
    speech sharing most shingles; vid030 ~ vid031 near-identical vectors (noise, not equal);
    vid040 ~ vid041 the same media_sha256.
    """
    t = synthetic_tables(n_videos=60, seed=1)
    fv = t["fusion_vectors"].to_pandas()
    rng = np.random.default_rng(rng_seed)
    src = fv[fv.video_id == "vid030"].reset_index(drop=True)
    dst = fv.index[fv.video_id == "vid031"]
    fv = fv.drop(dst)
    copy = src.assign(video_id="vid031")
    for col in ("audio", "video", "text"):
        copy[col] = [None if v is None else (np.asarray(v) + 0.1 * rng.standard_normal(len(v))).astype(np.float32)
                     for v in src[col]]
    fv = pd.concat([fv, copy]).sort_values(["video_id", "window_idx"]).reset_index(drop=True)
    win = t["windows"].to_pandas()
    win = win[~win.video_id.isin(["vid031"])]
    win = pd.concat([win, pd.DataFrame({"video_id": "vid031", "window_idx": copy.window_idx.astype(np.int32),
                                        "start_s": 0.0, "end_s": 1.0, "transcript": None})])
    speech = {"vid010": SPEECH, "vid011": SPEECH_AGAIN,
              "vid020": ["terima kasih"], "vid021": ["terima kasih semua"]}
    for vid, texts in speech.items():
        rows = np.flatnonzero(win.video_id.to_numpy() == vid)
        win.iloc[rows, win.columns.get_loc("transcript")] = [texts[min(i * len(texts) // len(rows), len(texts) - 1)]
                                                            for i in range(len(rows))]
    sha = [None] * 60
    sha[40] = sha[41] = "ab" * 32
    videos = t["videos"].append_column("media_sha256", pa.array(sha, pa.string()))
    con = duckdb.connect()
    con.register("videos", videos)
    con.register("windows", pa.Table.from_pandas(win.reset_index(drop=True), schema=t["windows"].schema,
                                                 preserve_index=False))
    con.register("fusion_vectors", pa.Table.from_pandas(fv, schema=t["fusion_vectors"].schema,
                                                        preserve_index=False))
    return con


@pytest.fixture(scope="module")
def planted():
    con = planted_con()
    data = load_window_data(con)
    groups, report = leakage_groups(data, video_evidence(con, data.videos["video_id"].to_numpy()))
    return con, data, groups, report


def test_every_rule_merges_its_planted_pair_and_is_counted(planted):
    _, data, groups, report = planted
    g = dict(zip(data.videos["video_id"], groups))
    for a, b in [("vid000", "vid001"), ("vid002", "vid003"), ("vid010", "vid011"),
                 ("vid030", "vid031"), ("vid040", "vid041")]:
        assert g[a] == g[b], (a, b)
    assert g["vid020"] != g["vid021"], "unrelated short transcripts must not merge"
    assert report.merged == {"transcript": 1, "near_transcript": 1, "vectors": 1, "media": 1,
                             "manifest_group": 1}
    assert report.n_groups == 55 == len(set(groups))
    assert "1 by near transcript, 1 by pooled vectors, 1 by media" in report.describe()
    pairs = report.pairs.set_index(["video_a", "video_b"])
    assert set(pairs.index) == {("vid000", "vid001"), ("vid010", "vid011"), ("vid030", "vid031"),
                                ("vid040", "vid041")}
    near = pairs.loc[("vid010", "vid011")]
    assert near.near_transcript and not near.same_transcript
    assert duplicates.TRANSCRIPT_JACCARD <= near.transcript_jaccard < 1
    vec = pairs.loc[("vid030", "vid031")]
    assert vec.near_vectors and not vec.equal_vectors and vec.n_deciding == 1   # only text has >= 32 dims
    assert duplicates.VECTOR_COSINE < vec.text_sim < 0.99999
    assert pairs.loc[("vid040", "vid041")].same_media


def test_a_near_duplicate_transcript_pair_never_straddles_a_fold(planted):
    _, data, groups, _ = planted
    ids = list(data.videos["video_id"])
    i, j = ids.index("vid010"), ids.index("vid011")
    y = data.video_labels()
    for seed in range(6):
        for tr, va in video_folds(y, groups, n_folds=5, seed=seed):
            assert (i in tr) == (j in tr) and (i in va) == (j in va), seed


def test_short_transcripts_only_match_exactly():
    B = duplicates.shingle_matrix(["terima kasih", "terima kasih semua"])
    # Similar enough by shingles, but a 12-character text must not near-match anything.
    assert duplicates.jaccard_of_pairs(B, np.array([0]), np.array([1]))[0] >= duplicates.TRANSCRIPT_JACCARD
    pairs = duplicates.duplicate_pairs(["a", "b", "c", "d", "e"],
                                       ["Terima kasih!", "terima kasih semua", "Ya.", "ya", "[NO_SPEECH]"])
    assert pairs[["video_a", "video_b"]].values.tolist() == [["c", "d"]] and bool(pairs.same_transcript[0])


def test_normalise_transcript():
    assert duplicates.normalise_transcript("  Ｈａｒｉ   INI,\tya?! ♪ ") == "hari ini ya"
    assert duplicates.normalise_transcript("[NO_SPEECH]") is None
    assert duplicates.normalise_transcript(" ... ") is None and duplicates.normalise_transcript(None) is None


def test_video_evidence_dedupes_repeated_windows_and_works_on_a_bare_connection():
    con = duckdb.connect()
    con.register("windows", pa.table({"video_id": ["a"] * 5 + ["b"], "window_idx": [0, 1, 2, 3, 4, 0],
                                      "transcript": ["Satu.", "Satu.", "[NO_SPEECH]", "dua", "Satu.", None]}))
    ev = video_evidence(con, ["b", "a", "zzz"])
    assert ev.video_id.tolist() == ["b", "a", "zzz"]
    assert ev.transcript.tolist() == [None, "Satu. dua Satu.", None]
    assert ev.sha256.tolist() == [None] * 3 and ev.path.tolist() == [None] * 3
    con.register("videos", pa.table({"video_id": ["a"], "label": ["Joy"]}))   # no media_sha256, no path
    assert video_evidence(con, ["a"]).transcript.tolist() == ["Satu. dua Satu."]


def test_chunked_products_match_one_block(planted, monkeypatch):
    _, data, _, report = planted
    con = planted[0]
    monkeypatch.setattr(duplicates, "CHUNK", 7)
    _, again = leakage_groups(data, video_evidence(con, data.videos["video_id"].to_numpy()))
    pd.testing.assert_frame_equal(again.pairs, report.pairs)


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


def test_descriptor_vectors_in_mixed_units_do_not_chain_unrelated_videos():
    # 40 videos of 40-D descriptors: one dimension in Hz (~2000 +- 300), the rest near 1. Raw
    # cosines are all ~1; after standardising each dimension unrelated videos are far apart.
    from featurestore.duplicates import duplicate_pairs, leakage_groups as groups_of
    rng = np.random.default_rng(5)
    V = rng.normal(size=(40, 40))
    V[:, 0] = 2000 + 300 * rng.normal(size=40)
    V[7] = V[3] + 1e-3 * rng.normal(size=40)      # one genuine near copy
    ids = np.array([f"v{i:02d}" for i in range(40)])
    pairs = duplicate_pairs(ids, vectors={"audio": V})
    assert list(zip(pairs["video_a"], pairs["video_b"])) == [("v03", "v07")]
    codes, merged = groups_of(ids, pairs)
    assert len(np.unique(codes)) == 39 and merged["vectors"] == 1
