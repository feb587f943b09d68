"""Speaker groups from the voice: real espeak-ng voices, the real Resemblyzer d-vector model and
a real DuckLake store (featurestore.speakers, the speaker stage of embed, fusion's use of them)."""
import numpy as np
import pandas as pd
import pytest

import media_fixtures as mf

pytestmark = [pytest.mark.usefixtures("espeak_ng")]
pytest.importorskip("resemblyzer")

#: Two espeak-ng voices Resemblyzer tells apart (cosine distance ~0.4; one voice across
#: sentences ~0.05), and sentences different enough that no duplicate rule joins their clips.
VOICE_A = ("id", 30)
VOICE_B = ("id+f3", 70)
TEXTS = (mf.LONG_TEXT,
         "Kemarin sore kami pergi ke pasar untuk membeli sayur, buah dan ikan segar bersama ibu.",
         "Besok pagi adik akan berangkat sekolah naik sepeda melewati sawah yang luas dan hijau.")


def _samples(text: str, voice: tuple[str, int]) -> np.ndarray:
    import librosa
    y, rate = mf.espeak(text, voice=voice[0], pitch=voice[1])
    return librosa.resample(y, orig_sr=rate, target_sr=16000).astype(np.float32)


def _voice(enc, y: np.ndarray) -> np.ndarray:
    n = max(1, int(len(y) / 16000 / 0.5) - 1)
    X, reasons = enc.encode_video(y, [(k * 0.5, k * 0.5 + 1.0) for k in range(n)])
    assert any(r is None for r in reasons)
    return np.nanmean(X, axis=0)


def test_two_voices_cluster_apart_and_one_voice_together():
    from featurestore.encoders.registry import get_encoder
    from featurestore.speakers import DEFAULT_THRESHOLD, agreement, centre, cluster
    enc = get_encoder("resemblyzer", device="cpu")
    voices, truth = [], []
    for name, voice in (("A", VOICE_A), ("B", VOICE_B)):
        for text in TEXTS:
            voices.append(_voice(enc, _samples(text, voice)))
            truth.append(name)
    V, _ = centre(np.array(voices))
    codes = cluster(V, DEFAULT_THRESHOLD)
    assert len(set(codes[:3])) == 1 and len(set(codes[3:])) == 1 and codes[0] != codes[3]
    assert agreement(truth, codes)["ari"] == 1.0


def test_no_speech_window_has_no_voice():
    from featurestore.encoders.base import REASON_NO_AUDIO, REASON_NO_SPEECH
    from featurestore.encoders.registry import get_encoder
    enc = get_encoder("resemblyzer", device="cpu")
    X, reasons = enc.encode_video(np.zeros(48000, np.float32), [(0, 1), (0.5, 1.5), (1, 2)])
    assert reasons == [REASON_NO_SPEECH] * 3 and np.isnan(X).all()
    X, reasons = enc.encode_video(None, [(0, 1)])
    assert reasons == [REASON_NO_AUDIO]


def test_pair_threshold_separates_within_from_between():
    from featurestore.speakers import pair_threshold
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16))
    V = np.repeat(centres, 4, axis=0) + 0.05 * rng.standard_normal((12, 16))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    groups = np.repeat(np.array(["a", "b", "c"], dtype=object), 4)
    t, info = pair_threshold(V, groups, "balanced")
    assert info["balanced_pair_error"] == 0.0 and info["within_median"] < t < info["between_median"]
    # The merging cut: 90 % of one speaker's pairs at or below it, every other pair above.
    t9, info9 = pair_threshold(V, groups, "within-0.9")
    D = 1 - V @ V.T
    same = groups[:, None] == groups[None, :]
    within = D[np.triu(same, 1)]
    assert 0.85 <= np.mean(within <= t9) <= 0.95 and (D[~same] > t9).all()
    assert pair_threshold(V, np.array([None] * 12, dtype=object)) is None


def _acted_voices(rng, speakers: int, emotion_scale: float):
    """Unit voices of ``speakers`` speakers acting 4 emotions 3 times each: a speaker centre
    plus a shared per-emotion offset of ``emotion_scale``, plus noise."""
    d = 32
    centres = rng.standard_normal((speakers, d))
    offsets = emotion_scale * rng.standard_normal((4, d))
    rows, who, emo = [], [], []
    for s in range(speakers):
        for e in range(4):
            for _ in range(3):
                rows.append(centres[s] + offsets[e] + 0.5 * rng.standard_normal(d))
                who.append(f"s{s}")
                emo.append(f"e{e}")
    V = np.array(rows)
    return V / np.linalg.norm(V, axis=1, keepdims=True), np.array(who, dtype=object), np.array(emo, dtype=object)


