"""Model files of an earlier format still load and predict what they predicted.

``tests/data/fusion_model_v1`` holds one tiny model per family saved by format 1 (the
hand-written imputer and neighbour vote, before scikit-learn's), with their probabilities
as that code gave them (``expected.npz``); ``make.py`` there says how they were made.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fusion.data import load_window_data
from fusion.modelio import FORMAT_VERSION, MODEL_FILE, load_model
from test_fusion_synthdata import synthetic_con

V1 = Path(__file__).resolve().parent / "data" / "fusion_model_v1"
FAMILIES_V1 = ("mlp", "lightgbm", "pooled-logreg", "stacked", "ensemble")


@pytest.fixture(scope="module")
def data():
    return load_window_data(synthetic_con(n_videos=24, seed=3, signal=0.8))


@pytest.mark.parametrize("name", FAMILIES_V1)
def test_format_1_model_files_load_and_predict_as_before(data, name):
    expected = np.load(V1 / "expected.npz")[name]
    assert json.loads((V1 / name / MODEL_FILE).read_text())["format_version"] == 1
    model = load_model(V1 / name, device="cpu")
    proba = model.predict_proba(data.X, data.video_id)
    # float rounding of scikit-learn's imputer and neighbour search, nothing more
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), expected.argmax(axis=1))


def test_a_resaved_format_1_model_is_written_in_the_current_format(data, tmp_path):
    model = load_model(V1 / "pooled-logreg", device="cpu")
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / MODEL_FILE).read_text())["format_version"] == FORMAT_VERSION
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(data.X, data.video_id),
                                  model.predict_proba(data.X, data.video_id))


def test_a_newer_format_is_refused_by_name(tmp_path):
    shutil.copytree(V1 / "lightgbm", tmp_path / "m")
    meta = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="model file format 99; .* reads formats"):
        load_model(tmp_path / "m")
