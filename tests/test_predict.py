"""predict_store and the store's window -> video aggregation SQL."""
import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from featurestore.schema import AGGREGATIONS, CLASSES, HOP_S, MIN_LAST_WINDOW_S, WINDOW_S
from featurestore.store import FeatureStore
from fusion.gbm import LGBMClassifier
from fusion.linear import LogRegClassifier
from fusion.modelio import FusionModel
from fusion.predict import PredictError, Predictor, predict_store
from fusion.registry import labelled_set

K = len(CLASSES)


# ---------------------------------------------------------------- aggregation
def reference(probs: np.ndarray, method: str) -> tuple[int, float]:
    """The rules documented in sql/aggregate.sql, in plain numpy (float64).

    Returns (class index, confidence). Ties: inside a window the earlier class wins its
    argmax; between classes, higher mean probability, then the earlier class.
    """
    p = probs.astype(np.float64)
    mean = p.mean(axis=0)
    top = p.argmax(axis=1)                      # first maximum = earlier class
    top_p = p.max(axis=1)
    if method == "mean":
        score = mean
    elif method == "majority":
        score = np.bincount(top, minlength=K) / len(p)
    elif method == "weighted":
        score = np.bincount(top, weights=top_p, minlength=K) / top_p.sum()
    elif method == "max":
        best = max(range(len(p)), key=lambda i: (top_p[i], mean[top[i]], -top[i], -i))
        return int(top[best]), float(top_p[best])
    else:
        raise AssertionError(method)
    k = max(range(K), key=lambda c: (score[c], mean[c], -c))
    return k, float(score[k])


def _tie_videos() -> dict[str, np.ndarray]:
    """Hand-made probability sets whose winners need the tie rules (dyadic values: exact sums)."""
    z = np.zeros(K, np.float32)

    def row(**kv):
        r = z.copy()
        for name, v in kv.items():
            r[CLASSES.index(name)] = v
        return r

    return {
        # Two classes tie everywhere: the earlier class (Anger) wins every method.
        "tie_all": np.stack([row(Anger=.5, Fear=.5), row(Anger=.5, Fear=.5)]),
        # Votes 1-1 and equal weights; Sadness has the higher mean probability.
        "tie_votes": np.stack([row(Joy=.5, Sadness=.25, Trust=.25), row(Sadness=.5, Joy=.125, Trust=.375)]),
        # Two windows equally confident for different classes; Trust has the higher mean.
        "tie_max": np.stack([row(Proud=.75, Trust=.25), row(Trust=.75, Proud=.125, Anger=.125)]),
        # Mean tie between two later classes, the earlier one (Neutral) wins mean.
        "tie_mean": np.stack([row(Neutral=.75, Surprise=.25), row(Surprise=.75, Neutral=.25)]),
    }


def _write_predictions(store, model_id, videos: dict[str, np.ndarray]) -> None:
    rows = [{"model_id": model_id, "video_id": v, "window_idx": i, "probs": p[i].tolist()}
            for v, p in videos.items() for i in range(len(p))]
    store.put("window_predictions", rows)


def test_video_predictions_view_matches_python_including_ties(tmp_path):
    store = FeatureStore(tmp_path / "s")
    rng = np.random.default_rng(3)
    videos = {f"r{i:02d}": rng.dirichlet(np.full(K, 0.6), size=int(rng.integers(1, 9))).astype(np.float32)
              for i in range(40)}
    videos.update(_tie_videos())
    _write_predictions(store, "m1", videos)
    con = store.connect()
    got = con.execute("SELECT video_id, method, emotion, confidence FROM video_predictions "
                      "WHERE model_id = 'm1'").df()
    con.close()
    assert len(got) == len(videos) * len(AGGREGATIONS)
    got = got.set_index(["video_id", "method"])
    for vid, p in videos.items():
        for method in AGGREGATIONS:
            k, conf = reference(p, method)
            assert got.loc[(vid, method), "emotion"] == CLASSES[k], (vid, method)
            assert got.loc[(vid, method), "confidence"] == pytest.approx(conf, abs=1e-6), (vid, method)
    # The tie rules themselves, stated by hand.
    expect = {("tie_all", m): "Anger" for m in AGGREGATIONS}
    expect.update({("tie_votes", "majority"): "Sadness", ("tie_votes", "weighted"): "Sadness",
                   ("tie_max", "max"): "Trust", ("tie_mean", "mean"): "Neutral",
                   ("tie_mean", "majority"): "Neutral"})
    for key, emotion in expect.items():
        assert got.loc[key, "emotion"] == emotion, key