def test_removing_emotion_directions_clusters_new_speakers_by_voice_not_emotion():
    from featurestore.speakers import (agreement, centre, cluster, emotion_directions, pair_threshold,
                                       remove_directions)
    rng = np.random.default_rng(3)
    # The emotion moves a voice further than a change of speaker (as acted speech does).
    V, who, emo = _acted_voices(rng, 6, emotion_scale=1.5)
    V = centre(V)[0]
    known = np.isin(who, ["s0", "s1", "s2", "s3"])
    new = ~known
    # Learned from the known speakers only (grouped, labelled); the new ones are clustered.
    B = emotion_directions(V[known], who[known], emo[known])
    assert B is not None and B.shape == (3, V.shape[1])
    assert np.allclose(B @ B.T, np.eye(3), atol=1e-9)
    scores = {}
    for name, X in (("raw", V), ("projected", remove_directions(V, B))):
        t, _ = pair_threshold(X[known], who[known], "within-0.9")
        codes = cluster(X[new], t)
        scores[name] = (agreement(who[new], codes)["ari"], agreement(emo[new], codes)["ari"])
    assert scores["projected"][0] > 0.8 and scores["projected"][1] < 0.05, scores
    assert scores["raw"][0] < 0.3 and scores["raw"][1] > 0.2, scores   # raw: clusters follow the emotion


def test_emotion_directions_need_grouped_labelled_videos():
    from featurestore.speakers import MIN_EMOTION_VIDEOS, emotion_directions, remove_directions
    rng = np.random.default_rng(4)
    V, who, emo = _acted_voices(rng, 3, emotion_scale=1.0)
    none = np.array([None] * len(V), dtype=object)
    assert emotion_directions(V, none, emo) is None          # no manifest group
    assert emotion_directions(V, who, none) is None          # no label
    assert emotion_directions(V, who, None) is None
    one = np.where(emo == "e0", emo, None)                   # one emotion: nothing to remove
    assert emotion_directions(V, who, one) is None
    # An emotion with fewer than MIN_EMOTION_VIDEOS grouped voices does not enter.
    few = emo.copy()
    few[(emo == "e3") & (np.arange(len(V)) % 3 != 0)] = None
    assert (few == "e3").sum() < MIN_EMOTION_VIDEOS
    assert emotion_directions(V, who, few).shape[0] == 2
    assert remove_directions(V, None) is V


def test_a_store_from_before_speaker_groups_gains_them_on_upgrade(tmp_path):
    """The speaker table is in `added_tables`, which an upgrade runs (it skips `tables`), so a
    store made before speaker groups opens with video_speakers working and no group drawn."""
    import json
    from featurestore.speakers import infer_speaker_groups
    from featurestore.store import FeatureStore
    root = tmp_path / "s"
    FeatureStore(root).close()
    con = FeatureStore(root, create=False).connect(read_only=False)
    con.execute("DROP VIEW video_speakers")
    con.execute("DROP TABLE speaker_groups")
    con.execute("UPDATE store_commits SET schema_version = 1")
    con.close()
    info = json.loads((root / "store.json").read_text())
    del info["schema_version"]
    (root / "store.json").write_text(json.dumps(info))
    store = FeatureStore(root, create=False)
    assert store.query("SELECT count(*) AS n FROM video_speakers")["n"][0].as_py() == 0
    assert infer_speaker_groups(store).n_videos == 0


# ---------------------------------------------------------------------- a store with voices
@pytest.fixture(scope="module")
def voice_store(tmp_path_factory):
    """Six clips: voice A x3 (a1, a2 in manifest group 'spkA'; a3 in manifest group 'other'),
    voice B x2 without a group (the planted same-voice pair), s1 silent without a group; the
    real speaker stage of embed, then the clustering step."""
    from featurestore.embed import Embedder
    from featurestore.encoders.registry import get_encoder
    from featurestore.speakers import infer_speaker_groups
    from featurestore.store import FeatureStore
    root = tmp_path_factory.mktemp("voices")
    rows = []
    plan = [("a1", VOICE_A, TEXTS[0], "spkA", "Joy"), ("a2", VOICE_A, TEXTS[1], "spkA", "Sadness"),
            ("a3", VOICE_A, TEXTS[2], "other", "Joy"), ("b1", VOICE_B, TEXTS[0], None, "Sadness"),
            ("b2", VOICE_B, TEXTS[1], None, "Joy")]
    for vid, voice, text, group, label in plan:
        path = mf.make_audio_only(root / f"{vid}.wav", text, voice=voice[0], pitch=voice[1])
        rows.append((vid, str(path), group, label))
    silent = mf._write(root / "s1.wav", None, 0, 1, (np.zeros(16000 * 6, np.float32), 16000), marker=False)
    rows.append(("s1", str(silent), None, "Sadness"))
    manifest = pd.DataFrame([{"video_id": v, "split": "train", "label": y, "raw_label": y, "group": g,
                              "path": p, "transcript_path": None, "manifest_row": i + 1, "error": None}
                             for i, (v, p, g, y) in enumerate(rows)], dtype=object)
    store = FeatureStore(root / "store")
    encoders = {"audio": get_encoder("librosa-descriptors"), "speaker": get_encoder("resemblyzer", device="cpu")}
    report = Embedder(store, encoders, progress=False, log=lambda m: None).run(manifest)
    assert report.ok and report.stage_s["speaker"] > 0
    speakers = infer_speaker_groups(store)
    return store, root, speakers


