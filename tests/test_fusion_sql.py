"""The aggregation SQL files equal a plain Python computation; so does the one pooling that
training and serving share."""
from __future__ import annotations

import duckdb
import numpy as np
import pytest

from featurestore.schema import AGGREGATIONS, CLASSES
from featurestore.sqlfiles import define_rules
from fusion.aggregate import Aggregator, aggregation_sql, install_aggregations, window_predictions_table
from fusion.data import load_window_data, pool_numpy
from test_fusion_synthdata import synthetic_con


def reference(probs: np.ndarray, video_id: np.ndarray, window_idx: np.ndarray, method: str):
    """video_id -> (emotion, confidence, probs) computed with plain Python loops."""
    out = {}
    for v in sorted(set(video_id)):
        rows = [i for i in range(len(video_id)) if video_id[i] == v]
        P = [[float(x) for x in probs[i]] for i in rows]
        k = len(CLASSES)
        mean = [sum(p[c] for p in P) / len(P) for c in range(k)]
        tops = [max(range(k), key=lambda c: (p[c], -c)) for p in P]  # first max
        top_p = [p[t] for p, t in zip(P, tops)]
        if method == "mean":
            score = mean
            win = sorted(range(k), key=lambda c: (-score[c], c))[0]
            out[v] = (CLASSES[win], score[win], score)
        elif method in ("majority", "weighted"):
            w = [1.0] * len(P) if method == "majority" else top_p
            tot = sum(w)
            score = [sum(wi for wi, t in zip(w, tops) if t == c) / tot for c in range(k)]
            win = sorted(range(k), key=lambda c: (-score[c], -mean[c], c))[0]
            out[v] = (CLASSES[win], score[win], score)
        elif method == "max":
            best = max(top_p)
            cands = [(j, tops[j]) for j in range(len(P)) if top_p[j] == best]
            j, c = sorted(cands, key=lambda jc: (-mean[jc[1]], jc[1], window_idx[rows[jc[0]]]))[0]
            out[v] = (CLASSES[c], best, P[j])
    return out


def _check(probs, video_id, window_idx):
    agg = Aggregator()
    result = agg.run(probs, video_id, window_idx)
    assert set(result.columns) == {"model_id", "video_id", "method", "emotion", "confidence", "probs"}
    for method in AGGREGATIONS:
        got = result[result["method"] == method].set_index("video_id")
        ref = reference(probs, video_id, window_idx, method)
        assert sorted(got.index) == sorted(ref)
        for v, (emotion, conf, vec) in ref.items():
            assert got.loc[v, "emotion"] == emotion, (method, v)
            assert got.loc[v, "confidence"] == pytest.approx(conf, abs=1e-6), (method, v)
            np.testing.assert_allclose(np.asarray(got.loc[v, "probs"], float), vec, atol=1e-6)


def test_aggregations_match_python_on_random_probabilities():
    rng = np.random.default_rng(0)
    n_videos = 40
    counts = rng.integers(1, 15, n_videos)
    video_id = np.repeat([f"v{i:02d}" for i in range(n_videos)], counts)
    window_idx = np.concatenate([rng.permutation(c) for c in counts])  # order must not matter
    probs = rng.dirichlet(np.full(len(CLASSES), 0.5), len(video_id)).astype(np.float32)
    _check(probs, video_id, window_idx)


def test_aggregations_break_ties_as_documented():
    # Probabilities in multiples of 1/8: sums are exact, so ties are real ties.
    e = np.eye(len(CLASSES), dtype=np.float32)
    half = lambda a, b: (e[a] + e[b]) / 2  # noqa: E731  window torn between two classes
    cases = {
        # one vote each for Fear(1) and Joy(2): mean prob ties too -> earlier class wins
        "vote_tie": [e[2], e[1]],
        # votes tie Joy vs Trust; Trust has the higher mean probability -> Trust wins majority
        "mean_breaks": [0.5 * e[2] + 0.5 * e[7], 0.625 * e[7] + 0.375 * e[2], 0.75 * e[2] + 0.25 * e[7],
                        0.75 * e[7] + 0.25 * e[4]],
        # a window with tied top probabilities votes for the earlier class (Anger over Sadness)
        "window_tie": [half(5, 0)],
        # two equally confident windows of different classes: max picks by mean, then class order
        "max_tie": [0.75 * e[6] + 0.25 * e[0], 0.75 * e[3] + 0.25 * e[6]],
        "all_uniform": [np.full(len(CLASSES), 1 / 8, np.float32)] * 3,
    }
    probs, vids, widx = [], [], []
    for name, rows in cases.items():
        for i, p in enumerate(rows):
            probs.append(p)
            vids.append(name)
            widx.append(i)
    probs = np.asarray(probs, np.float32)
    _check(probs, np.array(vids), np.array(widx))
    got = Aggregator().run(probs, np.array(vids), np.array(widx)).set_index(["method", "video_id"])["emotion"]
    assert got["majority", "vote_tie"] == "Fear"
    assert got["majority", "mean_breaks"] == "Trust"
    assert got["mean", "window_tie"] == "Anger"
    assert got["max", "max_tie"] == "Surprise"
    assert got["majority", "all_uniform"] == "Anger"


def test_aggregation_sql_runs_on_a_plain_duckdb_relation():
    """The files read a relation named window_predictions, as the store's view will provide."""
    con = duckdb.connect()
    probs = np.random.default_rng(1).dirichlet(np.ones(8), 6).astype(np.float32)
    table = window_predictions_table(probs, np.array(["a"] * 3 + ["b"] * 3), np.arange(6) % 3, "m1")
    con.register("wp_arrow", table)
    con.execute("CREATE TABLE window_predictions AS SELECT * FROM wp_arrow")
    define_rules(con)
    install_aggregations(con)
    for method in AGGREGATIONS:
        rows = con.execute(aggregation_sql(method)).fetchall()
        assert len(rows) == 2 and {r[2] for r in rows} == {method}


def test_pooling_equals_plain_loops_and_training_pools_the_same_way():
    con = synthetic_con(n_videos=24, seed=3)
    data = load_window_data(con)
    for stats in ("mean", "mean+std"):
        got = pool_numpy(data.X, data.video_code, data.n_videos, data.slices, stats)
        assert got.shape == (24, sum(d * (2 if stats == "mean+std" else 1) + 1 for d in data.dims.values()))
        for v in range(data.n_videos):
            rows = data.X[data.video_code == v]
            ref = []
            for m, sl in data.slices.items():
                block = rows[:, sl].astype(np.float64)
                present = block[~np.isnan(block).any(axis=1)]
                d = sl.stop - sl.start
                ref += list(present.mean(axis=0)) if len(present) else [np.nan] * d
                if stats == "mean+std":
                    ref += list(present.std(axis=0)) if len(present) else [np.nan] * d
                ref.append(len(present) / len(rows))
            np.testing.assert_allclose(got[v], ref, rtol=1e-5, atol=1e-6)
    # every 7th video has no face vectors at all: NaN block and a zero share
    video_block = slice(2 * data.dims["audio"] + 1, None)
    row0 = pool_numpy(data.X, data.video_code, data.n_videos, data.slices)[0, video_block]
    assert np.isnan(row0[:3]).all() and row0[6] == 0.0
    # training (TuneData.pooled) runs this same function on the windows it holds
    from fusion.cv import prepare
    td = prepare(con, 3, 0, data)
    np.testing.assert_array_equal(td.pooled("mean+std"),
                                  pool_numpy(data.X, data.video_code, data.n_videos, data.slices))
