"""One Whisper encoder pass per clip, shared by speech recognition and the audio feature sets.

Whisper's encoder is the costly half of both uses of Whisper in ``embed``: ASR decodes text
from its output, and ``descriptors-whisper`` / ``whisper-stats`` / ``whisper-encoder`` pool
the same output per window. Both now read it from here, computed once per clip:

* the clip's track is cut into consecutive 30 s chunks from 0 s (:func:`track_chunks`, the
  chunking the audio feature sets have always used) and each is encoded, in a context of
  :func:`context_frames`: padded to Whisper's 30 s (``"full"``, what ``descriptors-whisper``
  has always stored) or, for a chunk shorter than 30 s (a short clip, a reel's last
  chunk), only to its own length rounded up to 2 s and at least 10 s (``"fit"``): no 30 s of
  padding for a 4 s clip. CTranslate2 takes the shorter input as it is (its positional
  table cut to the length, as whisper.cpp's ``audio_ctx``). A full 30 s chunk is the same
  under both;
* :class:`WhisperStatesPass` keeps the model (loaded once per process and per settings,
  :func:`shared_pass`) and the latest chunks' states (keyed by the chunk's samples and its
  context length), so the second user of a clip finds them.

The encoder output of a chunk does not depend on the other chunks of its batch nor on the
thread count (checked bit for bit on CTranslate2 4.8 int8, 2 threads against 0), so the
states, and every row computed from them, are the same for any batch or chunk size.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import Sequence

import numpy as np

from featurestore.schema import SAMPLE_RATE

#: Whisper's context: every chunk is padded (or cut) to 30 s.
CHUNK_S = 30.0
CHUNK_N = int(CHUNK_S * SAMPLE_RATE)
#: Encoder output steps per 30 s chunk (one per 20 ms).
N_STEPS = 1500
STEP_S = CHUNK_S / N_STEPS
#: Encoder states kept for a clip's second user, in bytes (a 30 s chunk of Whisper base
#: is 3 MB; a chunk of 8 reels of 75 s is 72 MB).
CACHE_BYTES = 256 * 2 ** 20


#: How a chunk shorter than 30 s is encoded (see the module docstring).
CONTEXTS = ("full", "fit")
#: ``"fit"``: a short chunk's context, at least this long and a multiple of CONTEXT_STEP_S.
#: Chosen on the 40 demo clips (3-5 s espeak-ng speech): Whisper base's WER against the
#: spoken text was 0.636 at 30 s, 0.618 at 15 s, 0.597 at 10 s (docs/benchmarks.md).
MIN_CONTEXT_S = 10.0
CONTEXT_STEP_S = 2.0
#: Log-mel frames per second (10 ms hop); the encoder halves them (20 ms steps).
MEL_PER_S = 100


def context_frames(n_samples: int, context: str) -> int:
    """Log-mel frames a chunk of ``n_samples`` is padded to under ``context``."""
    if context not in CONTEXTS:
        raise ValueError(f"context={context!r}: use one of {CONTEXTS}")
    if context == "full":
        return int(CHUNK_S * MEL_PER_S)
    seconds = np.ceil(n_samples / SAMPLE_RATE / CONTEXT_STEP_S) * CONTEXT_STEP_S
    return int(min(max(seconds, MIN_CONTEXT_S), CHUNK_S) * MEL_PER_S)


def track_chunks(audio: np.ndarray) -> list[np.ndarray]:
    """The 30 s pieces of a track from 0 s, the last one shorter; one empty piece for an
    empty track. Chunk ``j`` starts at ``j * CHUNK_S`` seconds."""
    return [audio[i:i + CHUNK_N] for i in range(0, max(len(audio), 1), CHUNK_N)]


def audio_key(audio: np.ndarray) -> str:
    """Content key of float32 samples (BLAKE2b; ~5 ms per minute of audio)."""
    a = np.ascontiguousarray(audio, dtype=np.float32)
    return hashlib.blake2b(a.view(np.uint8), digest_size=16).hexdigest() + f":{a.size}"


class WhisperStatesPass:
    """A faster-whisper model and the encoder states of the clips it saw last.

    Args:
        model: a CTranslate2 Whisper directory or model name.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"`` picks a GPU).
        compute_type: CTranslate2 compute type (``int8`` on CPU, ``float16`` on CUDA).
        cpu_threads: CTranslate2 intra-op threads on CPU.
        cache_bytes: states kept for a second user of the same clip.
    """

    def __init__(self, model: str, device: str, compute_type: str, cpu_threads: int,
                 cache_bytes: int = CACHE_BYTES) -> None:
        from faster_whisper import WhisperModel

        dev, _, idx = device.partition(":")
        self.model = WhisperModel(model, device=dev, device_index=int(idx or 0),
                                  compute_type=compute_type, cpu_threads=cpu_threads)
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        #: Chunks encoded and chunks served from the cache (for benchmarks and tests).
        self.n_encoded = 0
        self.n_reused = 0

    def features(self, chunks: Sequence[np.ndarray], n_frames: int = 3000) -> np.ndarray:
        """Log-mel features (n, n_mels, n_frames) float32 of <= 30 s chunks, padded (or cut)
        to ``n_frames`` as faster-whisper pads them to 3000."""
        from faster_whisper.audio import pad_or_trim

        fe = self.model.feature_extractor
        return np.stack([pad_or_trim(fe(c)[..., :-1], n_frames) for c in chunks]).astype(np.float32, copy=False)

    def encode_chunks(self, chunks: Sequence[np.ndarray], batch_size: int = 4,
                      context: str = "full") -> list[np.ndarray]:
        """Encoder states of <= 30 s, 16 kHz chunks, one (steps, d_model) float32 array each:
        1500 steps under ``"full"``, half the :func:`context_frames` under ``"fit"``. Chunks of
        one context length are encoded together, ``batch_size`` at a time."""
        import ctranslate2

        lengths = [context_frames(len(c), context) for c in chunks]
        out: list[np.ndarray | None] = [None] * len(chunks)
        for n in sorted(set(lengths)):
            idx = [i for i, m in enumerate(lengths) if m == n]
            for b in range(0, len(idx), batch_size):
                part = idx[b:b + batch_size]
                feats = self.features([chunks[i] for i in part], n)
                sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats))
                states = np.array(self.model.model.encode(sv, to_cpu=True), dtype=np.float32)
                for i, st in zip(part, states):
                    out[i] = st
                self.n_encoded += len(part)
        return out  # type: ignore[return-value]

    def track_states(self, audios: Sequence[np.ndarray], batch_size: int = 4,
                     context: str = "full") -> list[list[np.ndarray]]:
        """Each track's per-chunk states over :func:`track_chunks` (see :meth:`encode_chunks`).

        A chunk is cached by its samples and its context length, so a full 30 s chunk is
        shared by every context; the chunks not in the cache are encoded together.
        """
        pieces = [track_chunks(np.asarray(a, dtype=np.float32)) for a in audios]
        keys = [[f"{audio_key(c)}:{context_frames(c.size, context)}" for c in p] for p in pieces]
        with self._lock:
            found = {k: self._cache[k] for ks in keys for k in ks if k in self._cache}
            for k in found:
                self._cache.move_to_end(k)
        todo: dict[str, np.ndarray] = {}
        for p, ks in zip(pieces, keys):
            for c, k in zip(p, ks):
                if k not in found:
                    todo.setdefault(k, c)
        if todo:
            for k, st in zip(todo, self.encode_chunks(list(todo.values()), batch_size, context)):
                found[k] = st
                self._remember(k, st)
        self.n_reused += sum(len(ks) for ks in keys) - len(todo)
        return [[found[k] for k in ks] for ks in keys]

    def _remember(self, key: str, states: np.ndarray) -> None:
        with self._lock:
            self._cache[key] = states
            self._cached += states.nbytes
            while self._cached > self.cache_bytes and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes

    def clear(self) -> None:
        """Forget every cached state (the model stays loaded)."""
        with self._lock:
            self._cache.clear()
            self._cached = 0


_PASSES: dict[tuple, WhisperStatesPass] = {}
_PASSES_LOCK = threading.Lock()


def shared_pass(model: str, device: str = "cpu", compute_type: str = "int8",
                cpu_threads: int = 0) -> WhisperStatesPass:
    """The process's one :class:`WhisperStatesPass` for these settings, loaded on first use:
    the Transcriber and the Whisper audio encoders of a run share it, so the model loads
    once and each clip is encoded once. ``cpu_threads`` 0 means one per core (the thread
    count does not change the states)."""
    threads = int(cpu_threads) or os.cpu_count() or 1
    path = os.path.realpath(str(model)) if os.path.exists(str(model)) else str(model)
    device = "cuda:0" if device == "cuda" else device
    key = (path, device, compute_type, threads)
    with _PASSES_LOCK:
        if key not in _PASSES:
            _PASSES[key] = WhisperStatesPass(path, device, compute_type, threads)
        return _PASSES[key]
