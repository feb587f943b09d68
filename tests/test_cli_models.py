"""``models list``, ``models show``, ``remove``, ``export-submission --manifest``, ``predict
--format`` and predict-video's text origin, on small real stores (no mocks)."""
from __future__ import annotations

import csv
import json
import threading
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurestore.remove import VIDEO_KEYED_TABLES, remove_videos, video_rows
from featurestore.schema import CLASSES
from featurestore.store import FeatureStore
from fusion.estimate import PREDICTIONS_FILE
from fusion.linear import LogRegClassifier
from fusion.modelio import FusionModel
from fusion.registry import labelled_set
from reels_emotion import cli as cli_module

TRAIN = {"tr0": "Joy", "tr1": "Joy", "tr2": "Anger", "tr3": "Anger", "tr4": "Joy", "tr5": "Anger"}
TEST = ["te0", "te1", "te2"]
ASR_SMALL_EN = "asr:faster-whisper:small/en"


def _fill(store: FeatureStore) -> None:
    """Labelled and test videos with rows in every table keyed by video_id (one put per table:
    each put is a commit)."""
    store.register_encoder("text-enc", "text", 4, "1", {"d": 4}, None, {}, "text-4")
    rng = np.random.default_rng(0)
    ids = [*TRAIN, *TEST]
    joy = np.eye(len(CLASSES))[CLASSES.index("Joy")].tolist()
    store.put("windows", [{"video_id": v, "window_idx": k, "start_s": k * .5, "end_s": k * .5 + 1,
                           "transcript": "saya senang"} for v in ids for k in range(3)])
    store.write_embeddings("text-4", 4, [v for v in ids for _ in range(3)], [k for _ in ids for k in range(3)],
                           rng.standard_normal((3 * len(ids), 4)).astype(np.float32))
    store.put("segments", [{"video_id": v, "source": "asr:x", "segment_idx": 0, "start_s": 0.0,
                            "end_s": 1.0, "text": "saya senang"} for v in ids])
    store.put("window_predictions", [{"model_id": "m-new", "video_id": v, "window_idx": k, "probs": joy}
                                     for v in ids for k in range(3)])
    store.put("speaker_groups", [{"video_id": v, "speaker_group": "g1"} for v in ids])
    store.put("video_features", [{"video_id": v, "encoder_id": "text-4", "modality": "text", "n_windows": 3}
                                 for v in ids])
    store.put("videos", [{"video_id": v, "split": "train", "label": lab, "status": "ok",
                          "manifest_row": i + 1} for i, (v, lab) in enumerate(TRAIN.items())]
              + [{"video_id": v, "split": "test", "label": None, "status": "ok", "manifest_row": i + 1}
                 for i, v in enumerate(TEST)])


def _nested_predictions(directory) -> None:
    """A saved nested estimate: 6 labelled videos, 4 predicted right (Joy and Anger 2/3 each)."""
    labels = list(TRAIN.values())
    predicted = ["Joy", "Anger", "Anger", "Anger", "Joy", "Joy"]
    table = pa.table({"video_id": list(TRAIN), "label": labels, "predicted": predicted,
                      "outer_fold": [0, 1, 0, 1, 0, 1], "cv_group": list(range(6))})
    meta = {"macro_f1_labels": ["Anger", "Joy"], "level": 0.95, "macro_f1": 2 / 3,
            "interval": [0.3, 0.9], "variant_chosen_in_folds": True}
    pq.write_table(table.replace_schema_metadata({"nested_estimate": json.dumps(meta)}),
                   directory / PREDICTIONS_FILE)