def _speakers(store) -> pd.DataFrame:
    from featurestore.speakers import video_speakers
    con = store.connect()
    try:
        return video_speakers(con).set_index("video_id")
    finally:
        con.close()


def test_speaker_stage_is_stored_but_never_served(voice_store):
    store, _, report = voice_store
    assert set(store.feature_sets()) == {"audio"}
    assert store.feature_sets()["audio"]["name"] == "librosa-descriptors"
    assert report.n_videos == 5 and report.threshold_source.startswith("default")


def test_removing_emotion_without_grouped_labelled_voices_says_so(voice_store):
    import subprocess
    import sys
    from pathlib import Path
    store = voice_store[0]
    before = _speakers(store)["inferred_group"]
    cli = Path(__file__).resolve().parent.parent / "cli.py"
    p = subprocess.run([sys.executable, str(cli), "speakers", "--store", str(store.root), "--remove-emotion"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # One grouped, labelled voice per emotion here: nothing to learn the directions from.
    assert "no emotion directions removed" in p.stdout, p.stdout
    pd.testing.assert_series_equal(_speakers(store)["inferred_group"], before)


def test_manifest_group_overrides_inferred(voice_store):
    sp = _speakers(voice_store[0])
    # a3 speaks with a1's voice: inferred together, but its manifest group wins.
    assert sp.loc["a3", "inferred_group"] == sp.loc["a1", "inferred_group"]
    assert sp.loc["a3", "speaker"] == "other" and sp.loc["a3", "speaker_source"] == "manifest"
    assert sp.loc["a1", "speaker"] == "spkA"
    assert sp.loc["b1", "speaker"] == sp.loc["b2", "speaker"] == sp.loc["b1", "inferred_group"]
    assert sp.loc["b1", "speaker_source"] == "inferred" and sp.loc["b1", "speaker"] != sp.loc["a1", "inferred_group"]


def test_no_speech_video_gets_no_group_and_the_pooled_fallback(voice_store):
    from fusion.data import load_window_data
    from fusion.groupnorm import POOLED, window_groups
    store = voice_store[0]
    sp = _speakers(store)
    assert pd.isna(sp.loc["s1", "speaker"]) and pd.isna(sp.loc["s1", "inferred_group"])
    con = store.connect()
    try:
        data = load_window_data(con, labelled=True)
    finally:
        con.close()
    pools = dict(zip(data.videos["video_id"], data.videos["speaker_pool"]))
    assert pools["s1"] == POOLED and pools["a1"] == "spkA" and pools["b1"] == sp.loc["b1", "speaker"]
    assert set(window_groups(data)[data.video_code == list(data.videos["video_id"]).index("s1")]) == {POOLED}


def test_inferred_speaker_never_straddles_a_fold(voice_store):
    from fusion.cv import SPEAKER_RULE, prepare
    from fusion.data import load_window_data
    store = voice_store[0]
    con = store.connect()
    try:
        data = load_window_data(con, labelled=True)
        ids = list(data.videos["video_id"])
        for seed in range(3):
            td = prepare(con, n_folds=2, seed=seed, data=data, speaker_groups="auto")
            assert td.groups[ids.index("b1")] == td.groups[ids.index("b2")]
            for train, valid in td.folds:
                sides = {("b1" in {ids[i] for i in train}), ("b2" in {ids[i] for i in train})}
                assert len(sides) == 1
        assert td.group_report.merged[SPEAKER_RULE] >= 1
        assert "by inferred speaker" in td.group_report.describe()
        off = prepare(con, n_folds=2, seed=0, data=data, speaker_groups="off")
        assert SPEAKER_RULE not in off.group_report.merged
    finally:
        con.close()


@pytest.mark.slow
def test_predict_video_finds_the_stored_speaker(voice_store, tmp_path):
    from fusion.predict import Predictor
    from fusion.tune import tune_fusion
    store, root, _ = voice_store
    result = tune_fusion(store, n_trials=2, families=("pooled-logreg",), show_progress=False, estimate="off",
                         confirm_top=0, n_folds=2, group_norm="on")
    assert result.model.group_norm
    sp = _speakers(store)
    new_b = mf.make_audio_only(tmp_path / "b_new.wav", TEXTS[2], voice=VOICE_B[0], pitch=VOICE_B[1])
    silent = mf._write(tmp_path / "quiet.wav", None, 0, 1, (np.zeros(16000 * 3, np.float32), 16000), marker=False)
    predictor = Predictor.from_store(store, device="cpu")
    out = predictor.predict_batch([str(new_b), str(silent)], progress=False)
    assert out["error"].isna().all()
    who = predictor.speakers.set_index("path")
    assert who.loc[str(new_b), "status"] == "stored speaker"
    assert who.loc[str(new_b), "speaker"] == sp.loc["b1", "speaker"]
    assert who.loc[str(silent), "status"] == "no speech"
    assert "fallback" in who.loc[str(silent), "normalised_by"]
