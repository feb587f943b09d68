"""Voice (speaker) embeddings: Resemblyzer's d-vector per window where speech is present.

``resemblyzer`` (``resemblyzer==0.1.4``, Apache-2.0) ships its pretrained GE2E speaker
encoder (``resemblyzer/pretrained.pt``, 17 MB) inside the wheel, so it loads offline: a
3-layer LSTM over 40-band mel frames (25 ms, 10 ms hop) whose last state, projected to 256
values and L2-normalised, is the voice. It was trained on 1.6 s partial utterances, so each
window is embedded from the 1.6 s of audio centred on it (clipped to the track): neighbouring
windows share audio, which a voice, unlike an emotion, does not mind.

A window gets a vector only where webrtcvad (Resemblyzer's own VAD, mode 3 on 30 ms frames)
calls at least ``min_speech_share`` of its frames speech; the others are missing with
``"no speech"`` (or ``"no audio track"``). A video's voice is the mean of its speech windows'
vectors (``featurestore.speakers``), which ``fusion`` never reads as an audio feature set:
``embed`` stores it as its own ``speaker`` stage (``featurestore.embed``).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from featurestore.encoders.base import (
    REASON_NO_AUDIO,
    REASON_NO_SPEECH,
    AudioEncoder,
    missing_rows,
    window_bounds,
)
from featurestore.schema import SAMPLE_RATE

#: Resemblyzer's hyper-parameters (``resemblyzer.hparams``), repeated as the numbers the
#: window cutting depends on.
PARTIAL_FRAMES = 160            # 1.6 s of 10 ms mel frames
MEL_HOP = 160                   # samples (10 ms)
VAD_FRAME = 480                 # samples (30 ms), one webrtcvad decision
VOLUME_DBFS = -30.0             # Resemblyzer's preprocessing target (raised only)


@lru_cache(maxsize=1)
def _weights_path() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("resemblyzer is not installed: pip install --no-deps resemblyzer==0.1.4 "
                          "webrtcvad-wheels (scripts/setup.sh does)")
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"


@lru_cache(maxsize=1)
def _weights_sha256() -> str:
    return hashlib.sha256(_weights_path().read_bytes()).hexdigest()


def speech_frames(audio: np.ndarray, mode: int = 3) -> np.ndarray:
    """bool (n_samples // VAD_FRAME,): webrtcvad's speech decision per 30 ms frame."""
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    n = len(audio) // VAD_FRAME
    pcm = (np.clip(audio[:n * VAD_FRAME], -1.0, 1.0) * 32767).astype("<i2").tobytes()
    step = VAD_FRAME * 2
    return np.array([vad.is_speech(pcm[k * step:(k + 1) * step], SAMPLE_RATE) for k in range(n)], dtype=bool)


class ResemblyzerSpeaker(AudioEncoder):
    """Resemblyzer's 256-D GE2E d-vector per window with speech (see the module docstring)."""

    dim = 256
    version = "1"
    packages_used = ("resemblyzer", "torch", "librosa", "webrtcvad-wheels", "numpy")

    def __init__(self, min_speech_share: float = 0.3, vad_mode: int = 3, device: str = "auto",
                 torch_threads: int = 1) -> None:
        super().__init__(device)
        if not 0.0 < min_speech_share <= 1.0:
            raise ValueError(f"min_speech_share={min_speech_share!r}: need 0 < share <= 1")
        self.min_speech_share = float(min_speech_share)
        self.vad_mode = int(vad_mode)
        # One thread: the LSTM runs on small batches, and on a busy 2-core machine torch's
        # two spinning threads made it 25x slower (bench/speakers.py measures the stage).
        self.torch_threads = int(torch_threads)
        self._model = None

    def config(self) -> dict[str, Any]:
        return {"model": "resemblyzer-ge2e-256", "partial_frames": PARTIAL_FRAMES,
                "min_speech_share": self.min_speech_share, "vad_mode": self.vad_mode,
                "volume_dbfs": VOLUME_DBFS}

    def weights_sha256(self) -> str | None:
        return _weights_sha256()

    def model(self):
        if self._model is None:
            from resemblyzer import VoiceEncoder
            self._model = VoiceEncoder(device=self.device, verbose=False, weights_fpath=_weights_path())
            self._model.eval()
        return self._model

    def encode(self, batch: Sequence[np.ndarray | None]) -> tuple[np.ndarray, list[str | None]]:
        """Each window alone (its own samples, no context): one row per window."""
        rows, reasons = [], []
        for y in batch:
            if y is None:
                X, r = missing_rows(1, self.dim, REASON_NO_AUDIO)
            else:
                y = np.asarray(y, dtype=np.float32).reshape(-1)
                X, r = self.encode_video(y, [(0.0, len(y) / SAMPLE_RATE)])
            rows.append(X)
            reasons.extend(r)
        return (np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)), reasons

    def encode_video(self, audio: np.ndarray | None, windows: Any) -> tuple[np.ndarray, list[str | None]]:
        """All windows of one track: mel once, then one batched LSTM pass over the speech windows.

        Args:
            audio: (n_samples,) float mono 16 kHz, or None (every row ``"no audio track"``).
            windows: ``(n, 2)`` start/end seconds (or ``Window`` objects).
        Returns:
            (float32 (n, 256), reasons): unit-norm d-vectors; NaN rows with ``"no speech"``.
        """
        bounds = window_bounds(windows)
        n = len(bounds)
        if audio is None:
            return missing_rows(n, self.dim, REASON_NO_AUDIO)
        import torch
        from resemblyzer import normalize_volume, wav_to_mel_spectrogram

        y = np.asarray(audio, dtype=np.float32).reshape(-1)
        X, reasons = missing_rows(n, self.dim, REASON_NO_SPEECH)
        if n == 0 or len(y) < VAD_FRAME or not np.any(y):
            return X, reasons
        flags = speech_frames(y, self.vad_mode)
        speech = []
        for w, (s, e) in enumerate(bounds):
            a, b = int(s * SAMPLE_RATE) // VAD_FRAME, max(int(s * SAMPLE_RATE) // VAD_FRAME + 1,
                                                           int(e * SAMPLE_RATE) // VAD_FRAME)
            if flags[a:b].size and flags[a:b].mean() >= self.min_speech_share:
                speech.append(w)
        if not speech:
            return X, reasons
        mel = wav_to_mel_spectrogram(normalize_volume(y, VOLUME_DBFS, increase_only=True))  # (frames, 40)
        n_frames = len(mel)
        length = min(PARTIAL_FRAMES, n_frames)
        starts = []
        for w in speech:
            centre = int(round((bounds[w, 0] + bounds[w, 1]) / 2 * SAMPLE_RATE / MEL_HOP))
            starts.append(int(np.clip(centre - length // 2, 0, n_frames - length)))
        batch = np.stack([mel[a:a + length] for a in starts])
        threads = torch.get_num_threads()
        torch.set_num_threads(self.torch_threads)
        try:
            with torch.inference_mode():
                out = self.model()(torch.from_numpy(batch).to(self.device)).cpu().numpy().astype(np.float32)
        finally:
            torch.set_num_threads(threads)
        for w, row in zip(speech, out):
            if np.isfinite(row).all():  # an all-zero projection has no direction: no voice
                X[w], reasons[w] = row, None
        return X, reasons
