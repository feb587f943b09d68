"""The audit finds planted duplicates, conflicts and leakage, and counts balance and coverage."""
import json

import numpy as np
import pytest

from featurestore.audit import TABLES, audit
from featurestore.store import FeatureStore

DIMS = {"audio": 32, "video": 3, "text": 40}
N_WIN = 4


def _add(store, vid, split, label, mats, transcripts, path=None, status="ok"):
    store.put("videos", [{"video_id": vid, "split": split, "label": label, "status": status,
                                 "path": path}])
    store.put("windows", [{"video_id": vid, "window_idx": i, "start_s": i * .5, "end_s": i * .5 + 1,
                                  "transcript": transcripts[i]} for i in range(N_WIN)])
    for m, d in DIMS.items():
        store.write_embeddings(f"{m}-{d}", d, [vid] * N_WIN, range(N_WIN), mats[m])


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A store with known duplicates; returns (store, expected pairs {(a, b): kind})."""
    tmp = tmp_path_factory.mktemp("audit")
    store = FeatureStore(tmp / "s")
    for m, d in DIMS.items():
        store.register_encoder(f"{m}-enc", m, d, "1", {}, None, {}, f"{m}-{d}")
    rng = np.random.default_rng(7)
    # A large offset shared by every video, as sentence encoders have: raw cosines of
    # unrelated videos exceed 0.98, so only the centred comparison finds the planted pairs.
    offset = {m: 5 * rng.standard_normal(d).astype(np.float32) for m, d in DIMS.items()}

    def mats():
        out = {m: offset[m] + rng.standard_normal((N_WIN, d)).astype(np.float32) for m, d in DIMS.items()}
        # Every video gets the same 3-D face vector: a low-dim modality must not decide.
        out["video"] = np.tile(np.array([0.2, 0.5, 0.3], np.float32), (N_WIN, 1))
        return out

    def speech(k):
        return [f"kata {k} {i}" if i % 2 else None for i in range(N_WIN)]

    labels = ["Joy", "Anger", "Fear", "Trust", "Proud", "Sadness", "Surprise"]
    base = {}
    same_bytes = [tmp / "a.mp4", tmp / "b.mp4"]
    for p in same_bytes:
        p.write_bytes(b"\x00\x01 the same bytes under two names")
    (tmp / "c.mp4").write_bytes(b"other bytes")
    for k, label in enumerate(labels):
        base[k] = mats()
        path = {5: str(same_bytes[0]), 6: str(tmp / "c.mp4")}.get(k, f"/nowhere/v{k}.mp4")
        _add(store, f"v{k}", "train", label, base[k], speech(k), path=path)
    # Test copy of v0's embeddings: exact, test-train.
    _add(store, "t_exact", "test", None, base[0], ["lain"] * N_WIN, path="/nowhere/t1.mp4")
    _add(store, "t_exact2", "test", None, base[0], ["lagi"] * N_WIN, path="/nowhere/t2.mp4")
    # Near copy of v1 with another label: near + conflict.
    near = {m: a + (0.05 * rng.standard_normal(a.shape)).astype(np.float32) if m != "video" else a
            for m, a in base[1].items()}
    _add(store, "v_near", "train", "Surprise", near, speech("near"), path="/nowhere/vn.mp4")
    # Same transcript as v2, unrelated vectors, another label: transcript + conflict.
    _add(store, "v_same_text", "train", "Neutral", mats(), speech(2), path="/nowhere/vt.mp4")
    # Same path as v4: exact test-train duplicate (the competition's repeated URLs).
    _add(store, "t_path", "test", None, mats(), [None] * N_WIN, path="/nowhere/v4.mp4")
    # Same bytes as v5 under another file name.
    _add(store, "t_media", "test", None, mats(), [None] * N_WIN, path=str(same_bytes[1]))
    # Two silent videos: empty transcripts must not count as identical.
    _add(store, "t_silent", "test", None, mats(), ["[NO_SPEECH]"] * N_WIN, path="/nowhere/s1.mp4")
    missing = mats()
    missing["audio"][:2] = np.nan
    store.put("videos", [{"video_id": "v_fail", "split": "train", "label": "Joy", "status": "failed",
                                 "error": "cannot decode"}])
    _add(store, "v_missing", "train", "Trust", missing, [""] * N_WIN, path="/nowhere/vm.mp4")
    expected = {("t_exact", "v0"): "exact", ("t_exact2", "v0"): "exact", ("t_exact", "t_exact2"): "exact",
                ("v1", "v_near"): "near",
                ("v2", "v_same_text"): "transcript", ("t_path", "v4"): "exact", ("t_media", "v5"): "exact"}
    return store, expected


@pytest.mark.slow
def test_planted_duplicates_conflicts_and_leakage(planted, tmp_path):
    store, expected = planted
    report = audit(store)
    dup = report["duplicates"]
    assert dict(zip(zip(dup.video_a, dup.video_b), dup.kind)) == expected
    row = dup.set_index(["video_a", "video_b"])
    assert bool(row.loc[("t_path", "v4"), "same_path"]) and not bool(row.loc[("t_path", "v4"), "same_media"])
    assert bool(row.loc[("t_media", "v5"), "same_media"])
    assert bool(row.loc[("v2", "v_same_text"), "same_transcript"])
    assert row.loc[("t_exact", "v0"), "audio_sim"] == pytest.approx(1.0, abs=1e-6)
    assert 0.98 <= row.loc[("v1", "v_near"), "text_sim"] < 0.9999

    conflicts = report["label_conflicts"]
    assert set(zip(conflicts.video_a, conflicts.video_b)) == {("v1", "v_near"), ("v2", "v_same_text")}

    tt = report["test_train_duplicates"]
    assert sorted(zip(tt.test_id, tt.train_id, tt.train_label)) == [
        ("t_exact", "v0", "Joy"), ("t_exact2", "v0", "Joy"), ("t_media", "v5", "Sadness"),
        ("t_path", "v4", "Proud")]

    groups = report["duplicate_groups"].set_index("group_id")
    assert groups["videos"].to_dict() == {"t_exact": "t_exact t_exact2 v0", "v1": "v1 v_near",
                                          "v2": "v2 v_same_text", "t_path": "t_path v4", "t_media": "t_media v5"}
    assert groups.loc["v1", "labels"] == "Anger: 1, Surprise: 1" and groups.loc["v1", "n_labels"] == 2
    assert (groups.loc["t_exact", "n_videos"], groups.loc["t_exact", "n_test"]) == (3, 2)
    assert list(groups.index[:2]) == ["v1", "v2"]                 # conflicting groups first
    assert report.params["deciding_modalities"] == ["audio", "text"]
    assert report.params["media_hashed"] == 3

    # A stricter threshold drops the near pair; without hashing the byte-identical pair goes.
    strict = audit(store, threshold=0.9999, hash_media=False)
    pairs = set(zip(strict["duplicates"].video_a, strict["duplicates"].video_b))
    assert pairs == set(expected) - {("v1", "v_near"), ("t_media", "v5")}


def test_balance_speech_and_coverage(planted, tmp_path):
    store, _ = planted
    report = audit(store)
    bal = report["class_balance"].query("split == 'train'").set_index("label")
    assert list(bal.index) == ["Anger", "Fear", "Joy", "Neutral", "Proud", "Sadness", "Surprise", "Trust"]
    assert bal["n_videos"].to_dict() == {"Anger": 1, "Fear": 1, "Joy": 2, "Neutral": 1, "Proud": 1,
                                         "Sadness": 1, "Surprise": 2, "Trust": 2}
    assert bal.loc["Joy", "n_embedded"] == 1          # v_fail is labelled but failed
    assert bal["share"].sum() == pytest.approx(1.0, abs=1e-3)

    speech = report["speech"].set_index("split")
    # train: 10 ok videos x 4 windows; half of 9 speaking videos' windows are silent, v_missing all.
    assert speech.loc["train", "n_windows"] == 40
    assert speech.loc["train", "n_windows_no_speech"] == 9 * 2 + 4
    assert speech.loc["train", "n_videos_no_speech"] == 1
    assert speech.loc["test", "n_windows_no_speech"] == 12           # t_path, t_media, t_silent

    cov = report["coverage"].set_index(["split", "modality"])
    assert list(report["coverage"].modality[:3]) == ["audio", "video", "text"]
    assert cov.loc[("train", "audio"), "n_present"] == 38
    assert cov.loc[("train", "audio"), "share_present"] == pytest.approx(38 / 40, abs=1e-4)
    assert cov.loc[("train", "audio"), "missing_reasons"] == "missing: 2"
    assert cov.loc[("test", "text"), "share_present"] == 1.0

    status = report["status"]
    assert set(zip(status.split, status.status, status.n_videos)) == {
        ("train", "ok", 10), ("train", "failed", 1), ("test", "ok", 5)}
    failures = report["failures"]
    assert list(failures.video_id) == ["v_fail"] and list(failures.error) == ["cannot decode"]


def test_renderings(planted, tmp_path):
    store, _ = planted
    report = audit(store)
    text = report.to_text()
    assert "Test videos that duplicate training videos (4 rows)" in text
    assert "t_media" in text and "Sadness" in text
    data = json.loads(report.to_json())
    assert set(data["tables"]) == set(TABLES)
    assert len(data["tables"]["duplicates"]) == 7
    assert len(data["tables"]["duplicate_groups"]) == 5
    assert data["params"]["threshold"] == 0.98
    paths = report.to_csv(tmp_path / "audit")
    assert sorted(p.name for p in paths) == sorted(f"{t}.csv" for t in TABLES)
    assert (tmp_path / "audit" / "label_conflicts.csv").read_text().count("\n") == 3
    frames = report.to_frames()
    assert list(frames) == list(TABLES)


def test_bad_threshold(planted):
    store, _ = planted
    with pytest.raises(ValueError, match="threshold=1.5"):
        audit(store, threshold=1.5)


def test_audit_and_cv_agree_on_the_duplicates(planted):
    """The pairs the audit lists are exactly the pairs CV leakage groups merge, and its
    duplicate groups are CV's groups of more than one video (same videos, one definition)."""
    from fusion.cv import leakage_groups, video_evidence
    from fusion.data import load_store_window_data

    store, _ = planted
    # CV compares the fingerprints stored on ingest; the audit's extra file hashing is off so
    # that both see the same evidence.
    report = audit(store, hash_media=False)
    listed = set(zip(report["duplicates"].video_a, report["duplicates"].video_b))
    data = load_store_window_data(store, {m: c["encoder_id"] for m, c in store.feature_sets().items()},
                                  labelled=False)
    ids = data.videos["video_id"].tolist()
    con = store.connect()
    try:
        groups, cv = leakage_groups(data, video_evidence(con, ids))
    finally:
        con.close()
    assert len(ids) == 15                           # every stored video but v_fail (no windows)
    assert listed == set(zip(cv.pairs.video_a, cv.pairs.video_b)) and len(listed) == 6
    assert cv.merged["vectors"] == 3 and cv.merged["transcript"] == 1 and cv.merged["media"] == 1
    dup = report["duplicates"].set_index(["video_a", "video_b"])
    cvp = cv.pairs.set_index(["video_a", "video_b"])
    for col in ("audio_sim", "text_sim", "transcript_jaccard"):
        np.testing.assert_allclose(dup.loc[sorted(listed), col].astype(float),
                                   cvp.loc[sorted(listed), col].astype(float), rtol=1e-6)
    cv_groups = {}
    for vid, g in zip(ids, groups):
        cv_groups.setdefault(g, []).append(vid)
    assert sorted(" ".join(sorted(m)) for m in cv_groups.values() if len(m) > 1) == \
        sorted(report["duplicate_groups"]["videos"])


def test_near_duplicate_transcripts_are_listed(tmp_path):
    store = FeatureStore(tmp_path / "s")
    said = {"a": "Hari ini aku senang sekali, karena bertemu teman lama di pasar pagi.",
            "b": "hari ini AKU senang sekali karena ketemu teman lama di pasar pagi!",
            "c": "Besok kita berangkat ke Bandung naik kereta pertama jam lima."}
    for vid, text in said.items():
        store.put("videos", [{"video_id": vid, "split": "train", "label": "Joy", "status": "ok",
                              "path": f"/nowhere/{vid}.mp4"}])
        store.put("windows", [{"video_id": vid, "window_idx": 0, "start_s": 0.0, "end_s": 1.0,
                               "transcript": text}])
    dup = audit(store)["duplicates"]
    assert dup[["kind", "video_a", "video_b"]].values.tolist() == [["transcript", "a", "b"]]
    assert bool(dup.near_transcript[0]) and not bool(dup.same_transcript[0])
    assert 0.5 <= dup.transcript_jaccard[0] < 1