# ---------------------------------------------------------------- predict_store
DIMS = {"audio": 8, "text": 16}


def _synthetic_store(root, rng):
    """Train and test videos whose window vectors carry the label (class-shifted means)."""
    store = FeatureStore(root)
    for m, d in DIMS.items():
        store.register_encoder(f"{m}-enc", m, d, "1", {"d": d}, None, {}, f"{m}-{d}")
    centres = {m: rng.standard_normal((K, d)).astype(np.float32) * 3 for m, d in DIMS.items()}
    labels = list(CLASSES[:4])
    rows, X, y, keys = [], {m: [] for m in DIMS}, [], []
    specs = [(f"tr{i}", "train", labels[i % 4]) for i in range(16)] + \
            [(f"te{i}", "test", labels[i % 4]) for i in range(5)]
    for vid, split, label in specs:
        n = int(rng.integers(3, 7))
        rows.append({"video_id": vid, "split": split, "label": label if split == "train" else None,
                     "status": "ok"})
        store.put("windows", [{"video_id": vid, "window_idx": i, "start_s": i * .5,
                                      "end_s": i * .5 + 1, "transcript": None} for i in range(n)])
        for m, d in DIMS.items():
            mat = centres[m][CLASSES.index(label)] + rng.standard_normal((n, d)).astype(np.float32)
            if m == "text":
                mat[0] = np.nan                        # a window without speech
            store.write_embeddings(f"{m}-{d}", d, [vid] * n, range(n), mat)
            X[m].append(mat)
        if split == "train":
            y += [CLASSES.index(label)] * n
        keys += [(vid, i) for i in range(n)]
    rows.append({"video_id": "te_failed", "split": "test", "status": "failed", "error": "cannot decode"})
    store.put("videos", rows)
    Xall = np.concatenate([np.concatenate(X[m]) for m in DIMS], axis=1)
    return store, Xall, np.array(y), keys


def _save_model(store, model_id, family, estimator, method="mean", cv=0.5, encoders=None, dims=None):
    model = FusionModel(family=family, method=method, estimator=estimator, modalities=tuple(DIMS),
                        dims=dict(dims or DIMS), model_id=model_id,
                        encoders={m: {"encoder_id": f"{m}-{d}", "name": f"{m}-enc"} for m, d in DIMS.items()},
                        pool_stats="mean" if family.startswith("pooled") else None)
    path = store.models_dir / model_id
    model.save(path)
    con = store.connect()
    n, sha = labelled_set(con)
    con.close()
    store.put("models", [{"model_id": model_id, "family": family, "method": method, "cv_macro_f1": cv,
                                 "path": str(path), "created_at": datetime.now(timezone.utc),
                                 "lineage": json.dumps({"labels_sha256": sha, "n_labelled": n}),
                                 "encoders": json.dumps(encoders or {m: f"{m}-{d}" for m, d in DIMS.items()})}])
    return model


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    rng = np.random.default_rng(0)
    store, X, y, keys = _synthetic_store(tmp_path_factory.mktemp("pred") / "s", rng)
    n_train = len(y)
    gbm = LGBMClassifier(n_estimators=25, num_leaves=4, min_child_samples=2, early_stopping_rounds=0,
                         n_jobs=1).fit(X[:n_train], y)
    # A pooled (one row per video) family: needs each video's windows together.
    from fusion.data import pool_numpy
    vids = np.array([k[0] for k in keys])
    uniq, codes = np.unique(vids[:n_train], return_inverse=True)
    slices = {"audio": slice(0, 8), "text": slice(8, 24)}
    feats = pool_numpy(X[:n_train], codes, len(uniq), slices, "mean")
    yv = np.array([y[codes == c][0] for c in range(len(uniq))])
    logreg = LogRegClassifier(C=1.0).fit(feats, yv)
    pooled_model = _save_model(store, "pooled-1", "pooled-logreg", logreg, method="mean", cv=0.8)
    window_model = _save_model(store, "gbm-1", "lightgbm", gbm, method="majority", cv=0.7)
    return store, X, keys, window_model, pooled_model


