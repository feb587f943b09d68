"""Encoders with their real models on small real inputs made here."""
from __future__ import annotations


import numpy as np
import pytest

from featurestore.encoders import (
    REASON_NO_AUDIO,
    REASON_NO_FACE,
    REASON_NO_SPEECH,
    REASON_NO_VIDEO,
    REASON_SILENT,
    available_encoders,
    default_encoder,
    get_encoder,
    resolve_device,
)
from featurestore.encoders.base import check_output
from featurestore.media import window_grid
from featurestore.schema import MODALITIES, SAMPLE_RATE

SR = SAMPLE_RATE


def voiced_signal(seconds: float, f0: float = 180.0, glide: float = 30.0, seed: int = 0) -> np.ndarray:
    """Harmonic 'vowel' with a pitch glide, syllable-rate loudness changes and light noise."""
    t = np.arange(int(seconds * SR)) / SR
    freq = f0 + glide * np.sin(2 * np.pi * 0.4 * t)
    phase = 2 * np.pi * np.cumsum(freq) / SR
    y = sum(a * np.sin(k * phase) for k, a in ((1, 0.3), (2, 0.15), (3, 0.08), (4, 0.04)))
    y = y * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
    y = y + 0.005 * np.random.default_rng(seed).standard_normal(len(t))
    return y.astype(np.float32)


def slices(audio: np.ndarray, windows) -> list[np.ndarray]:
    return [audio[int(round(w.start_s * SR)):int(round(w.end_s * SR))] for w in windows]


# ------------------------------------------------------------------ audio
@pytest.fixture(scope="module")
def librosa_enc():
    return get_encoder("librosa-descriptors")


def test_feature_names_documented():
    from featurestore.encoders.audio import FEATURE_NAMES

    assert len(FEATURE_NAMES) == 128
    assert len(set(FEATURE_NAMES)) == 128


def test_librosa_dims_dtype_and_contract(librosa_enc):
    audio = voiced_signal(3.0)
    windows = window_grid(3.0)
    X, reasons = librosa_enc.encode(slices(audio, windows))
    check_output(librosa_enc, X, reasons, len(windows))
    assert X.shape == (len(windows), 128) and X.dtype == np.float32
    assert reasons == [None] * len(windows)
    assert np.isfinite(X).all()


def test_librosa_fast_path_matches_per_window(librosa_enc):
    audio = voiced_signal(7.3)
    audio[int(3.0 * SR):int(4.6 * SR)] = 0.0                  # a silent stretch inside
    windows = window_grid(7.3)
    Xv, rv = librosa_enc.encode_video(audio, windows)
    Xw, rw = librosa_enc.encode(slices(audio, windows))
    assert rv == rw
    assert REASON_SILENT in rv and None in rv
    np.testing.assert_allclose(Xv, Xw, rtol=1e-4, atol=1e-3, equal_nan=True)
    # same result for windows given as (start, end) pairs
    Xp, _ = librosa_enc.encode_video(audio, [(w.start_s, w.end_s) for w in windows])
    np.testing.assert_array_equal(Xp, Xv)


