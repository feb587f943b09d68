"""The encoder contract every modality encoder follows.

An encoder turns a batch of per-window inputs of one modality into a float32
matrix ``(n, dim)`` plus one missing reason per row. Audio and video encoders
derive from :class:`AudioEncoder` / :class:`VideoEncoder`, whose ``encode_video``
(all windows of one video; what ``embed`` calls) defaults to cutting the windows
and calling :meth:`Encoder.encode`; an encoder overrides it only for a faster
whole-video path. Text encoders derive from ``featurestore.encoders.text.TextEncoder``. A row whose modality is
missing (no audio track, no face, no speech...) is all-NaN and carries a reason
string; the store writes such rows as NULL embeddings. Zero rows are never used
for "missing", because zero is a valid feature value.

``encoder_id`` is a short stable hash of everything that changes the numbers
(name, version, config, weights checksum), so the store can tell embeddings of
different encoders, or of one encoder configured differently, apart.
"""
from __future__ import annotations

import abc
import hashlib
import importlib.metadata
import json
from typing import Any, Sequence

import numpy as np

from featurestore.schema import MODALITIES, SAMPLE_RATE

#: Missing reasons shared by the encoders (stored in ``missing_reason``).
REASON_NO_AUDIO = "no audio track"
REASON_SILENT = "silent window"
REASON_SHORT_AUDIO = "audio window too short"
REASON_NO_VIDEO = "no video stream"
REASON_NO_FACE = "no face in window"
REASON_NO_SPEECH = "no speech"

#: Length of ``encoder_id`` in hex characters (64 bits).
ENCODER_ID_CHARS = 16


def resolve_device(device: str = "auto") -> str:
    """Map ``"auto"`` to ``"cuda"`` when torch sees a GPU, else ``"cpu"``.

    Explicit ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` pass through unchanged;
    anything else raises ``ValueError``.
    """
    if device == "auto":
        try:
            import torch
        except ImportError:  # torch-free installs still run the CPU encoders
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or device == "cuda" or device.startswith("cuda:"):
        return device
    raise ValueError(f"device={device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` (``"missing"`` where not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def missing_rows(n: int, dim: int, reason: str) -> tuple[np.ndarray, list[str | None]]:
    """``n`` all-NaN rows of width ``dim``, each with ``reason``."""
    return np.full((n, dim), np.nan, dtype=np.float32), [reason] * n


class Encoder(abc.ABC):
    """Base class of all encoders.

    Subclasses set the class attributes and implement :meth:`config`,
    :meth:`weights_sha256` and :meth:`encode`.

    Attributes:
        name: registry name, e.g. ``"librosa-descriptors"``.
        modality: one of :data:`featurestore.schema.MODALITIES`.
        dim: width of each output row.
        version: bumped whenever the code changes the numbers.
    """

    name: str = ""
    modality: str = ""
    dim: int = 0
    version: str = "1"
    #: PyPI distributions whose versions are recorded as lineage.
    packages_used: tuple[str, ...] = ("numpy",)
    #: Whether ``device="cuda"`` runs the model on a GPU (the Ray engine gives such an
    #: encoder's actors a GPU share; the others get CPUs only).
    uses_gpu: bool = False

    def __init__(self, device: str = "auto") -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"{type(self).__name__}.modality={self.modality!r}: "
                             f"must be one of {MODALITIES}")
        self.device = resolve_device(device)

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able settings that change the output numbers (not device/batching)."""

    @abc.abstractmethod
    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file(s) used, or ``None`` for weight-free encoders."""

    @abc.abstractmethod
    def encode(self, batch: Sequence[Any]) -> tuple[np.ndarray, list[str | None]]:
        """Encode one batch of windows.

        Returns:
            ``(X, reasons)``: ``X`` float32 of shape ``(len(batch), dim)``;
            ``reasons[i]`` is ``None`` for a real row and a string for an
            all-NaN (missing) row.
        """

    @property
    def encoder_id(self) -> str:
        """Short stable hash of name, version, config and weights checksum."""
        payload = json.dumps(
            {"name": self.name, "version": self.version, "config": self.config(),
             "weights_sha256": self.weights_sha256()},
            sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:ENCODER_ID_CHARS]

    def packages(self) -> dict[str, str]:
        """Versions of the packages this encoder's numbers depend on."""
        return package_versions(self.packages_used)

    def info(self) -> dict[str, Any]:
        """One row for the store's ``encoders`` part (without ``written_at``)."""
        return {
            "encoder_id": self.encoder_id,
            "name": self.name,
            "modality": self.modality,
            "dim": int(self.dim),
            "version": self.version,
            "config": json.dumps(self.config(), sort_keys=True),
            "weights_sha256": self.weights_sha256(),
            "packages": json.dumps(self.packages(), sort_keys=True),
        }

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, "
                f"device={self.device!r}, encoder_id={self.encoder_id!r})")


