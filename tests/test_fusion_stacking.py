"""Modality specialists + fusion: a small strong modality is not drowned by a large silent one."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fusion.aggregate import macro_f1
from fusion.linear import LogRegClassifier
from fusion.stacking import SpecialistStack


def _videos(n: int, seed: int):
    """Pooled rows: a 3-D 'video' block with the class signal, a 384-D 'text' block of noise,
    a 16-D 'audio' block with a weaker signal, missing in every 5th video."""
    fixed = np.random.default_rng(99)          # the classes' centres: the same in every sample
    face_centres, voice_centres = fixed.normal(size=(4, 3)) * 1.6, fixed.normal(size=(4, 16)) * 0.5
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    video = face_centres[y] + rng.normal(size=(n, 3))
    text = rng.normal(size=(n, 384))
    audio = voice_centres[y] + rng.normal(size=(n, 16))
    audio[::5] = np.nan
    X = np.concatenate([audio, video, text], axis=1).astype(np.float32)
    return X, y


BLOCKS = [(0, 16), (16, 19), (19, 403)]
NAMES = ["audio", "video", "text"]


@pytest.mark.parametrize("fusion", ["stack", "late"])
def test_the_silent_modality_gets_almost_no_weight_and_fusion_beats_concatenation(fusion):
    X, y = _videos(300, 0)
    Xt, yt = _videos(600, 1)
    labels = np.arange(4)
    stack = SpecialistStack(blocks=BLOCKS, names=NAMES, fusion=fusion, specialist_C=0.05).fit(X, y)
    w = stack.modality_weights_
    assert set(w) == set(NAMES) and abs(sum(w.values()) - 1) < 1e-9
    assert w["text"] < 0.15 and w["video"] > w["text"] and w["audio"] > w["text"], w
    fused = macro_f1(yt, stack.predict(Xt), labels)
    early = macro_f1(yt, LogRegClassifier(C=0.05, blocks=BLOCKS).fit(X, y).predict(Xt), labels)
    video_only = macro_f1(yt, LogRegClassifier(C=0.05).fit(X[:, 16:19], y).predict(Xt[:, 16:19]), labels)
    assert fused > early + 0.03 and fused > video_only, (fused, early, video_only)
    proba = stack.predict_proba(Xt)
    assert proba.shape == (600, 8) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.all(proba[:, 4:] == 0)                     # classes never seen in training


def test_missing_modalities_and_grouped_cross_fitting():
    X, y = _videos(120, 2)
    X[:, 16:19][::3] = np.nan                             # the face is missing in a third
    groups = np.arange(120) // 4
    stack = SpecialistStack(blocks=BLOCKS, names=NAMES, fusion="late").fit(X, y, groups=groups)
    none = np.full((2, X.shape[1]), np.nan, np.float32)  # no modality at all: the class prior
    p = stack.predict_proba(none)
    prior = np.bincount(y, minlength=8)[:4] + 1.0
    np.testing.assert_allclose(p[0, :4], prior / prior.sum(), rtol=1e-4)
    with pytest.raises(ValueError, match="fusion='median'"):
        SpecialistStack(blocks=BLOCKS, fusion="median").fit(X, y)


def test_ensemble_selection_is_greedy_with_replacement_and_never_below_the_best_single():
    from fusion.ensemble import select_ensemble
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    labels = np.arange(4)

    def noisy(acc):  # a model right on ~acc of the videos, wrong in its own way elsewhere
        p = rng.dirichlet(np.ones(8), 200)
        right = rng.random(200) < acc
        p[right, y[right]] += 1.0
        return p / p.sum(axis=1, keepdims=True)
    probs = {0: noisy(0.5), 1: noisy(0.45), 2: noisy(0.45), 3: rng.dirichlet(np.ones(8), 200)}
    ens = select_ensemble(probs, y, labels)
    assert abs(sum(ens.weights.values()) - 1) < 1e-9 and ens.score >= ens.best_single
    assert ens.n_members >= 2 and ens.score > ens.best_single   # independent errors average out
    assert ens.steps[0] == ens.best_single and len(ens.steps) == 25
    assert ens.weights.get(3, 0) < 0.2                         # the random one hardly counts
    only = select_ensemble({7: probs[0]}, y, labels)
    assert only.weights == {7: 1.0}


@pytest.mark.slow
def test_a_deployed_ensemble_saves_loads_and_predicts_like_its_members(tmp_path):
    from fusion import load_model, load_window_data, tune_fusion
    from test_fusion_tune import make_store
    store = make_store(tmp_path / "s", n_videos=64, signal=0.1)
    res = tune_fusion(store, n_trials=6, families=("pooled-logreg", "stacked"), show_progress=False,
                      estimate="off", ensemble="on", confirm_top=0)
    assert res.variant == "ensemble" and res.family == "ensemble" and res.model.members, res.summary()
    con = store.connect()
    data = load_window_data(con, labelled=True)
    loaded = load_model(res.model_dir, device="cpu")
    assert [m.family for m in loaded.members] == [m.family for m in res.model.members]
    p = loaded.predict_proba(data.X, data.video_id)
    np.testing.assert_allclose(p, res.model.predict_proba(data.X, data.video_id), atol=1e-6)
    # every window of a video carries the weighted mean of the members' video probabilities
    first = data.video_id == data.video_id[0]
    want = sum(w * m.predict_proba(data.X[first], data.video_id[first]).mean(axis=0)
               for m, w in zip(loaded.members, loaded.member_weights))
    np.testing.assert_allclose(p[first], np.tile(want, (first.sum(), 1)), atol=1e-5)
    lineage = json.loads(con.execute("SELECT lineage FROM models").fetchone()[0])
    assert lineage["variant"] == "ensemble" and lineage["ensemble"]["deployed"]
    con.close()
    from fusion.predict import predict_store
    assert predict_store(store, split="train", progress=False) == res.model_id