@pytest.fixture()
def store(tmp_path):
    """A store with two models: m-new (current labels, nested estimate, saved predictions)
    and m-old (other labels, --estimate off)."""
    s = FeatureStore(tmp_path / "s")
    _fill(s)
    con = s.connect()
    n, sha = labelled_set(con)
    con.close()
    lineage = {"labels_sha256": sha, "n_labelled": n, "variant": "single", "dims": {"text": 4},
               "estimate": {"macro_f1": 2 / 3, "interval": [0.3, 0.9], "level": 0.95, "n_videos": 6,
                            "outer_folds": 2},
               "text_origins": {ASR_SMALL_EN: 6}, "text_unit": "word",
               "store_snapshot": {"videos": 9, "windows": 27}, "study": "s1", "seed": 0}
    model = FusionModel(family="pooled-logreg", method="mean", modalities=("text",), dims={"text": 4},
                        estimator=LogRegClassifier(C=1.0).fit(np.random.default_rng(1).standard_normal((8, 5)),  # 4 means + frac
                                                              np.arange(8) % 2),
                        encoders={"text": {"encoder_id": "text-4", "name": "text-enc"}},
                        pool_stats="mean", model_id="m-new", lineage=lineage)
    model.save(s.models_dir / "m-new")
    _nested_predictions(s.models_dir / "m-new")
    snap = s.current_snapshot()
    s.put("models", [
        {"model_id": "m-old", "family": "lightgbm", "method": "majority", "cv_macro_f1": 0.4,
         "path": "models/m-old", "encoders": json.dumps({"text": "text-4"}),
         "lineage": json.dumps({"labels_sha256": "0" * 64, "n_labelled": 2, "estimate": None}),
         "snapshot_id": 1, "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc)},
        {"model_id": "m-new", "family": "pooled-logreg", "method": "mean", "cv_macro_f1": 0.7,
         "path": "models/m-new", "encoders": json.dumps({"text": "text-4"}), "lineage": json.dumps(lineage),
         "snapshot_id": snap, "created_at": datetime(2026, 2, 1, tzinfo=timezone.utc)}])
    return s


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli_module.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- models
def test_models_list_newest_first_with_estimate_and_feature_sets(store, capsys):
    code, out, _ = run(capsys, "models", "list", "--store", store.root, "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["model_id"] for r in rows] == ["m-new", "m-old"]
    new, old = rows
    assert new["current"] is True and old["current"] is False
    assert new["estimate"] == pytest.approx(2 / 3) and (new["interval_low"], new["interval_high"]) == (0.3, 0.9)
    assert old["estimate"] is None and old["selection_score"] == 0.4
    assert new["feature_sets"] == "text=text-4" and new["variant"] == "single"
    assert new["snapshot_id"] == store.current_snapshot() - 1   # the put of the models row came after
    code, out, _ = run(capsys, "models", "list", "--store", store.root, "--format", "csv")
    assert out.splitlines()[0].startswith("model_id,created,family,variant,method,estimate")


def test_models_show_reports_the_nested_estimate_and_per_class_table(store, capsys):
    code, out, _ = run(capsys, "models", "show", "--store", store.root, "m-new", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["estimate"]["interval"] == [0.3, 0.9]
    per_class = {r["class"]: r for r in report["per_class"]}
    assert per_class["Joy"]["precision"] == pytest.approx(2 / 3) and per_class["Joy"]["support"] == 3
    assert per_class["Anger"]["recall"] == pytest.approx(2 / 3) and per_class["Fear"]["support"] == 0
    assert report["feature_sets"] == [{"modality": "text", "encoder_id": "text-4", "name": "text-enc", "dim": 4}]
    assert report["snapshot"]["videos"] == 9 and report["snapshot"]["snapshot_id"] >= 1
    assert report["lineage"]["text_origins"] == {ASR_SMALL_EN: 6}
    code, out, _ = run(capsys, "models", "show", "--store", store.root, "m-new")
    assert code == 0
    assert "nested estimate: macro-F1 0.667, 95% interval 0.300-0.900 over 6 labelled videos" in out
    assert "per class, from the nested predictions" in out and "the current model" in out
    code, out, _ = run(capsys, "models", "show", "--store", store.root, "m-old")
    assert code == 0 and "nested estimate: none (trained with --estimate off)" in out
    code, out, err = run(capsys, "models", "show", "--store", store.root, "m-old", "--format", "csv")
    assert code == 2 and err.startswith("error: model m-old has no nested predictions")


# ---------------------------------------------------------------- remove
def _dump(store: FeatureStore, table: str) -> list[tuple]:
    return sorted(map(str, store.query(f"SELECT * FROM {table}").to_pylist()))


def test_video_keyed_tables_are_every_table_with_a_video_id(store):
    tables = store.query("SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = 'video_id' "
                         "AND database_name = current_database() AND NOT internal "
                         "AND table_name IN (SELECT table_name FROM duckdb_tables())").column(0).to_pylist()
    assert set(tables) == set(VIDEO_KEYED_TABLES)


def test_remove_deletes_every_row_of_the_videos_and_nothing_else(store, capsys):
    before = {t: _dump(store, t) for t in VIDEO_KEYED_TABLES}
    code, out, _ = run(capsys, "remove", "--store", store.root, "--videos", "tr0,te1")
    assert code == 0 and out.startswith("removed 2 video(s) in one commit")
    con = store.connect()
    assert set(video_rows(con, ["tr0", "te1"]).values()) == {0}
    con.close()
    for t in VIDEO_KEYED_TABLES:   # the other videos' rows are untouched, value for value
        assert _dump(store, t) == [r for r in before[t] if "'tr0'" not in r and "'te1'" not in r]
    # an unknown id: nothing removed, exit 2
    code, _, err = run(capsys, "remove", "--store", store.root, "--videos", "tr1,nope")
    assert code == 2 and err.startswith("error: no video 'nope' in the store")
    assert store.query("SELECT count(*) AS n FROM videos WHERE video_id = 'tr1'")["n"][0].as_py() == 1


def test_remove_a_whole_manifest(store, tmp_path, capsys):
    manifest = tmp_path / "test.csv"
    manifest.write_text("id,video\nte2,te2.mp4\nnever-stored,x.mp4\nte0,te0.mp4\n")
    code, out, _ = run(capsys, "remove", "--store", store.root, "--manifest", manifest)
    assert code == 0 and "removed 2 video(s)" in out
    assert "1 id(s) were not in the store (first: 'never-stored') and were skipped" in out
    assert store.query("SELECT video_id FROM videos WHERE split = 'test'").column(0).to_pylist() == ["te1"]
    code, _, err = run(capsys, "remove", "--store", store.root, "--manifest", manifest)   # none left
    assert code == 2 and err.startswith("error: no video 'te2', 'never-stored', 'te0' in the store")


def test_a_concurrent_reader_never_sees_a_half_removed_video(store):
    """A reader querying every table at once, over and over while the remove commits, sees the
    video whole or gone, never part of it."""
    whole = video_rows(store.connect(), ["tr2"])
    assert all(n > 0 for n in whole.values())
    seen: list[dict] = []
    removed, stop, first_read = threading.Event(), threading.Event(), threading.Event()

    def reader():
        while not stop.is_set():
            con = store.connect(read_only=True)
            try:
                seen.append((removed.is_set(), video_rows(con, ["tr2"])))
            finally:
                con.close()
            first_read.set()

    thread = threading.Thread(target=reader)
    thread.start()
    first_read.wait(60)
    remove_videos(store, ["tr2"])
    removed.set()
    while not any(after for after, _ in seen[-1:]) or sum(after for after, _ in seen) < 3:
        threading.Event().wait(0.01)
    stop.set()
    thread.join(60)
    gone = {t: 0 for t in whole}
    assert all(rows in (whole, gone) for _, rows in seen), [r for _, r in seen if r not in (whole, gone)]
    assert seen[0][1] == whole and all(rows == gone for after, rows in seen if after)


# ---------------------------------------------------------------- export --manifest, predict --format
def test_export_only_the_manifests_videos_in_its_order(store, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,video\nte2,a.mp4\nte0,b.mp4\n")
    out = tmp_path / "sub.csv"
    code, _, err = run(capsys, "export-submission", "--store", store.root, "--out", out, "--manifest", manifest)
    assert code == 0, err
    with open(out, newline="") as f:
        assert [r["id"] for r in csv.DictReader(f)] == ["te2", "te0"]
    code, _, _ = run(capsys, "export-submission", "--store", store.root, "--out", out)
    with open(out, newline="") as f:   # default: every test video of the store
        assert [r["id"] for r in csv.DictReader(f)] == TEST
    manifest.write_text("id,video\nte2,a.mp4\nnew9,c.mp4\n")
    code, _, err = run(capsys, "export-submission", "--store", store.root, "--out", out, "--manifest", manifest)
    assert code == 2 and err.startswith("error: 1 of the manifest's 2 video(s) are not test videos")
    with open(out, newline="") as f:   # the refused export left the old file
        assert len(list(csv.DictReader(f))) == len(TEST)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_predict_machine_formats_keep_stdout_to_rows(store, fmt, capsys):
    code, out, err = run(capsys, "predict", "--store", store.root, "--model", "m-new", "--format", fmt, "--quiet")
    assert code == 0, err
    assert "window probabilities written" in err
    rows = json.loads(out) if fmt == "json" else list(csv.DictReader(out.splitlines()))
    per_method: dict[str, int] = {}
    for r in rows:
        per_method[r["method"]] = per_method.get(r["method"], 0) + int(r["videos"])
    assert per_method.keys() >= {"mean", "majority"} and set(per_method.values()) == {len(TEST)}


# ---------------------------------------------------------------- predict-video's text origin
def test_predictor_serves_the_models_own_text_origin(store, capsys):
    from fusion.predict import Predictor, model_text_origin, served_text_note
    predictor = Predictor(store.models_dir / "m-new")
    assert (predictor.asr_model, predictor.language, predictor.text_unit) == ("small", "en", "word")
    transcriber = predictor.transcriber()     # built, not loaded: Whisper loads on first use
    assert transcriber.name == "faster-whisper:small" and transcriber.language == "en"
    assert served_text_note(predictor.model.lineage, "m-new", predictor.text_origin) is None
    overridden = Predictor(store.models_dir / "m-new", language="id", text_unit="segment")
    assert (overridden.asr_model, overridden.language, overridden.text_unit) == ("small", "id", "segment")
    note = served_text_note(overridden.model.lineage, "m-new", overridden.text_origin)
    assert note.startswith(f"note: model m-new learned from text of {ASR_SMALL_EN} (6 videos); these "
                           "files' text comes from asr:faster-whisper:small/id")
    # the packaged Whisper base, and a model that learned from transcript files only
    assert model_text_origin({"text_origins": {"asr:faster-whisper:whisper-base-ct2/id": 3}}).asr_model is None
    assert model_text_origin({"text_origins": {"transcript files": 3}}).source == \
        "asr:faster-whisper:whisper-base-ct2/id"


@pytest.mark.slow
def test_models_show_reads_what_a_real_tune_fusion_saved(tmp_path, capsys):
    """End to end: a tiny tune-fusion with the nested estimate, then `models list` and `models
    show` read its row, lineage and saved nested predictions (real files, no hand-made ones)."""
    from test_fusion_tune import FAST, make_store
    store = make_store(tmp_path / "s", n_videos=24)
    code, out, err = run(capsys, "tune-fusion", "--store", store.root, "--trials", "2", "--folds", "3",
                         "--families", ",".join(FAST), "--confirm-top", "0", "--estimate-trials", "1",
                         "--quiet")
    assert code == 0, err
    code, out, _ = run(capsys, "models", "list", "--store", store.root, "--format", "json")
    (row,) = json.loads(out)
    assert row["current"] is True and 0 <= row["interval_low"] <= row["estimate"] <= row["interval_high"] <= 1
    code, out, _ = run(capsys, "models", "show", "--store", store.root, row["model_id"], "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["per_class"] is not None and report["notes"] == []
    macro = report["per_class"][-1]
    assert macro["class"].startswith("macro") and macro["support"] == 24
    assert {f["modality"] for f in report["feature_sets"]} == set(report["lineage"]["dims"])
    assert report["snapshot"]["snapshot_id"] == row["snapshot_id"]


def test_predict_video_warns_only_when_the_text_origin_is_overridden(store, tmp_path, capsys):
    """The model learned from Whisper small in English: served so by default (no note); with
    --language id, the note `predict` gives, before any file is read. (The model's encoder
    'text-enc' exists only in this store's lineage, so both runs then stop on it.)"""
    clip = tmp_path / "clip.mp4"
    base = ["predict-video", "--store", store.root, "--model", "m-new", clip, "--quiet", "--format", "json"]
    code, _, err = run(capsys, *base)
    assert code == 2 and not any(line.startswith("note:") for line in err.splitlines()), err
    assert err.splitlines()[-1].startswith("error: unknown encoder 'text-enc'")
    code, _, err = run(capsys, *base, "--language", "id")
    assert code == 2 and err.startswith(f"note: model m-new learned from text of {ASR_SMALL_EN} (6 videos); "
                                        "these files' text comes from asr:faster-whisper:small/id"), err


def test_use_encoders_json_is_only_rows(store, capsys):
    code, out, err = run(capsys, "use-encoders", "--store", store.root, "text-4", "--format", "json")
    assert code == 0 and "fusion_vectors serves text from text-4" in err
    (row,) = json.loads(out)
    assert row["encoder_id"] == "text-4" and row["in_fusion_vectors"] is True and row["n_videos"] == 9
