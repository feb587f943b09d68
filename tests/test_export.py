"""Submission export: one named row per manifest id, manifest order, prior for the rest."""
import csv
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from featurestore.export import ExportError, export_submission
from featurestore.schema import CLASSES
from featurestore.store import FeatureStore, StoreError
from fusion.registry import labelled_set

K = len(CLASSES)
# Manifest order deliberately differs from id order.
TEST_IDS = ["t9", "t1", "t5", "t3", "t7", "t2"]


def _one_hot_windows(store, model_id, vid, cls, n=3):
    p = np.full((n, K), 0.02, np.float32)
    p[:, CLASSES.index(cls)] = 1 - 0.02 * (K - 1)
    store.put("window_predictions", [{"model_id": model_id, "video_id": vid, "window_idx": i,
                                             "probs": p[i].tolist()} for i in range(n)])


@pytest.fixture()
def store(tmp_path):
    s = FeatureStore(tmp_path / "s")
    # Training labels: Surprise is the most frequent (the prior), Trust second.
    train = ["Surprise"] * 3 + ["Trust"] * 2 + ["Joy"]
    s.put("videos", [{"video_id": f"tr{i}", "split": "train", "label": lab, "status": "ok",
                             "manifest_row": i + 1} for i, lab in enumerate(train)])
    rows = []
    for k, vid in enumerate(TEST_IDS):
        status, error = ("failed", "cannot decode: moov atom not found") if vid == "t5" else ("ok", None)
        rows.append({"video_id": vid, "split": "test", "status": status, "error": error, "manifest_row": k + 1})
    s.put("videos", rows)
    predicted = {"t9": "Anger", "t1": "Fear", "t3": "Joy", "t7": "Neutral"}   # t2: windows, no prediction
    for vid in TEST_IDS:
        if vid != "t5":
            s.put("windows", [{"video_id": vid, "window_idx": i} for i in range(3)])
    for vid, cls in predicted.items():
        _one_hot_windows(s, "m-good", vid, cls)
    _one_hot_windows(s, "m-good", "tr0", "Anger")   # train predictions must not leak into a test export
    con = s.connect()
    n, sha = labelled_set(con)
    con.close()
    # m-good was trained on today's labels; m-unpredicted, newer and better scored, on other ones.
    s.put("models", [
        {"model_id": "m-good", "family": "mlp", "method": "mean", "cv_macro_f1": 0.6, "path": "x",
         "lineage": json.dumps({"labels_sha256": sha, "n_labelled": n}), "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc)},
        {"model_id": "m-unpredicted", "family": "mlp", "method": "mean", "cv_macro_f1": 0.7, "path": "y",
         "lineage": json.dumps({"labels_sha256": "0" * 64, "n_labelled": 3}),
         "created_at": datetime(2026, 2, 1, tzinfo=timezone.utc)},
    ])
    return s


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_round_trip(store, tmp_path):
    out = tmp_path / "sub" / "submission.csv"
    res = export_submission(store, "test", out)
    rows = _read(out)
    assert rows[0] == ["id", "emotion"]
    assert [r[0] for r in rows[1:]] == TEST_IDS
    assert dict(rows[1:]) == {"t9": "Anger", "t1": "Fear", "t5": "Surprise", "t3": "Joy",
                              "t7": "Neutral", "t2": "Surprise"}
    assert all(r[1] in CLASSES for r in rows[1:])
    assert (res.model_id, res.method, res.prior, res.n_rows, res.n_predicted) == ("m-good", "mean", "Surprise", 6, 4)
    fb = res.fallbacks
    assert list(fb.video_id) == ["t5", "t2"]                      # manifest order
    assert fb.reason.iloc[0] == "embedding failed: cannot decode: moov atom not found"
    assert fb.reason.iloc[1] == "no prediction from this model"
    summary = res.summary()
    assert "t5 (manifest row 3): embedding failed" in summary and "2 given the training prior 'Surprise'" in summary
    assert sorted(p.name for p in out.parent.iterdir()) == ["submission.csv"]   # no temp file left


@pytest.mark.slow
def test_method_choice_and_tied_prior(store, tmp_path):
    # One more Trust makes Surprise and Trust tie: the first class name wins (schema order).
    store.put("videos", [{"video_id": "tr9", "split": "train", "label": "Trust", "status": "ok"}])
    res = export_submission(store, "test", tmp_path / "a.csv", method="max", model_id="m-good")
    assert res.method == "max" and res.prior == "Surprise"
    store.put("videos", [{"video_id": "tr10", "split": "train", "label": "Trust", "status": "ok"}])
    res = export_submission(store, "test", tmp_path / "b.csv", model_id="m-good")
    assert res.prior == "Trust"
    assert dict(_read(tmp_path / "b.csv")[1:])["t5"] == "Trust"


@pytest.mark.slow
def test_refusals_leave_the_old_file(store, tmp_path):
    out = tmp_path / "sub.csv"
    out.write_text("old\n")
    with pytest.raises(ExportError, match=r"model m-unpredicted has no predictions .* m-good \(4 videos\)"):
        export_submission(store, "test", out, model_id="m-unpredicted")
    with pytest.raises(StoreError, match="no model 'nope'.*newest first.*m-unpredicted, m-good"):
        export_submission(store, "test", out, model_id="nope")
    with pytest.raises(ExportError, match="unknown aggregation method 'median'"):
        export_submission(store, "test", out, method="median")
    with pytest.raises(ExportError, match="unknown split 'dev'"):
        export_submission(store, "dev", out)
    assert out.read_text() == "old\n"


def test_hand_written_predictions_need_a_method(store, tmp_path):
    _one_hot_windows(store, "adhoc", "t9", "Proud")
    with pytest.raises(ExportError, match="adhoc has predictions but no row in `models`.*pass method="):
        export_submission(store, "test", tmp_path / "x.csv", model_id="adhoc")
    res = export_submission(store, "test", tmp_path / "x.csv", model_id="adhoc", method="majority")
    assert dict(_read(tmp_path / "x.csv")[1:])["t9"] == "Proud"
    assert len(res.fallbacks) == 5


def test_the_command_exits_1_when_rows_fell_back_to_the_prior(store, tmp_path, capsys):
    """A batch job can tell: 2 of the 6 test rows (t5 failed, t2 unpredicted) carry the prior."""
    from reels_emotion import cli
    out = tmp_path / "sub.csv"
    assert cli.main(["export-submission", "--store", str(store.root), "--split", "test",
                     "--out", str(out), "--model", "m-good"]) == 1
    assert "2 of 6 row(s) got the training prior 'Surprise'" in capsys.readouterr().err
    assert len(_read(out)) == 7
    for vid, cls in (("t5", "Joy"), ("t2", "Joy")):
        store.put("videos", [{"video_id": vid, "split": "test", "status": "ok",
                              "manifest_row": TEST_IDS.index(vid) + 1}])
        if vid == "t5":
            store.put("windows", [{"video_id": vid, "window_idx": i} for i in range(3)])
        _one_hot_windows(store, "m-good", vid, cls)
    assert cli.main(["export-submission", "--store", str(store.root), "--split", "test",
                     "--out", str(out), "--model", "m-good"]) == 0
