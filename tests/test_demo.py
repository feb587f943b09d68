import csv
import json

import av
import numpy as np
import pytest

from reels_demo.corpus import (
    DemoError,
    build_demo_corpus,
    face_frames,
    plan_demo_corpus,
    speak,
    write_talking_video,
)
from featurestore.manifest import read_manifest
from featurestore.schema import CLASSES

pytestmark = pytest.mark.usefixtures("espeak_ng")

N_PER_CLASS = 2


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    manifest = build_demo_corpus(out, n_per_class=N_PER_CLASS, seed=3, progress=False)
    return out, manifest


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _decode(path):
    """(duration from the streams' data, audio samples mono, video frames) via PyAV."""
    with av.open(str(path)) as f:
        assert len(f.streams.audio) == 1 and len(f.streams.video) == 1
        audio = np.concatenate([fr.to_ndarray().reshape(-1) for fr in f.decode(audio=0)])
        rate = f.streams.audio[0].rate
    with av.open(str(path)) as f:
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
        fps = float(f.streams.video[0].average_rate)
    return audio, rate, np.stack(frames), fps


@pytest.mark.slow
def test_manifest_has_eight_classes_and_stratified_split(corpus):
    out, manifest = corpus
    rows = _rows(manifest)
    assert list(rows[0]) == ["id", "video", "emotion", "split"]
    assert len(rows) == 8 * N_PER_CLASS
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    assert sorted(r["emotion"] for r in train) == sorted(CLASSES * (N_PER_CLASS - 1))
    assert all(r["emotion"] == "" for r in test)
    labels = {r["id"]: r["emotion"] for r in _rows(out / "test_labels.csv")}
    assert set(labels) == {r["id"] for r in test}
    assert sorted(labels.values()) == sorted(CLASSES)
    # Ids carry no hint of the label.
    assert not any(c.lower() in r["id"].lower() for r in rows for c in CLASSES)

    m = read_manifest(manifest)
    assert m.ok, m.summary()
    v = m.videos.set_index("video_id")
    assert (v["error"].isna()).all()
    assert v.loc[test[0]["id"], "label"] is None and v.loc[test[0]["id"], "split"] == "test"
    assert v.loc[train[0]["id"], "label"] == train[0]["emotion"]


def test_train_and_test_speak_different_sentences(corpus):
    out, _ = corpus
    clips = json.loads((out / "demo.json").read_text())["clips"]
    for emotion in CLASSES:
        train = {c["text"] for c in clips if c["emotion"] == emotion and c["split"] == "train"}
        test = {c["text"] for c in clips if c["emotion"] == emotion and c["split"] == "test"}
        assert train and test and not train & test, emotion


def test_clips_decode_with_audio_video_and_expected_duration(corpus):
    out, _ = corpus
    clips = json.loads((out / "demo.json").read_text())["clips"]
    for clip in clips[:4]:
        audio, rate, frames, fps = _decode(out / clip["video"])
        assert 3.0 <= clip["duration_s"] <= 5.0
        assert fps == pytest.approx(10.0)
        assert len(frames) / fps == pytest.approx(clip["duration_s"], abs=0.11)
        # AAC adds a few ms of priming/padding, never a window's worth.
        assert len(audio) / rate == pytest.approx(clip["duration_s"], abs=0.1)
        assert frames.shape[1:] == (256, 256, 3)
        assert np.abs(frames[1:].astype(int) - frames[:-1]).mean() > 0.5   # the face moves
        lead = audio[: int(0.2 * rate)]
        speech = audio[int(0.5 * rate): int(2.5 * rate)]
        assert np.sqrt(np.mean(speech ** 2)) > 10 * (np.sqrt(np.mean(lead ** 2)) + 1e-4)


def test_emotion_prosody_is_audible(corpus):
    # Surprise is synthesised far higher than Sadness; the pitch tracker must hear it.
    import librosa

    out, _ = corpus
    clips = json.loads((out / "demo.json").read_text())["clips"]
    f0 = {}
    for emotion in ("Sadness", "Surprise"):
        clip = next(c for c in clips if c["emotion"] == emotion)
        audio, rate, _, _ = _decode(out / clip["video"])
        f = librosa.yin(audio.astype(np.float32), fmin=60, fmax=400, sr=rate, frame_length=1024)
        rms = librosa.feature.rms(y=audio, frame_length=1024)[0][: len(f)]
        f0[emotion] = np.median(f[: len(rms)][rms > 0.3 * rms.max()])
    assert f0["Surprise"] > 1.3 * f0["Sadness"], f0


@pytest.mark.slow
def test_second_call_reuses_files_and_changed_params_rebuild(corpus, tmp_path):
    out, manifest = corpus
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    again = build_demo_corpus(out, n_per_class=N_PER_CLASS, seed=3, progress=False)
    assert again == manifest
    assert {p: p.stat().st_mtime_ns for p in sorted(p for p in out.rglob("*") if p.is_file())} == before

    # A lost clip is remade alone; a different seed remakes everything.
    small = tmp_path / "small"
    build_demo_corpus(small, n_per_class=2, seed=0, progress=False)
    videos = sorted((small / "videos").glob("*.mp4"))
    mtimes = {p: p.stat().st_mtime_ns for p in videos}
    videos[0].unlink()
    build_demo_corpus(small, n_per_class=2, seed=0, progress=False)
    assert videos[0].exists()
    assert all(p.stat().st_mtime_ns == mtimes[p] for p in videos[1:])
    old = json.loads((small / "demo.json").read_text())["params_sha256"]
    build_demo_corpus(small, n_per_class=2, seed=1, progress=False)
    assert json.loads((small / "demo.json").read_text())["params_sha256"] != old
    assert all(p.stat().st_mtime_ns != mtimes[p] for p in videos[1:])
    assert not list(small.rglob("*.tmp*"))


def test_plan_is_deterministic_and_validated():
    assert plan_demo_corpus(seed=5) == plan_demo_corpus(seed=5)
    assert plan_demo_corpus(seed=5) != plan_demo_corpus(seed=6)
    assert len(plan_demo_corpus(n_per_class=4)) == 32
    assert sum(c.split == "test" for c in plan_demo_corpus(n_per_class=4)) == 8
    with pytest.raises(ValueError, match="n_per_class"):
        plan_demo_corpus(n_per_class=1)
    with pytest.raises(ValueError, match="seconds"):
        plan_demo_corpus(seconds=(5.0, 3.0))


def test_speak_and_mux_building_blocks(tmp_path):
    samples, rate = speak("Selamat pagi", pitch=60, speed=160)
    assert samples.dtype == np.float32 and rate == 22050
    assert 0.3 < len(samples) / rate < 3 and 0.05 < np.abs(samples).max() <= 1.0
    with pytest.raises(DemoError, match="voices"):
        speak("halo", voice="no-such-voice")

    frames = face_frames(5, size=64, seed=1)
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.uint8
    silent = write_talking_video(tmp_path / "v.mp4", frames, 5)
    with av.open(str(silent)) as f:
        assert not f.streams.audio and len(list(f.decode(video=0))) == 5
    wav = write_talking_video(tmp_path / "a.wav", None, 10, samples, rate)
    with av.open(str(wav)) as f:
        assert not f.streams.video and f.streams.audio[0].codec_context.name == "pcm_s16le"
    with pytest.raises(ValueError, match="even"):
        write_talking_video(tmp_path / "odd.mp4", np.zeros((2, 63, 64, 3), np.uint8), 5)
    assert not (tmp_path / "odd.mp4").exists() and not list(tmp_path.glob(".*tmp*"))