class AudioEncoder(Encoder):
    """An encoder of each window's audio: 16 kHz mono float32 samples."""

    modality = "audio"

    def encode_video(self, audio: np.ndarray | None, windows: Any) -> tuple[np.ndarray, list[str | None]]:
        """All windows of one track.

        Args:
            audio: (n_samples,) float mono 16 kHz audio of the whole video, or None
                (no audio track: every row missing with ``REASON_NO_AUDIO``).
            windows: ``(n, 2)`` start/end seconds, or objects with ``start_s``/``end_s``.

        Returns:
            ``(X, reasons)`` as :meth:`Encoder.encode`, one row per window. This default
            encodes each window's samples alone.
        """
        bounds = window_bounds(windows)
        if audio is None:
            return missing_rows(len(bounds), self.dim, REASON_NO_AUDIO)
        return self.encode([audio[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)] for s, e in bounds])


class VideoEncoder(Encoder):
    """An encoder of each window's sampled frames: (k, H, W, 3) uint8 RGB."""

    modality = "video"

    def encode_video(self, frames: np.ndarray | None, frame_times: np.ndarray, windows: Any,
                     frame_index: np.ndarray | None = None) -> tuple[np.ndarray, list[str | None]]:
        """All windows of one video.

        Args:
            frames: (n_frames, H, W, 3) uint8 RGB, or None without a video stream
                (every row missing with ``REASON_NO_VIDEO``).
            frame_times: (n_frames,) seconds of each frame.
            windows: ``(n, 2)`` start/end seconds, or objects with ``start_s``/``end_s``.
            frame_index: optional (n_windows, k) rows of ``frames`` per window (as
                ``featurestore.media.DecodedMedia.frame_index``); default: :func:`window_frames`.

        Returns:
            ``(X, reasons)`` as :meth:`Encoder.encode`. This default encodes each window's
            frames alone.
        """
        bounds = window_bounds(windows)
        if frames is None:
            return missing_rows(len(bounds), self.dim, REASON_NO_VIDEO)
        frames = np.asarray(frames)
        return self.encode([frames[m] for m in window_frames(frame_times, bounds, frame_index, len(frames))])


def window_frames(frame_times: np.ndarray, bounds: np.ndarray, frame_index: np.ndarray | None = None,
                  n_frames: int | None = None) -> list[np.ndarray]:
    """Per window, the int64 indices of its frames: ``frame_index``'s rows when given, else
    the frames whose time lies in ``[start_s, end_s)`` (``<= end_s`` for the last window)."""
    times = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    if n_frames is not None and len(times) != n_frames:
        raise ValueError(f"{n_frames} frames but {len(times)} frame_times")
    if frame_index is not None:
        frame_index = np.asarray(frame_index)
        if len(frame_index) != len(bounds):
            raise ValueError(f"frame_index has {len(frame_index)} rows for {len(bounds)} windows")
        return [np.asarray(r, dtype=np.int64) for r in frame_index]
    last = len(bounds) - 1
    return [np.flatnonzero((times >= s) & ((times < e) | ((w == last) & (times <= e))))
            for w, (s, e) in enumerate(bounds)]


def check_output(enc: Encoder, X: np.ndarray, reasons: list[str | None], n: int) -> None:
    """Assert the contract: shape, dtype, NaN rows exactly where reasons are set."""
    if X.shape != (n, enc.dim) or X.dtype != np.float32 or len(reasons) != n:
        raise RuntimeError(f"{enc.name}: produced {X.shape} {X.dtype} with {len(reasons)} "
                           f"reasons for {n} windows; expected ({n}, {enc.dim}) float32")
    nan_rows = np.isnan(X).any(axis=1)
    has_reason = np.array([r is not None for r in reasons], dtype=bool)
    if n and not np.array_equal(nan_rows, has_reason):
        bad = int(np.flatnonzero(nan_rows != has_reason)[0])
        raise RuntimeError(f"{enc.name}: window {bad} has NaN={bool(nan_rows[bad])} but "
                           f"reason={reasons[bad]!r}; NaN rows and reasons must coincide")


def window_bounds(windows: Any) -> np.ndarray:
    """``(n, 2)`` float64 start/end seconds from pairs or objects with ``start_s``/``end_s``.

    Accepts an ``(n, 2)`` array, a list of pairs, or a list of
    :class:`featurestore.media.Window`-like objects.
    """
    seq = list(windows)
    if seq and hasattr(seq[0], "start_s"):
        arr = np.array([(w.start_s, w.end_s) for w in seq], dtype=np.float64)
    else:
        arr = np.asarray(seq, dtype=np.float64).reshape(-1, 2) if seq else np.zeros((0, 2))
    if arr.size and (not np.isfinite(arr).all() or (arr[:, 1] < arr[:, 0]).any()
                     or (arr[:, 0] < 0).any()):
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1) | (arr[:, 1] < arr[:, 0])
                                 | (arr[:, 0] < 0))[0])
        raise ValueError(f"window {bad} has bounds {arr[bad].tolist()}: need 0 <= start_s <= end_s")
    return arr
