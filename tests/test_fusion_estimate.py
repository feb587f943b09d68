"""A score you can trust: the nested estimate, the one macro-F1, the decision rule, study state
that refuses changed data, out-of-fold predictions as artifacts, and which model predicts."""
from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from sklearn.metrics import f1_score

from featurestore.schema import CLASSES
from fusion import tune_fusion
from fusion.aggregate import Aggregator, macro_f1
from fusion.decision import apply_offsets, fit_offsets
from fusion.estimate import group_bootstrap, macro_f1_weighted
from fusion.oof import ARTIFACT_DIR, OOFArchive, OOFPredictions
from fusion.registry import ModelLookupError, current_model, labelled_set, model_row
from test_fusion_tune import FAST, make_store

CHANCE = 1 / len(CLASSES)


def _relabel(store, labels: dict[str, str | None]) -> None:
    rows = [r for r in store.query("SELECT * FROM videos").to_pylist() if r["video_id"] in labels]
    store.put("videos", [{**r, "label": labels[r["video_id"]]} for r in rows])


def test_weighted_macro_f1_is_sklearns_and_the_bootstrap_brackets_it():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 300)
    pred = np.where(rng.random(300) < 0.5, y, rng.integers(-1, 8, 300))
    labels = np.unique(y)
    want = f1_score(y, pred, labels=labels, average="macro", zero_division=0)
    assert macro_f1_weighted(y, pred, labels) == pytest.approx(want) == pytest.approx(macro_f1(y, pred, labels))
    # counts as weights == repeating rows
    w = rng.integers(0, 3, 300)
    rep = np.repeat(np.arange(300), w)
    assert macro_f1_weighted(y, pred, labels, w) == pytest.approx(macro_f1(y[rep], pred[rep], labels))
    groups = np.arange(300) // 3
    lo, hi = group_bootstrap(y, pred, groups, labels, n_boot=500)
    assert lo < want < hi and hi - lo < 0.25
    # videos of a group right or wrong together (re-uploads): resampling whole groups widens it
    big = np.arange(300) // 30
    together = np.where((rng.random(10) < 0.5)[big], y, (y + 1) % 6)
    lo1, hi1 = group_bootstrap(y, together, big, labels, n_boot=500)
    lo2, hi2 = group_bootstrap(y, together, np.arange(300), labels, n_boot=500)
    assert hi1 - lo1 > 1.5 * (hi2 - lo2)


def test_offsets_raise_macro_f1_where_a_class_is_under_predicted():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), y] += 1.5
    logits[:, 3] -= 1.2            # class 3 is under-predicted though a quarter of the videos
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    vids = np.array([f"v{i}" for i in range(n)])
    oof = OOFPredictions(probs.astype(np.float32), vids, np.zeros(n, np.int32))
    labels = np.arange(4)
    before = macro_f1(y, probs.argmax(axis=1), labels)
    b = fit_offsets(oof, y, vids, "mean", labels)
    after = macro_f1(y, apply_offsets(probs, b).argmax(axis=1), labels)
    assert b[3] >= 0.75 and after > before + 0.05
    assert np.all(b[4:] == 0)      # classes outside the label set keep offset 0
    # windows, aggregated by the SQL, give the same offsets when each video has one window
    oof2 = OOFPredictions(oof.probs, vids, oof.window_idx + 0)
    scorer_path = fit_offsets(OOFPredictions(np.repeat(oof.probs, 2, axis=0), np.repeat(vids, 2),
                                             np.tile([0, 1], n).astype(np.int32)), y, vids, "mean", labels,
                              Aggregator())
    np.testing.assert_allclose(scorer_path, fit_offsets(oof2, y, vids, "mean", labels))
    np.testing.assert_allclose(apply_offsets(probs, np.zeros(8)), probs, rtol=1e-5)


def _shuffled(store, seed: int = 0) -> None:
    rows = store.query("SELECT video_id, label FROM videos ORDER BY video_id").to_pylist()
    labels = np.random.default_rng(seed).permutation([r["label"] for r in rows])
    _relabel(store, {r["video_id"]: str(lab) for r, lab in zip(rows, labels)})


@pytest.mark.slow
def test_the_nested_estimate_finds_the_signal_and_finds_chance_when_labels_are_shuffled(tmp_path):
    kwargs = dict(n_trials=4, families=FAST, show_progress=False, estimate="nested", estimate_trials=3,
                  confirm_top=2, confirm_repeats=1)
    real = tune_fusion(make_store(tmp_path / "real", n_videos=160, signal=0.12), **kwargs)
    assert real.estimate is not None and real.estimate.macro_f1 > 0.3, real.summary()
    lo, hi = real.estimate.interval
    assert lo <= real.estimate.macro_f1 <= hi and real.estimate.macro_f1 < 0.95

    store = make_store(tmp_path / "shuffled", n_videos=160, signal=0.5)
    _shuffled(store)
    res = tune_fusion(store, **kwargs)
    est = res.estimate
    # 160 videos, 8 classes: the estimate of chance lands within 0.08 of 1/8 (its spread is ~0.03)
    assert all(abs(est.figure(v)[0] - CHANCE) < 0.08 for v in ("single", "rule", "ensemble")), res.summary()
    assert est.interval[0] < CHANCE + 0.05
    # the selection score is the max over trials and methods: it may sit above chance, the estimate not
    assert res.best_score >= est.macro_f1 - 0.1
    assert len(est.choices) == 5 and est.outer_folds == 5 and est.inner_trials == 3
    assert "nested estimate" in res.summary()
    lineage = json.loads(store.query("SELECT lineage FROM models").column("lineage")[0].as_py())
    assert lineage["estimate"]["macro_f1"] == pytest.approx(est.macro_f1)
    assert lineage["macro_f1_labels"] == sorted(set(lineage["macro_f1_labels"]), key=CLASSES.index)
    assert lineage["decision_rule"]["applied"] == (res.variant == "rule")
    assert lineage["estimate"]["variant_chosen_in_folds"] and lineage["confusion_of"].startswith("nested")
    # what predict/export print: the estimate, and the range of a 40-video submission's score
    from fusion.predict import expected_score_note
    note = expected_score_note(store, res.model_id, "train")
    assert f"expected macro-F1 {est.macro_f1:.3f}" in note
    assert "for a set of 160 videos drawn like the labelled ones" in note
    from fusion.estimate import PREDICTIONS_FILE, test_set_interval
    import pyarrow.parquet as pq
    t = pq.read_table(res.model_dir / PREDICTIONS_FILE)
    assert t.num_rows == 160 and set(t.column_names) >= {"video_id", "label", "predicted", "cv_group"}
    y = np.array([CLASSES.index(v) for v in t.column("label").to_pylist()])
    p = np.array([CLASSES.index(v) for v in t.column("predicted").to_pylist()])
    g = t.column("cv_group").to_numpy()
    small = test_set_interval(y, p, g, np.unique(y), 20, n_boot=400)
    large = test_set_interval(y, p, g, np.unique(y), 400, n_boot=400)
    assert small[2] - small[1] > large[2] - large[1]  # a small set's score is less certain