def test_librosa_pitch_and_voicing_are_real(librosa_enc):
    from featurestore.encoders.audio import FEATURE_NAMES

    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    tone = voiced_signal(1.0, f0=220.0, glide=0.0)
    noise = (0.1 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    X, _ = librosa_enc.encode([tone, noise])
    assert X[0, col["f0_st_mean"]] == pytest.approx(12 * np.log2(220 / 55), abs=0.3)
    assert X[0, col["voiced_share"]] > 0.9
    assert X[1, col["voiced_share"]] < 0.2
    assert X[1, col["flatness_db_mean"]] > X[0, col["flatness_db_mean"]] + 10


def test_librosa_silence_and_no_audio(librosa_enc):
    windows = window_grid(2.0)
    X, reasons = librosa_enc.encode([np.zeros(SR, np.float32), None])
    assert np.isnan(X).all() and reasons == [REASON_SILENT, REASON_NO_AUDIO]
    X, reasons = librosa_enc.encode_video(None, windows)
    assert X.shape == (len(windows), 128) and np.isnan(X).all()
    assert reasons == [REASON_NO_AUDIO] * len(windows)
    with pytest.raises(ValueError, match="1-D mono"):
        librosa_enc.encode([np.zeros((SR, 2), np.float32)])


# ------------------------------------------------------------------ whisper encoder
@pytest.mark.slow
def test_whisper_encoder_pools_and_projects():
    enc = get_encoder("whisper-encoder", device="cpu", cpu_threads=2)
    P = enc.projection
    np.testing.assert_allclose(P.T @ P, np.eye(128), atol=1e-5)
    audio = voiced_signal(3.0)
    audio[int(2.0 * SR):] = 0.0
    windows = window_grid(3.0)
    X, reasons = enc.encode_video(audio, windows)
    check_output(enc, X, reasons, len(windows))
    assert reasons[-1] == REASON_SILENT and reasons[0] is None
    assert not np.allclose(X[0], X[1])
    X1, r1 = enc.encode([audio[:SR], None])
    assert r1 == [None, REASON_NO_AUDIO] and np.isfinite(X1[0]).all()
    other = type(enc)(device="cpu", seed=1)
    assert other.encoder_id != enc.encoder_id


@pytest.mark.slow
def test_whisper_stats_is_the_shipped_pca_of_window_mean_and_std():
    full = get_encoder("whisper-stats-1024", device="cpu", cpu_threads=2)
    enc = get_encoder("whisper-stats", device="cpu", cpu_threads=2)
    assert (full.dim, enc.dim) == (1024, 128) and full.encoder_id != enc.encoder_id
    C = enc._pca["components"]
    np.testing.assert_allclose(C.T @ C, np.eye(128), atol=1e-4)     # PCA axes are orthonormal
    audio = voiced_signal(3.0)
    audio[int(2.0 * SR):] = 0.0
    windows = window_grid(3.0)
    S, rs = full.encode_video(audio, windows)
    X, rx = enc.encode_video(audio, windows)
    check_output(full, S, rs, len(windows))
    check_output(enc, X, rx, len(windows))
    assert rs == rx and rs[-1] == REASON_SILENT and rs[0] is None
    ok = np.array([r is None for r in rs])
    assert (S[ok, 512:] > 0).all()                                   # the std half
    np.testing.assert_allclose(X[ok], enc.reduce(S[ok]), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="reduction"):
        type(enc)(device="cpu", reduction="random")


@pytest.mark.slow
def test_descriptors_whisper_is_both_parts_side_by_side(librosa_enc):
    enc = get_encoder("descriptors-whisper", device="cpu", cpu_threads=2)
    assert enc.dim == 640 and enc.modality == "audio"
    audio = voiced_signal(3.0)
    audio[int(2.0 * SR):] = 0.0
    windows = window_grid(3.0)
    X, reasons = enc.encode_video(audio, windows)
    check_output(enc, X, reasons, len(windows))
    D, rd = librosa_enc.encode_video(audio, windows)
    W, rw = get_encoder("whisper-stats", device="cpu", pooling="mean", reduction="none").encode_video(audio, windows)
    assert reasons == [a or b for a, b in zip(rd, rw)] and reasons[-1] == REASON_SILENT
    ok = np.array([r is None for r in reasons])
    np.testing.assert_allclose(X[ok, :128], D[ok], rtol=1e-6)
    np.testing.assert_allclose(X[ok, 128:], W[ok], rtol=1e-5, atol=1e-5)
    assert enc.encoder_id != get_encoder("descriptors-whisper", device="cpu", silence_dbfs=-60.0).encoder_id


# ------------------------------------------------------------------ video
@pytest.fixture(scope="module")
def fer_enc():
    return get_encoder("fer-face")


@pytest.fixture(scope="module")
def images():
    import cv2
    from skimage import data

    face = data.astronaut()                                   # smiling face, 512x512 RGB
    no_face = cv2.resize(data.coffee(), (512, 512))           # a cup of coffee
    return face, no_face


def test_fer_astronaut_smiles(fer_enc, images):
    face, _ = images
    X, reasons = fer_enc.encode([np.stack([face] * 4)])
    check_output(fer_enc, X, reasons, 1)
    share, valence, arousal = X[0]
    assert reasons == [None] and share == 1.0
    assert valence > 0.5
    probs = fer_enc.frame_probs(face)
    assert probs.argmax() == 3 and probs.sum() == pytest.approx(1.0, abs=1e-3)   # "happy"


def test_fer_no_face_and_no_video(fer_enc, images):
    face, no_face = images
    X, reasons = fer_enc.encode([np.stack([no_face] * 4), None, np.stack([face, no_face] * 2)])
    assert reasons == [REASON_NO_FACE, REASON_NO_VIDEO, None]
    assert np.isnan(X[:2]).all()
    assert X[2, 0] == 0.5


def test_fer_video_path_shares_frames(fer_enc, images):
    face, no_face = images
    frames = np.stack([face, no_face, face, face, no_face, no_face])
    times = np.array([0.125, 0.375, 0.625, 0.875, 1.125, 1.375])
    windows = [(0.0, 1.0), (0.5, 1.5)]
    before = fer_enc.frames_processed
    Xv, rv = fer_enc.encode_video(frames, times, windows)
    assert fer_enc.frames_processed - before == len(frames)   # each frame once
    Xw, rw = fer_enc.encode([frames[:4], frames[2:]])
    assert rv == rw == [None, None]
    np.testing.assert_allclose(Xv, Xw, rtol=1e-6)
    assert Xv[0, 0] == 0.75 and Xv[1, 0] == 0.5
    Xi, ri = fer_enc.encode_video(frames, times, windows, frame_index=np.array([[0, 1, 2, 3],
                                                                               [2, 3, 4, 5]]))
    np.testing.assert_array_equal(Xi, Xv)
    X0, r0 = fer_enc.encode_video(None, times, windows)
    assert r0 == [REASON_NO_VIDEO] * 2 and np.isnan(X0).all()


def test_fer_expressions_keep_the_seven_probabilities_and_their_change(fer_enc, images):
    face, no_face = images
    enc = get_encoder("fer-expressions")
    assert enc.dim == 22 and enc.encoder_id != fer_enc.encoder_id
    smiling = np.stack([face] * 4)
    darker = (face * 0.6).astype(np.uint8)                   # the same face, other probabilities
    flipped = np.stack([face, darker, face, no_face])
    X, reasons = enc.encode([smiling, flipped, np.stack([no_face] * 4), None])
    check_output(enc, X, reasons, 4)
    assert reasons == [None, None, REASON_NO_FACE, REASON_NO_VIDEO]
    p = fer_enc.frame_probs(face)
    np.testing.assert_allclose(X[0, 1:8], p, rtol=1e-5)       # mean of 4 identical faces
    np.testing.assert_allclose(X[0, 8:15], p, rtol=1e-5)      # their max
    assert np.all(X[0, 15:] == 0) and X[0, 0] == 1.0          # no change, every frame a face
    assert X[1, 0] == 0.75 and np.all(X[1, 8:15] >= X[1, 1:8] - 1e-6) and X[1, 15:].sum() > 0
    # the 3-D vector is a projection of these: the same faces, the same share
    X3, _ = fer_enc.encode([flipped])
    assert X3[0, 0] == X[1, 0]


# ------------------------------------------------------------------ text
@pytest.fixture(scope="module")
def e5():
    return get_encoder("e5-small", num_threads=2)


@pytest.fixture(scope="module")
def mpnet():
    return get_encoder("mpnet", device="auto")


SIMILAR = ("Saya sangat senang dan bahagia hari ini", "Hari ini aku gembira sekali")
UNRELATED = "Harga beras di pasar naik lagi minggu ini"


@pytest.mark.slow
@pytest.mark.parametrize("which,dim", [("e5", 384), ("mpnet", 768)])
def test_text_dims_dedup_and_no_speech(which, dim, request):
    enc = request.getfixturevalue(which)
    calls: list[list[str]] = []
    real = enc._encode_texts

    def counting(texts):
        calls.append(list(texts))
        return real(texts)

    enc._encode_texts = counting
    try:
        batch = ["Kami pergi ke pantai", "Kami pergi ke pantai", None, "   ", "Kami  pergi ke pantai ",
                 "Ini enak sekali"]
        X, reasons = enc.encode(batch)
    finally:
        del enc._encode_texts
    check_output(enc, X, reasons, len(batch))
    assert X.shape == (6, dim) and X.dtype == np.float32
    sent = [t for c in calls for t in c]
    assert sorted(sent) == ["Ini enak sekali", "Kami pergi ke pantai"]          # each once
    assert reasons == [None, None, REASON_NO_SPEECH, REASON_NO_SPEECH, None, None]
    np.testing.assert_array_equal(X[0], X[1])
    np.testing.assert_array_equal(X[0], X[4])
    np.testing.assert_allclose(np.linalg.norm(X[[0, 5]], axis=1), 1.0, atol=1e-4)


def test_e5_indonesian_meaning(e5):
    X, _ = e5.encode([*SIMILAR, UNRELATED])
    assert X[0] @ X[1] > X[0] @ X[2] + 0.05
    assert X[1] @ X[0] > X[1] @ X[2] + 0.05


def test_hf_directory_matches_mpnet(mpnet):
    from featurestore.encoders.text import mpnet_dir

    hf = get_encoder(f"hf:{mpnet_dir()}", device="cpu")
    assert hf.dim == 768 and hf.pooling == "mean" and hf.l2
    texts = ["I am so happy today", "The price of rice went up"]
    a, _ = hf.encode(texts)
    b, _ = mpnet.encode(texts)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert a[0] @ a[1] < 0.5


# ------------------------------------------------------------------ registry and ids
def test_registry():
    enc = available_encoders()
    assert enc["librosa-descriptors"][:2] == ("audio", 128)
    assert enc["fer-face"][:2] == ("video", 3)
    assert enc["e5-small"][:2] == ("text", 384) and enc["mpnet"][:2] == ("text", 768)
    for m in MODALITIES:
        assert enc[default_encoder(m)][0] == m
    with pytest.raises(ValueError, match="unknown encoder"):
        get_encoder("nope")
    with pytest.raises(ValueError, match="modality"):
        default_encoder("smell")
    with pytest.raises(FileNotFoundError, match="config.json"):
        get_encoder("hf:/nonexistent/model")


@pytest.mark.slow
def test_every_registered_encoder_is_what_its_registration_says():
    """Name, modality and dim as listed; the name is what the store records and what a
    model's lineage rebuilds from, so a named configuration comes back with its options."""
    from featurestore.encoders.registry import _REGISTRY
    for name, spec in _REGISTRY.items():
        enc = get_encoder(name, device="cpu")
        assert (enc.name, enc.modality, enc.dim) == (name, spec.modality, spec.dim)
        assert enc.info()["name"] == name
        assert get_encoder(enc.info()["name"], device="cpu").encoder_id == enc.encoder_id
    assert get_encoder("whisper-stats-1024").encoder_id != get_encoder("whisper-stats").encoder_id


def test_encoder_id_tracks_config(librosa_enc, fer_enc):
    same = get_encoder("librosa-descriptors")
    assert same.encoder_id == librosa_enc.encoder_id and len(same.encoder_id) == 16
    assert get_encoder("librosa-descriptors", silence_dbfs=-60).encoder_id != librosa_enc.encoder_id
    assert get_encoder("fer-face", margin=0.2).encoder_id != fer_enc.encoder_id
    info = fer_enc.info()
    assert info["encoder_id"] == fer_enc.encoder_id and info["dim"] == 3
    assert len(info["weights_sha256"]) == 64


def test_device_auto():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
