"""The choice of variant (single model, decision rule, ensemble) is part of the procedure the
nested estimate measures: each outer fold chooses on its inner data only, the deployed model
chooses the same way on all the data, and the reports are drawn from the nested predictions."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from featurestore.schema import CLASSES
from fusion.aggregate import macro_f1
from fusion.cv import fit_videos, predict_videos
from fusion.estimate import PREDICTIONS_FILE, expected_score, nested_estimate
from fusion.lineage import open_source
from fusion.selection import choose_variant, decision_offsets, fit_ensemble_members, predict_ensemble
from fusion.tune import _study_data, tune_and_select
from test_fusion_tune import FAST, make_store

pytestmark = pytest.mark.slow  # nested estimates of small real studies: ~30 s together


def _estimate(td, decision_rule="auto", ensemble="auto"):
    return nested_estimate(
        td, lambda sub, name: tune_and_select(sub, FAST, 3, 0, 0, 0, name), fit_videos, predict_videos,
        decision_offsets, lambda sub, sel: choose_variant(sub, sel, decision_rule, ensemble, 0), seed=0,
        ensemble=(fit_ensemble_members, predict_ensemble))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("variant") / "s", n_videos=60, signal=0.3)
    td = _study_data(open_source(store), 5, 0, "off")
    return td, _estimate(td)


def _relabel_fold(td, fold: int):
    """``td`` with the labels of outer fold ``fold``'s videos permuted among themselves, so the
    label set stays the same but every other video's label is unchanged."""
    va = td.folds[fold][1]
    y = td.y_video.copy()
    rng = np.random.default_rng(1)
    perm = rng.permutation(va)
    while np.array_equal(y[perm], y[va]):
        perm = rng.permutation(va)
    y[va] = y[perm]
    videos = td.data.videos.copy()
    videos["label"] = [CLASSES[k] for k in y]
    return replace(td, y_video=y, y_window=y[td.data.video_code], data=replace(td.data, videos=videos),
                   _pooled={})


def test_an_outer_folds_labels_do_not_move_its_variant_or_its_predictions(study):
    td, est = study
    assert [c["variant"] for c in est.choices] and all(c["variant"] in ("single", "rule", "ensemble")
                                                      for c in est.choices)
    # the estimate scores, in each fold, the variant that fold chose: not the best one afterwards
    for c in est.choices:
        va = td.folds[c["fold"]][1]
        np.testing.assert_array_equal(est.y_pred[va], est.y_variant[c["variant"]][va])
    assert est.macro_f1 == pytest.approx(macro_f1(td.y_video, est.y_pred, td.labels))
    moved = _estimate(_relabel_fold(td, 0))
    va = td.folds[0][1]
    assert moved.choices[0] == est.choices[0]          # variant, family, method, offsets, reason
    np.testing.assert_array_equal(moved.y_pred[va], est.y_pred[va])
    for v in ("single", "rule", "ensemble"):
        np.testing.assert_array_equal(moved.y_variant[v][va], est.y_variant[v][va])
    assert not np.array_equal(moved.y_true[va], est.y_true[va])


def test_the_modes_force_or_exclude_a_variant_and_auto_needs_a_cross_fitted_gain(study):
    td, _ = study
    sel = tune_and_select(td, FAST, 3, 0, 0, 0, "full")
    assert choose_variant(td, sel, "on", "off").variant == "rule"
    assert choose_variant(td, sel, "off", "off").variant == "single"
    auto = choose_variant(td, sel, "auto", "off")
    assert auto.variant in ("single", "rule") and set(auto.scores) >= {"single", "rule"}
    # the rule wins only with a positive gain whose paired-bootstrap bound is above 0
    assert (auto.variant == "rule") == (auto.scores["rule"] > auto.scores["single"] and auto.gain_low["rule"] > 0)
    forced = _estimate(td, "on", "off")
    assert {c["variant"] for c in forced.choices} == {"rule"}
    assert forced.macro_f1 == pytest.approx(forced.variant_scores["rule"][0])


def test_the_expected_score_is_the_procedures_estimate_whatever_variant_is_deployed(study, tmp_path):
    td, est = study
    est.save_predictions(tmp_path)
    lineage = {"estimate": est.as_dict(), "variant": "ensemble"}
    line = expected_score(tmp_path, lineage, n_videos=20)
    assert line.startswith(f"expected macro-F1 {est.macro_f1:.3f} (")
    assert f"interval {est.interval[0]:.3f}-{est.interval[1]:.3f}" in line and "deploys ensemble" in line
    t = pq.read_table(tmp_path / PREDICTIONS_FILE)
    assert t.column("outer_fold").to_pylist() == est.outer_fold.tolist()
    assert set(t.column("variant").to_pylist()) == {c["variant"] for c in est.choices}


def test_the_report_is_drawn_from_the_nested_predictions(study, tmp_path):
    import optuna

    from fusion.report import ESTIMATE_TITLE, SELECTION_TITLE, per_class_table, write_report
    td, est = study
    path = est.save_predictions(tmp_path)
    # Doctor the saved file: the report must follow the file, not anything else in memory.
    t = pq.read_table(path)
    doctored = t.set_column(t.column_names.index("predicted"), "predicted", t.column("label"))
    pq.write_table(doctored.replace_schema_metadata(t.schema.metadata), path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.create_study(direction="maximize")
    st.optimize(lambda tr: tr.suggest_float("x", 0, 1), n_trials=2)
    selection = np.zeros(td.data.n_videos, np.int64)          # an in-sample view unlike either
    paths = write_report(tmp_path / "r", td.y_video, selection, st, "pooled-logreg + mean (single)",
                         selection_score=0.9, nested_predictions=path)
    for key in ("confusion_png", "per_class_csv", "estimate_png", "confusion_selection_png",
                "per_class_selection_csv", "history_png"):
        assert paths[key].exists() and paths[key].stat().st_size > 0, key
    got = pd.read_csv(paths["per_class_csv"])
    want = per_class_table(td.y_video, td.y_video)            # what the doctored file says
    np.testing.assert_allclose(got["f1"], want["f1"], atol=1e-4)
    sel = pd.read_csv(paths["per_class_selection_csv"])
    np.testing.assert_allclose(sel["f1"], per_class_table(td.y_video, selection)["f1"], atol=1e-4)
    assert ESTIMATE_TITLE != SELECTION_TITLE and "optimistic" in SELECTION_TITLE