@pytest.mark.slow
def test_trials_keep_their_out_of_fold_predictions_as_parquet_artifacts(tmp_path):
    store = make_store(tmp_path / "s", n_videos=40)
    res = tune_fusion(store, n_trials=3, families=FAST, study_name="arts", show_progress=False,
                      estimate="off", confirm_top=0)
    study = optuna.load_study(study_name="arts", storage=f"sqlite:///{store.root / 'optuna.db'}")
    archive = OOFArchive(store.root / ARTIFACT_DIR)
    trials = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert trials and all("oof_artifact" in t.user_attrs and "oof_pred" not in t.user_attrs for t in trials)
    oof = archive.load("arts", trials[0])
    assert oof.probs.shape == (40, len(CLASSES)) and set(oof.video_id) == set(
        store.query("SELECT video_id FROM videos").column("video_id").to_pylist())
    np.testing.assert_allclose(oof.probs.sum(axis=1), 1.0, atol=1e-4)
    assert list((store.root / ARTIFACT_DIR).iterdir())
    # without the estimate the variant is still chosen, on the selection's own folds
    assert res.decision_rule["reason"].startswith("auto, cross-fitted on the selection's 5 folds")
    assert res.decision_rule["applied"] == (res.variant == "rule")


@pytest.mark.slow
def test_a_resumed_study_refuses_changed_labels_and_videos(tmp_path):
    store = make_store(tmp_path / "s", n_videos=40)
    kwargs = dict(families=FAST, study_name="fixed", show_progress=False, estimate="off", confirm_top=0)
    tune_fusion(store, n_trials=2, **kwargs)
    tune_fusion(store, n_trials=3, **kwargs)  # same data: resumes
    _relabel(store, {"vid005": "Joy" if store.query(
        "SELECT label FROM videos WHERE video_id = 'vid005'").column("label")[0].as_py() != "Joy" else "Fear"})
    with pytest.raises(ValueError, match="other data.*labels_sha256"):
        tune_fusion(store, n_trials=4, **kwargs)
    _relabel(store, {"vid006": None})     # one video fewer
    with pytest.raises(ValueError, match=r"40 labelled videos.*39 videos"):
        tune_fusion(store, n_trials=4, **kwargs)


@pytest.mark.slow
def test_predict_defaults_to_the_newest_model_of_the_current_labelled_set(tmp_path):
    store = make_store(tmp_path / "s", n_videos=40)
    kwargs = dict(n_trials=2, families=FAST, show_progress=False, estimate="off", confirm_top=0)
    first = tune_fusion(store, **kwargs)
    con = store.connect()
    assert current_model(con)["model_id"] == first.model_id
    assert labelled_set(con)[0] == 40
    con.close()
    _relabel(store, {"vid007": None})
    con = store.connect()
    with pytest.raises(ModelLookupError, match=rf"39 labelled.*{first.model_id}.*40 labelled.*--model"):
        model_row(con, None)
    assert model_row(con, first.model_id)["model_id"] == first.model_id   # still there by name
    con.close()
    second = tune_fusion(store, **kwargs)
    _relabel(store, {"vid007": "Joy"})
    third = tune_fusion(store, **kwargs)
    con = store.connect()
    # the newest of the current set wins, whatever its selection score
    assert current_model(con)["model_id"] == third.model_id != second.model_id
    con.close()


def test_a_gain_counts_only_when_it_survives_paired_resampling():
    from fusion.estimate import paired_gain_low
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 400)
    base = np.where(rng.random(400) < 0.5, y, (y + 1) % 4)
    better = np.where(rng.random(400) < 0.3, y, base)            # right on ~65 %: a real gain
    noise = base.copy()                                           # 12 videos fixed, 10 broken:
    right, wrong = np.flatnonzero(base == y), np.flatnonzero(base != y)   # a gain by luck
    fixed, broken = rng.choice(wrong, 12, replace=False), rng.choice(right, 10, replace=False)
    noise[fixed] = y[fixed]
    noise[broken] = (y[broken] + 2) % 4
    groups = np.arange(400) // 2
    labels = np.arange(4)
    assert paired_gain_low(y, better, base, groups, labels, n_boot=300) > 0.05
    assert paired_gain_low(y, noise, base, groups, labels, n_boot=300) <= 0.0 < (
        macro_f1(y, noise, labels) - macro_f1(y, base, labels))
