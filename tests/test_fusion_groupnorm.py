"""Per-speaker normalisation: a speaker's own baseline is removed before any model sees it."""
from __future__ import annotations

import numpy as np
import pytest

from featurestore.schema import CLASSES
from featurestore.store import FeatureStore
from fusion import tune_fusion
from fusion.groupnorm import GroupStats

AUDIO_DIM = 16


def speaker_store(root, n_speakers: int = 6, per_speaker: int = 16, seed: int = 0) -> FeatureStore:
    """Audio vectors = a large per-speaker baseline + a small per-class shift + noise: the
    emotion only shows against the speaker's own voice. Each speaker has two unlabelled test
    clips too."""
    rng = np.random.default_rng(seed)
    classes = rng.normal(size=(4, AUDIO_DIM)) * 0.6
    store = FeatureStore(root)
    videos, windows, vid, widx, mats = [], [], [], [], []
    for s in range(n_speakers):
        baseline = rng.normal(size=AUDIO_DIM) * 4.0
        for k in range(per_speaker + 2):
            v = f"s{s}-{k:02d}"
            test = k >= per_speaker
            c = k % 4
            videos.append({"video_id": v, "split": "test" if test else "train",
                           "label": None if test else CLASSES[c], "group": f"actor_{s}", "status": "ok"})
            for w in range(6):
                windows.append({"video_id": v, "window_idx": w, "start_s": w * 0.5, "end_s": w * 0.5 + 1})
                vid.append(v)
                widx.append(w)
                mats.append(baseline + classes[c] + rng.normal(size=AUDIO_DIM))
    store.put("videos", videos)
    store.put("windows", windows)
    eid = f"audio-synthetic-{AUDIO_DIM}"
    store.register_encoder("audio-synthetic", "audio", AUDIO_DIM, "1", {"dim": AUDIO_DIM}, None, {}, eid)
    store.write_embeddings(eid, AUDIO_DIM, vid, widx, np.asarray(mats, np.float32))
    return store


def test_group_stats_standardise_each_group_and_name_an_unknown_one():
    X = np.array([[1.0, 10.0], [3.0, 30.0], [100.0, np.nan], [102.0, np.nan]])
    g = np.array(["a", "a", "b", "b"], dtype=object)
    st = GroupStats.fit(X, g)
    Z = st.transform(X, g)
    np.testing.assert_allclose(Z[:2], [[-1, -1], [1, 1]])
    np.testing.assert_allclose(Z[2:, 0], [-1, 1])
    assert np.isnan(Z[2:, 1]).all()                      # a missing modality stays missing
    with pytest.raises(KeyError, match="group 'c'"):
        st.transform(X[:1], np.array(["c"], dtype=object))


@pytest.mark.slow
def test_tuning_with_speaker_normalisation_beats_raw_vectors_and_predicts_new_clips(tmp_path):
    store = speaker_store(tmp_path / "s")
    kwargs = dict(n_trials=2, families=("pooled-logreg",), show_progress=False, estimate="off", confirm_top=0)
    raw = tune_fusion(store, group_norm="off", **kwargs)
    auto = tune_fusion(store, **kwargs)        # every labelled clip has a group: on
    assert auto.model.group_norm and not raw.model.group_norm
    assert auto.best_score > raw.best_score + 0.2, (auto.best_score, raw.best_score)
    from fusion.predict import PredictError, Predictor, predict_store
    assert predict_store(store, split="test", model_id=auto.model_id, progress=False) == auto.model_id
    got = store.query("SELECT video_id, emotion FROM video_predictions WHERE model_id = ? AND method = 'mean' "
                      "ORDER BY video_id", [auto.model_id]).to_pylist()
    assert len(got) == 12
    truth = {f"s{s}-{k:02d}": CLASSES[k % 4] for s in range(6) for k in (16, 17)}
    assert np.mean([truth[r["video_id"]] == r["emotion"] for r in got]) > 0.6
    with pytest.raises(PredictError, match="normalised per manifest group.*--same-speaker"):
        Predictor(auto.model_dir)
