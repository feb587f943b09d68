"""Estimators: NaN blocks, learning a known signal, and save/load giving identical probabilities."""
from __future__ import annotations

import numpy as np
import pytest

from featurestore.schema import CLASSES
from fusion.data import load_window_data, pool_numpy
from fusion.gbm import LGBMClassifier
from fusion.linear import LogRegClassifier
from fusion.mlp import MLPClassifier, resolve_device
from fusion.modelio import FusionModel, load_model
from fusion.preprocess import Imputer, class_weight_vector
from test_fusion_synthdata import synthetic_con


@pytest.fixture(scope="module")
def data():
    return load_window_data(synthetic_con(n_videos=48, seed=2, signal=0.8))


def _split(data):
    y = data.video_labels()[data.video_code]
    train = data.video_code % 4 != 0
    return y, train


def test_imputer_fills_means_and_appends_presence_columns():
    X = np.array([[1.0, 2.0, 5.0], [3.0, np.nan, np.nan], [np.nan, 4.0, 7.0]], np.float32)
    imp = Imputer(blocks=[(0, 1), (1, 3)], standardise=False).fit(X)
    Z = imp.transform(X)
    assert Z.shape == (3, 5)
    np.testing.assert_allclose(Z[:, 3:], [[1, 1], [1, 0], [0, 1]])
    np.testing.assert_allclose(Z[1, :3], [1.0, 0.0, 0.0])  # 3 - mean 2; missing block -> mean -> 0
    assert Z[2, 0] == 0.0
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        imp.transform(X[:, :2])


def test_class_weights_balance_video_counts():
    y = np.array([0, 0, 0, 1])
    w = class_weight_vector(y, 3, "balanced")
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == 1.0
    assert class_weight_vector(y, 3, "sqrt")[1] == pytest.approx(np.sqrt(3) * class_weight_vector(y, 3, "sqrt")[0])


def test_mlp_handles_nan_blocks_and_learns(data):
    y, train = _split(data)
    assert np.isnan(data.X).any(), "synthetic data must contain missing modalities"
    blocks = [(s.start, s.stop) for s in data.slices.values()]
    mlp = MLPClassifier(hidden=64, depth=1, max_epochs=40, patience=6, blocks=blocks, class_weight="balanced",
                        random_state=0, device="auto")
    mlp.fit(data.X[train], y[train], groups=data.video_code[train])
    proba = mlp.predict_proba(data.X[~train])
    assert proba.shape == (int((~train).sum()), len(CLASSES)) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (mlp.predict(data.X[~train]) == y[~train]).mean() > 0.4  # chance is 1/8
    assert mlp.get_params()["hidden"] == 64 and list(mlp.classes_) == list(range(8))
    assert resolve_device("auto").type in ("cpu", "cuda")


def test_estimators_keep_eight_columns_when_classes_are_absent(data):
    y, _ = _split(data)
    keep = y < 3  # train on three classes only
    for est in (LGBMClassifier(n_estimators=20), LogRegClassifier(),
                MLPClassifier(hidden=16, max_epochs=3)):
        est.fit(data.X[keep], y[keep], groups=data.video_code[keep])
        proba = est.predict_proba(data.X[:5])
        assert proba.shape == (5, 8) and np.all(proba[:, 3:] == 0)


def test_neighbour_vote_keeps_clusters_a_linear_model_cannot_separate():
    """Two classes, each two tight clusters on opposite sides of the centre (XOR-like):
    no linear boundary separates them, the nearest neighbours do."""
    rng = np.random.default_rng(0)
    centres = np.array([[3, 0], [-3, 0], [0, 3], [0, -3]], np.float32)
    label_of = np.array([0, 0, 1, 1])

    def sample(n):
        c = rng.integers(0, 4, n)
        X = centres[c] + rng.normal(0, 0.3, (n, 2)).astype(np.float32)
        return np.hstack([X, rng.normal(0, 0.1, (n, 6)).astype(np.float32)]), label_of[c]

    X, y = sample(200)
    Xt, yt = sample(200)
    alone = LogRegClassifier(C=1.0).fit(X, y)
    blend = LogRegClassifier(C=1.0, knn_weight=0.5, knn_k=5).fit(X, y)
    assert (alone.predict(Xt) == yt).mean() < 0.7
    assert (blend.predict(Xt) == yt).mean() > 0.95
    p = blend.predict_proba(Xt)
    assert p.shape == (200, 8) and p.dtype == np.float32 and np.allclose(p.sum(1), 1, atol=1e-5)
    # weight 0 is the linear model, unchanged; NaN rows still get a vote
    np.testing.assert_array_equal(LogRegClassifier(C=1.0, knn_weight=0.0).fit(X, y).predict_proba(Xt),
                                  alone.predict_proba(Xt))
    Xt[:3] = np.nan
    assert np.isfinite(blend.predict_proba(Xt)).all()
    with pytest.raises(ValueError, match="knn_weight"):
        LogRegClassifier(knn_weight=1.5).fit(X, y)


def _fitted_models(data):
    y, train = _split(data)
    blocks = [(s.start, s.stop) for s in data.slices.values()]
    vid = data.video_code[train]
    mlp = MLPClassifier(hidden=32, depth=2, max_epochs=8, blocks=blocks).fit(data.X[train], y[train], groups=vid)
    gbm = LGBMClassifier(n_estimators=30).fit(data.X[train], y[train], groups=vid)
    pooled = pool_numpy(data.X, data.video_code, data.n_videos, data.slices, "mean+std")
    yv = data.video_labels()
    logreg = LogRegClassifier(C=0.5, knn_weight=0.3, knn_k=5).fit(pooled, yv)
    pgbm = LGBMClassifier(n_estimators=30, min_child_samples=3).fit(pooled, yv)
    common = dict(modalities=tuple(data.dims), dims=data.dims, model_id="m-test")
    return [FusionModel("mlp", "majority", mlp, **common),
            FusionModel("lightgbm", "weighted", gbm, **common),
            FusionModel("pooled-logreg", "mean", logreg, pool_stats="mean+std", **common),
            FusionModel("pooled-lightgbm", "mean", pgbm, pool_stats="mean+std", **common)]


def test_saved_models_round_trip_to_identical_probabilities(data, tmp_path):
    for model in _fitted_models(data):
        before = model.predict_proba(data.X, data.video_id)
        assert before.shape == (len(data.X), 8)
        model.save(tmp_path / model.family)
        loaded = load_model(tmp_path / model.family, device="cpu")
        after = loaded.predict_proba(data.X, data.video_id)
        np.testing.assert_array_equal(before, after)
        assert (loaded.family, loaded.method, loaded.dims) == (model.family, model.method, model.dims)
        if model.pooled:
            # every window of a video carries the video's probabilities
            first = after[np.searchsorted(data.video_id, data.video_id)]
            np.testing.assert_array_equal(first, after)
            with pytest.raises(ValueError, match="pass video_id"):
                loaded.predict_proba(data.X)
        videos = loaded.predict_videos(data.X, data.video_id, data.window_idx)
        assert len(videos) == data.n_videos and set(videos["emotion"]) <= set(CLASSES)
    with pytest.raises(ValueError, match=r"expects \(n_windows, 55\)"):
        loaded.predict_proba(data.X[:, :10], data.video_id)
    with pytest.raises(FileNotFoundError, match="fusion_model.json"):
        load_model(tmp_path / "nowhere")