@pytest.mark.slow
def test_predict_store_writes_one_row_per_window(fitted):
    store, X, keys, window_model, _ = fitted
    model_id = predict_store(store, split="test", batch_videos=2, progress=False)
    assert model_id == "gbm-1"          # the newest trained on these labels, not the best scored
    con = store.connect()                             # the catalog, as plain duckdb would see it
    got = con.execute("SELECT video_id, window_idx, probs FROM window_predictions "
                      "WHERE model_id = 'gbm-1' ORDER BY video_id, window_idx").fetchall()
    test_keys = sorted(k for k in keys if k[0].startswith("te"))
    assert [(v, i) for v, i, _ in got] == test_keys   # every test window once; te_failed none
    probs = np.array([p for _, _, p in got], np.float32)
    assert probs.shape == (len(test_keys), K)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    rows = [keys.index(k) for k in test_keys]
    np.testing.assert_allclose(probs, window_model.predict_proba(X[rows]), atol=1e-6)
    n = con.execute("SELECT count(*), count(DISTINCT video_id) FROM video_predictions "
                    "WHERE model_id = 'gbm-1'").fetchone()
    assert n == (5 * len(AGGREGATIONS), 5)
    con.close()


@pytest.mark.slow
def test_pooled_model_scores_whole_videos_across_batches(fitted):
    store, X, keys, _, pooled_model = fitted
    assert predict_store(store, split="test", model_id="pooled-1", batch_videos=1, progress=False) == "pooled-1"
    con = store.connect()
    tbl = con.execute("SELECT video_id, probs FROM window_predictions WHERE model_id = 'pooled-1' "
                      "ORDER BY video_id, window_idx").df()
    con.close()
    test_keys = sorted(k for k in keys if k[0].startswith("te"))
    rows = [keys.index(k) for k in test_keys]
    expect = pooled_model.predict_proba(X[rows], np.array([k[0] for k in test_keys]))
    np.testing.assert_allclose(np.stack(tbl["probs"].to_numpy()), expect, atol=1e-6)
    # Every window of a video carries the video's vector.
    assert tbl.groupby("video_id")["probs"].apply(lambda s: np.ptp(np.stack(s.to_numpy()), axis=0).max()).max() == 0


@pytest.mark.slow
def test_mismatched_encoder_or_dims_is_refused(fitted):
    store, *_ = fitted
    est = LogRegClassifier(C=1.0).fit(np.random.default_rng(1).standard_normal((8, 24)), np.arange(8) % 2)
    _save_model(store, "other-enc", "lightgbm", est, cv=0.1, encoders={"audio": "audio-8", "text": "text-99"})
    with pytest.raises(PredictError, match=r"reads text vectors of encoder text-99 .* has none; embed with that encoder"):
        predict_store(store, model_id="other-enc", progress=False)
    _save_model(store, "other-dim", "lightgbm", est, cv=0.1, dims={"audio": 8, "text": 32})
    with pytest.raises(PredictError, match=r"expects 32-D text vectors; .* gives 16-D"):
        predict_store(store, model_id="other-dim", progress=False)
    with pytest.raises(PredictError, match="no model 'nope'"):
        predict_store(store, model_id="nope", progress=False)
    with pytest.raises(PredictError, match="unknown split 'dev'"):
        predict_store(store, split="dev", progress=False)


def test_predictor_refuses_a_model_without_encoder_names(tmp_path):
    est = LogRegClassifier(C=1.0).fit(np.random.default_rng(1).standard_normal((8, 24)), np.arange(8) % 2)
    model = FusionModel(family="lightgbm", method="mean", estimator=est, modalities=tuple(DIMS),
                        dims=dict(DIMS), model_id="bare", encoders={"audio": "audio-8", "text": "text-16"})
    model.save(tmp_path / "bare")
    with pytest.raises(PredictError, match="does not name the audio encoder"):
        Predictor(tmp_path / "bare").encoders()
    with pytest.raises(PredictError, match="no fusion_model.json"):
        Predictor(tmp_path / "missing")



# ---------------------------------------------------------------- files outside the store
@pytest.fixture(scope="module")
def media_model(tmp_path_factory, espeak_ng):
    """Eight real clips embedded (librosa audio descriptors) and a model tuned on them."""
    import media_fixtures as mf
    from featurestore.embed import Embedder
    from featurestore.encoders.registry import get_encoder
    from fusion.tune import tune_fusion

    d = tmp_path_factory.mktemp("clips")
    texts = ["Saya senang sekali", "Hari ini indah", "Terima kasih teman", "Selamat pagi semua"]
    rows = []
    for k in range(8):
        label = "Joy" if k % 2 == 0 else "Sadness"
        path = mf.make_talking_face_video(d / f"c{k}.mp4", text=texts[k // 2], pitch=95 if label == "Joy" else 5,
                                          speed=190 if label == "Joy" else 110, face=k % 4 < 2)
        rows.append({"video_id": f"c{k}", "split": "train", "label": label, "raw_label": label,
                     "group": None, "path": str(path), "transcript_path": None, "manifest_row": k + 1,
                     "error": None})
    store = FeatureStore(d / "store")
    encoders = {"audio": get_encoder("librosa-descriptors", device="cpu")}
    report = Embedder(store, encoders, None, progress=False, log=lambda m: None).run(
        pd.DataFrame(rows, dtype=object))
    assert report.ok, report.summary()
    result = tune_fusion(store, n_trials=1, n_folds=2, families=["pooled-logreg"], show_progress=False)
    return store, encoders, result, d


@pytest.mark.slow
def test_predictor_reproduces_the_store_prediction(media_model):
    store, encoders, result, d = media_model
    predict_store(store, split="train", model_id=result.model_id, progress=False)
    con = store.connect()
    stored = con.execute("SELECT emotion, confidence FROM video_predictions WHERE model_id = ? "
                         "AND method = ? AND video_id = 'c0'", [result.model_id, result.method]).fetchone()
    n_windows = con.execute("SELECT count(*) FROM windows WHERE video_id = 'c0'").fetchone()[0]
    con.close()
    predictor = Predictor.from_store(store, device="cpu", encoders=encoders)
    pred = predictor.predict_video(d / "c0.mp4")
    assert (pred.emotion, pred.method, pred.model_id) == (stored[0], result.method, result.model_id)
    assert pred.confidence == pytest.approx(stored[1], abs=1e-5)
    assert pred.probabilities[pred.emotion] == pytest.approx(pred.confidence, abs=1e-6)
    assert set(pred.probabilities) == set(CLASSES)
    w = pred.windows
    assert list(w.columns) == ["window_idx", "start_s", "end_s", "emotion", "confidence", "transcript"]
    assert len(w) == n_windows and list(w.window_idx) == list(range(n_windows))
    np.testing.assert_allclose(w.start_s, w.window_idx * HOP_S)
    assert ((w.end_s - w.start_s) <= WINDOW_S + 1e-9).all() and ((w.end_s - w.start_s) >= MIN_LAST_WINDOW_S - 1e-9).all()
    assert w.emotion.isin(CLASSES).all() and w.transcript.isna().all()

    # The model directory alone (its own lineage names the encoders) gives the same answer.
    again = Predictor(result.model_dir, device="cpu").predict_video(d / "c0.mp4")
    assert again.emotion == pred.emotion and again.confidence == pytest.approx(pred.confidence, abs=1e-6)


@pytest.mark.slow
def test_predict_batch_keeps_going_past_bad_files(media_model, tmp_path):
    store, encoders, result, d = media_model
    (tmp_path / "empty.mp4").write_bytes(b"")
    predictor = Predictor.from_store(store, model_id=result.model_id, device="cpu", encoders=encoders)
    paths = [d / "c1.mp4", tmp_path / "empty.mp4", tmp_path / "gone.mp4", d / "c2.mp4"]
    df = predictor.predict_batch(paths, progress=False)
    assert list(df.columns) == ["path", "emotion", "confidence", "error"]
    assert list(df.path) == [str(p) for p in paths]
    assert df.error.isna().tolist() == [True, False, False, True]
    assert df.emotion[[0, 3]].isin(CLASSES).all()
    assert "empty.mp4" in df.error[1] and "gone.mp4" in df.error[2]
    with pytest.raises(PredictError, match="gone.mp4"):
        predictor.predict_video(tmp_path / "gone.mp4")


@pytest.fixture(scope="module")
def grouped_model(media_model, tmp_path_factory):
    """The same eight clips as two speakers (c0-c3, c4-c7), tuned with per-speaker normalisation."""
    from featurestore.embed import Embedder
    from fusion.tune import tune_fusion

    _, encoders, _, d = media_model
    rows = [{"video_id": f"c{k}", "split": "train", "label": "Joy" if k % 2 == 0 else "Sadness",
             "raw_label": None, "group": "spk_a" if k < 4 else "spk_b", "path": str(d / f"c{k}.mp4"),
             "transcript_path": None, "manifest_row": k + 1, "error": None} for k in range(8)]
    store = FeatureStore(tmp_path_factory.mktemp("grouped") / "store")
    report = Embedder(store, encoders, None, progress=False, log=lambda m: None).run(pd.DataFrame(rows, dtype=object))
    assert report.ok, report.summary()
    result = tune_fusion(store, n_trials=1, n_folds=2, families=["pooled-logreg"], show_progress=False,
                         estimate="off")
    assert result.model.group_norm
    predict_store(store, split="train", model_id=result.model_id, progress=False)
    return store, encoders, result, d


@pytest.mark.slow
def test_predict_video_normalises_by_the_named_speaker_or_the_files_themselves(grouped_model):
    store, encoders, result, d = grouped_model
    stored = {r["video_id"]: r["confidence"] for r in store.query(
        "SELECT video_id, confidence FROM video_predictions WHERE model_id = ? AND method = ?",
        [result.model_id, result.method]).to_pylist()}
    # The stored speaker's statistics: the same numbers as `predict` on the store.
    named = Predictor.from_store(store, group="spk_b", device="cpu", encoders=encoders)
    assert named.predict_video(d / "c5.mp4").confidence == pytest.approx(stored["c5"], abs=1e-5)
    # Four files of one new speaker: their own windows give the statistics, which here are
    # exactly speaker a's stored ones.
    own = Predictor.from_store(store, same_speaker=True, device="cpu", encoders=encoders)
    got = own.predict_batch([d / f"c{k}.mp4" for k in range(4)], progress=False)
    np.testing.assert_allclose(got.confidence, [stored[f"c{k}"] for k in range(4)], atol=1e-5)
    with pytest.raises(PredictError, match="--same-speaker"):
        Predictor(result.model_dir, device="cpu")
    with pytest.raises(PredictError, match="known groups: spk_a, spk_b"):
        Predictor.from_store(store, group="nobody", device="cpu", encoders=encoders)


@pytest.mark.parametrize("sources, unit", [
    (["asr:faster-whisper:whisper-base-ct2/id#word", "file:/t/a.srt#word"], "word"),
    (["asr:faster-whisper:whisper-base-ct2/id"], "word"),  # written before text units
    (["asr:faster-whisper:whisper-base-ct2/id#segment", "asr:faster-whisper:whisper-base-ct2/id#word"], "segment"),
    (["file:/t/t_1_Joy.txt", None], "segment"),
    ([None], "word"),  # nothing to match
])
def test_predictor_windows_new_text_like_the_training_videos(tmp_path, sources, unit):
    from featurestore.embed import matching_text_unit
    store = FeatureStore(tmp_path / "s")
    store.put("videos", [{"video_id": f"v{i}", "label": "Joy", "split": "train", "status": "ok",
                                 "transcript_source": s} for i, s in enumerate(sources)]
                     + [{"video_id": "t", "label": None, "split": "test", "status": "ok",
                         "transcript_source": "asr:x/id#" + ("segment" if unit == "word" else "word")}])
    assert matching_text_unit(store) == unit
    # a manifest bringing window TSV files is matched by segment whatever the store holds
    assert matching_text_unit(store, [{"transcript_path": "/t/t_9_Joy.txt"}]) == "segment"


@pytest.mark.slow
def test_text_origin_note_only_when_the_predicted_text_comes_from_elsewhere(tmp_path):
    from fusion.predict import text_origin_note
    asr = "asr:faster-whisper:whisper-base-ct2/id"
    store = FeatureStore(tmp_path / "s")
    store.put("videos", [
        {"video_id": "a", "label": "Joy", "split": "train", "status": "ok", "transcript_source": "file:/t/t_a_Joy.txt"},
        {"video_id": "b", "label": "Fear", "split": "train", "status": "ok", "transcript_source": f"{asr}#segment"},
        {"video_id": "c", "label": None, "split": "test", "status": "ok", "transcript_source": f"{asr}#segment"},
        {"video_id": "d", "label": None, "split": "test", "status": "ok", "transcript_source": "asr:x:large-v3/id#segment"},
        {"video_id": "e", "label": None, "split": "test", "status": "failed", "transcript_source": None},
    ])

    def model(mid, origins, dims=None):
        store.put("models", [{"model_id": mid, "family": "pooled-logreg", "method": "mean",
                                     "cv_macro_f1": 0.2, "path": "/m", "encoders": "{}",
                                     "lineage": json.dumps({"dims": dims or {"text": 384},
                                                            "text_origins": origins})}])

    from featurestore.embed import text_origins
    assert text_origins(store) == {"transcript files": 1, asr: 1}
    assert text_origins(store, "test") == {asr: 1, "asr:x:large-v3/id": 1}
    model("m1", text_origins(store))
    note = text_origin_note(store, "m1", "test")
    assert "1 test video(s) have text from asr:x:large-v3/id (1 videos)" in note and "whisper-base" not in note.split("have text from")[1]
    model("m2", {asr: 5, "asr:x:large-v3/id": 2})
    assert text_origin_note(store, "m2", "test") is None
    model("m3", {"transcript files": 3}, dims={"audio": 128})  # no text: nothing to say
    assert text_origin_note(store, "m3", "test") is None
