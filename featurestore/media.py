"""Decode a video once: 16 kHz mono audio + the few frames the windows need.

One demux pass with PyAV (no ffmpeg binary, nothing written to disk) yields

* the whole audio track, resampled to ``SAMPLE_RATE`` mono float32, and
* for each requested sample time, the decoded frame nearest to it (RGB uint8,
  optionally downscaled), so memory is O(#windows) and not O(#frames).

Window geometry (``schema.WINDOW_S`` / ``HOP_S`` / ``MIN_LAST_WINDOW_S``):

* full windows start at ``k * hop_s`` and last ``window_s``;
* after the last full window, one trailing partial window ``[n_full * hop_s,
  duration]`` is kept when it covers time no full window covers and is at least
  ``min_last_s`` long (with the default 1.0 s / 0.5 s geometry that is any
  clip whose length is not a multiple of the hop);
* a clip shorter than one window (``0 < duration < window_s``) gets exactly one
  window ``[0, duration]`` even when shorter than ``min_last_s``, so every
  decodable clip has at least one row; duration 0 gives no windows.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence, Union

import av
import numpy as np

from featurestore.schema import (
    FRAMES_PER_WINDOW,
    HOP_S,
    MIN_LAST_WINDOW_S,
    SAMPLE_RATE,
    WINDOW_S,
)

#: Default cap on the short side of returned frames (pixels): enough for face
#: detection, and 20x less memory than 1080p.
MAX_SHORT_SIDE = 360

_EPS = 1e-6
#: Decoded vs declared duration gap (s) still put down to codec padding.
_DURATION_TOLERANCE_S = 0.1

FrameTimes = Union[None, Sequence[float], np.ndarray, Callable[[float], Sequence[float]]]


class MediaError(Exception):
    """A media file cannot be decoded. ``str(err)`` names the file, the reason and what to do."""

    def __init__(self, path: str | os.PathLike, reason: str, hint: str) -> None:
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        super().__init__(f"{self.path}: {reason}. {hint}")


# ------------------------------------------------------------------ windows
@dataclass(frozen=True, slots=True)
class Window:
    """One analysis window: ``[start_s, end_s)`` in seconds from the clip start."""

    idx: int
    start_s: float
    end_s: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


def window_grid(
    duration_s: float,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    min_last_s: float = MIN_LAST_WINDOW_S,
) -> list[Window]:
    """Windows covering a clip of ``duration_s`` seconds (rules in the module docstring)."""
    if not math.isfinite(duration_s) or duration_s < 0:
        raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    if window_s <= 0 or hop_s <= 0:
        raise ValueError(f"window_s and hop_s must be > 0, got {window_s!r}, {hop_s!r}")
    if duration_s <= _EPS:
        return []
    if duration_s < window_s - _EPS:
        return [Window(0, 0.0, float(duration_s))]
    n_full = int(math.floor((duration_s - window_s) / hop_s + _EPS)) + 1
    windows = [
        Window(k, round(k * hop_s, 9), round(k * hop_s + window_s, 9)) for k in range(n_full)
    ]
    start = round(n_full * hop_s, 9)
    covers_new = duration_s - windows[-1].end_s > _EPS
    if covers_new and duration_s - start > _EPS and duration_s - start >= min_last_s - _EPS:
        windows.append(Window(n_full, start, float(duration_s)))
    return windows


class FramePlan(NamedTuple):
    """Frame sample times shared by all windows, and which of them each window uses.

    ``times``: (n_times,) float64 seconds, sorted, unique.
    ``index``: (n_windows, frames_per_window) int64 row indices into ``times``.
    """

    times: np.ndarray
    index: np.ndarray


def window_frame_times(
    windows: Sequence[Window], frames_per_window: int = FRAMES_PER_WINDOW
) -> FramePlan:
    """Evenly spaced sample times inside each window, ``start + (k + 0.5) * length / n``.

    With a 0.5 s hop over 1.0 s windows half of each window's times coincide
    with its neighbour's; those are deduplicated, so each frame is decoded and
    encoded once.
    """
    if frames_per_window < 1:
        raise ValueError(f"frames_per_window must be >= 1, got {frames_per_window}")
    if not windows:
        return FramePlan(np.zeros(0), np.zeros((0, frames_per_window), dtype=np.int64))
    starts = np.array([w.start_s for w in windows], dtype=np.float64)[:, None]
    lengths = np.array([w.length_s for w in windows], dtype=np.float64)[:, None]
    offsets = (np.arange(frames_per_window) + 0.5) / frames_per_window
    # Round to the microsecond so float noise does not defeat deduplication.
    grid = np.round(starts + offsets[None, :] * lengths, 6)
    times, inverse = np.unique(grid.ravel(), return_inverse=True)
    return FramePlan(times, inverse.reshape(grid.shape).astype(np.int64))


# ------------------------------------------------------------------ decoding
@dataclass
class DecodedMedia:
    """Everything the encoders need from one media file.

    Attributes:
        path: the decoded file.
        duration_s: clip length in seconds (longest decoded stream).
        audio: (n_samples,) float32 mono at ``sample_rate`` Hz, or None without an audio stream.
        frames: (n_frames, H, W, 3) uint8 RGB, ``frames[i]`` is the decoded frame nearest
            to ``frame_times[i]``; None without a decodable video stream.
        frame_times: (n_frames,) requested sample times in seconds (kept even when
            ``frames`` is None, so the window -> time mapping is always known).
        has_video: the file has a decodable video stream.
        windows: the window grid for ``duration_s``.
        frame_index: (n_windows, frames_per_window) indices into ``frames`` when the
            frame times came from the window grid (``frame_times=None``), else None.
        source_frame_times: (n_frames,) presentation times (s) of the frames actually
            returned, or None without frames.
        sample_rate: Hz of ``audio``.
        n_decode_errors: packets FFmpeg could not decode (skipped, with a warning).
    """

    path: Path
    duration_s: float
    audio: np.ndarray | None
    frames: np.ndarray | None
    frame_times: np.ndarray
    has_video: bool
    windows: list[Window] = field(default_factory=list)
    frame_index: np.ndarray | None = None
    source_frame_times: np.ndarray | None = None
    sample_rate: int = SAMPLE_RATE
    n_decode_errors: int = 0

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def window_audio(self, window: Window) -> np.ndarray | None:
        """Audio samples of one window, (n,) float32, or None without audio."""
        if self.audio is None:
            return None
        lo = int(round(window.start_s * self.sample_rate))
        hi = int(round(window.end_s * self.sample_rate))
        return self.audio[lo:hi]

    def window_frames(self, window_idx: int) -> np.ndarray | None:
        """Frames of one window, (frames_per_window, H, W, 3) uint8, or None without video."""
        if self.frames is None or self.frame_index is None:
            return None
        return self.frames[self.frame_index[window_idx]]


@dataclass
class _Decoded:
    audio: np.ndarray | None = None
    frames: np.ndarray | None = None
    source_times: np.ndarray | None = None
    video_end_s: float = 0.0
    n_video: int = 0
    n_errors: int = 0
    last_error: str = ""


class _NearestFrames:
    """Streaming picker: for sorted target times, keep the decoded frame nearest to each.

    Frames arrive in presentation order; a target is settled once a frame at or
    after it has been seen (the nearest is then that frame or the one before).
    Only chosen frames are converted to RGB arrays.
    """

    def __init__(self, targets: np.ndarray, size: Callable[[int, int], tuple[int, int] | None]):
        self.targets = targets
        self.size = size
        self.chosen: list[np.ndarray | None] = [None] * len(targets)
        self.chosen_t = np.full(len(targets), np.nan)
        self.j = 0
        self.prev: tuple[float, object] | None = None
        self._cache: tuple[object, np.ndarray] | None = None

    def _array(self, frame) -> np.ndarray:
        # The cache holds the frame itself (not its id, which Python reuses once freed).
        if self._cache is not None and self._cache[0] is frame:
            return self._cache[1]
        out = self.size(frame.width, frame.height)
        kwargs = {"format": "rgb24"}
        if out is not None:
            kwargs.update(width=out[0], height=out[1], interpolation="AREA")
        arr = frame.to_ndarray(**kwargs)
        rotation = getattr(frame, "rotation", 0) or 0
        if rotation:
            # Display matrix: rotate counterclockwise by `rotation` degrees to show upright.
            arr = np.ascontiguousarray(np.rot90(arr, k=int(round(rotation / 90.0))))
        self._cache = (frame, arr)
        return arr

    def _take(self, j: int, t: float, frame) -> None:
        self.chosen[j] = self._array(frame)
        self.chosen_t[j] = t

    def push(self, t: float, frame) -> None:
        while self.j < len(self.targets) and self.targets[self.j] <= t:
            target = self.targets[self.j]
            if self.prev is not None and target - self.prev[0] <= t - target:
                self._take(self.j, *self.prev)
            else:
                self._take(self.j, t, frame)
            self.j += 1
        self.prev = (t, frame)

    def finish(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.prev is None:
            return None
        while self.j < len(self.targets):
            self._take(self.j, *self.prev)
            self.j += 1
        if not len(self.targets):
            return None
        return np.stack(self.chosen), self.chosen_t


def _output_size(max_short_side: int | None) -> Callable[[int, int], tuple[int, int] | None]:
    def size(width: int, height: int) -> tuple[int, int] | None:
        short = min(width, height)
        if max_short_side is None or short <= max_short_side:
            return None
        scale = max_short_side / short
        return max(1, round(width * scale)), max(1, round(height * scale))

    return size


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "file not found", "Check the path (relative paths resolve "
                         f"against the current directory {Path.cwd()}).")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file", "Point to a video or audio file.")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)",
                         "The download or copy probably failed; fetch the file again.")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "file is not readable (permission denied)", "Fix its permissions.")


def _open(path: Path):
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise MediaError(
            path, f"not a readable media file (FFmpeg: {exc.strerror or exc})",
            "Check that it is a real video/audio file (e.g. not an HTML error page saved as "
            ".mp4) and re-download or re-encode it.",
        ) from exc


def _video_stream(container):
    for stream in container.streams.video:
        # Cover art in .mp3/.m4a is a one-frame "video" stream; it is not video.
        if int(stream.disposition) & int(av.stream.Disposition.attached_pic):
            continue
        return stream
    return None


def _declared_duration(container, streams) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    spans = [float(s.duration * s.time_base) for s in streams
             if s is not None and s.duration is not None and s.time_base is not None]
    return max(spans) if spans else None


def _decode_streams(
    container, astream, vstream, targets: np.ndarray, max_short_side: int | None
) -> _Decoded:
    """One demux pass over the selected streams."""
    out = _Decoded()
    if vstream is not None:
        vstream.thread_type = "AUTO"
    origin = container.start_time / 1_000_000 if container.start_time is not None else 0.0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    picker = _NearestFrames(targets, _output_size(max_short_side))
    frame_step = 0.0
    if vstream is not None and vstream.average_rate:
        frame_step = 1.0 / float(vstream.average_rate)

    def add_audio(frames) -> None:
        for rf in frames:
            chunks.append(rf.to_ndarray().reshape(-1))

    streams = [s for s in (astream, vstream) if s is not None]
    for packet in container.demux(*streams):
        try:
            decoded = packet.decode()
        except av.error.FFmpegError as exc:
            # Broken packets happen in real uploads; skip them but say so below.
            out.n_errors += 1
            out.last_error = str(exc)
            continue
        for frame in decoded:
            if packet.stream is astream:
                add_audio(resampler.resample(frame))
            else:
                t = (frame.time - origin) if frame.time is not None else out.n_video * frame_step
                out.n_video += 1
                picker.push(t, frame)
                out.video_end_s = max(out.video_end_s, t + frame_step)
    if astream is not None:
        add_audio(resampler.resample(None))
        if chunks:
            out.audio = np.concatenate(chunks).astype(np.float32, copy=False)
    picked = picker.finish()
    if picked is not None:
        out.frames, out.source_times = picked
    elif out.n_video:  # video decoded but no sample times were asked for
        out.frames = np.zeros((0, 0, 0, 3), dtype=np.uint8)
        out.source_times = np.zeros(0)
    return out


def _settle_duration(declared: float, raw: _Decoded) -> float:
    """Clip length: the container's declared duration unless the decoded data disagrees.

    AAC/MP3 decoders emit up to a frame of encoder padding past the end, so the
    decoded length runs ~20-40 ms long; trusting it would add a spurious trailing
    window. A declared duration far from what decodes (missing, truncated or broken
    metadata) is ignored. Audio is trimmed to the settled duration.
    """
    audio_s = len(raw.audio) / SAMPLE_RATE if raw.audio is not None else 0.0
    decoded = max(audio_s, raw.video_end_s)
    tolerance = max(_DURATION_TOLERANCE_S, 0.02 * decoded)
    duration = declared if declared > 0 and abs(decoded - declared) <= tolerance else decoded
    duration = round(duration, 6)
    if raw.audio is not None:
        raw.audio = raw.audio[: int(round(duration * SAMPLE_RATE))]
    return duration


def _resolve_times(frame_times: FrameTimes, duration_s: float, windows, frames_per_window):
    if frame_times is None:
        plan = window_frame_times(windows, frames_per_window)
        return plan.times, plan.index
    raw = frame_times(duration_s) if callable(frame_times) else frame_times
    times = np.asarray(raw, dtype=np.float64).reshape(-1)
    if times.size and (not np.all(np.isfinite(times)) or np.any(np.diff(times) < 0)):
        raise ValueError("frame_times must be finite and sorted ascending")
    return times, None


def decode_video(
    path: str | os.PathLike,
    frame_times: FrameTimes = None,
    *,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    min_last_s: float = MIN_LAST_WINDOW_S,
    frames_per_window: int = FRAMES_PER_WINDOW,
    max_short_side: int | None = MAX_SHORT_SIDE,
    audio: bool = True,
    video: bool = True,
) -> DecodedMedia:
    """Decode a video or audio file once into 16 kHz mono audio and sampled frames.

    Args:
        path: any container FFmpeg reads (.mp4, .mov, .webm, .mkv, .wav, .mp3, ...).
        frame_times: None -> ``frames_per_window`` times per window of the grid
            (see :func:`window_frame_times`); a sorted sequence of seconds; or a callable
            ``f(duration_s) -> times``.
        window_s, hop_s, min_last_s: window geometry (see :func:`window_grid`).
        frames_per_window: frames sampled per window when ``frame_times`` is None.
        max_short_side: frames are downscaled (aspect kept) so their short side is at
            most this many pixels; None keeps the original size.
        audio, video: set False to skip decoding that stream (faster).

    Returns:
        DecodedMedia; ``audio`` is None without an audio stream, ``frames`` None
        without a video stream.

    Raises:
        MediaError: missing/empty/unreadable file, or no decodable audio or video.
    """
    path = Path(path)
    _check_file(path)
    container = _open(path)
    try:
        astream = container.streams.audio[0] if container.streams.audio else None
        vstream = _video_stream(container)
        if astream is None and vstream is None:
            raise MediaError(path, "contains no audio or video stream",
                             "Use a file with an audio and/or video track.")
        use_a = astream if audio else None
        use_v = vstream if video else None
        if use_a is None and use_v is None:
            what = "audio" if audio else "video"
            raise MediaError(path, f"has no {what} stream to decode",
                             "Enable the other stream (audio=/video=) or use another file.")

        declared = _declared_duration(container, [use_a, use_v]) or 0.0
        windows = window_grid(declared, window_s, hop_s, min_last_s)
        targets, index = _resolve_times(frame_times, declared, windows, frames_per_window)
        raw = _decode_streams(container, use_a, use_v, targets, max_short_side)
    except (av.error.FFmpegError, OSError) as exc:  # failures outside single packets
        raise MediaError(path, f"decoding failed ({type(exc).__name__}: {exc})",
                         "Re-encode the file (e.g. to H.264/AAC .mp4) and try again.") from exc
    finally:
        container.close()

    n_video = raw.n_video
    if raw.audio is None and n_video == 0:
        detail = f" (last FFmpeg error: {raw.last_error})" if raw.last_error else ""
        raise MediaError(path, f"no decodable audio or video data{detail}",
                         "The file is probably truncated or corrupt; re-download or re-encode it.")
    if raw.n_errors:
        warnings.warn(f"{path}: skipped {raw.n_errors} undecodable packet(s) "
                      f"(last: {raw.last_error})", RuntimeWarning, stacklevel=2)

    duration = _settle_duration(declared, raw)
    has_video = n_video > 0 if use_v is not None else vstream is not None

    if abs(duration - declared) > _EPS:
        # Declared duration was wrong or missing: the grid (and maybe the frames) change.
        windows = window_grid(duration, window_s, hop_s, min_last_s)
        new_targets, index = _resolve_times(frame_times, duration, windows, frames_per_window)
        if use_v is not None and n_video and (
            new_targets.shape != targets.shape or not np.allclose(new_targets, targets)
        ):
            container = _open(path)
            try:
                vonly = _decode_streams(container, None, _video_stream(container),
                                        new_targets, max_short_side)
            finally:
                container.close()
            raw.frames, raw.source_times = vonly.frames, vonly.source_times
        targets = new_targets

    return DecodedMedia(
        path=path,
        duration_s=duration,
        audio=raw.audio,
        frames=raw.frames if n_video else None,
        frame_times=targets,
        has_video=has_video,
        windows=windows,
        frame_index=index,
        source_frame_times=raw.source_times if n_video else None,
        n_decode_errors=raw.n_errors,
    )


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            h.update(block)
    return h.hexdigest()


class InputFingerprint(NamedTuple):
    """What a manifest row's stored rows were computed from: the file's SHA-256 (its identity)
    and the ``stat`` facts that let an unchanged file skip re-hashing."""

    size: int          # bytes
    mtime: float       # seconds since the epoch
    sha256: str
    ctime_ns: int      # status-change time: set by the kernel on every write, utime and rename
    inode: int


def input_fingerprint(row: dict, stored: dict | None = None, rehash: bool = False) -> InputFingerprint | None:
    """The :class:`InputFingerprint` of the file a manifest row's rows are computed from: its
    media, or its transcript file when it has no media; None when it has neither.

    The stored hash (``stored`` is the store's ``videos`` row) is reused only when path, size,
    mtime, inode *and* ctime all match. A file replaced in place with the same size and mtime
    (``cp -p``, ``rsync -t``, a restore from tar) still gets a new ctime, which no user call can
    set back, so it is hashed again and its new content re-embedded. ``rehash`` hashes every
    file regardless (for file systems that keep no change time). Raises OSError for a file
    that cannot be read.
    """
    path = row.get("path") or row.get("transcript_path")
    if not path:
        return None
    st = os.stat(path)
    size, mtime = int(st.st_size), float(st.st_mtime)
    ctime_ns, inode = int(st.st_ctime_ns), int(st.st_ino)
    if not rehash and stored and stored.get("media_sha256") and stored.get("media_size") == size \
            and stored.get("media_mtime") is not None and abs(stored["media_mtime"] - mtime) < 1e-6 \
            and stored.get("media_ctime_ns") == ctime_ns and stored.get("media_inode") == inode \
            and stored.get("path") == row.get("path") and stored.get("transcript_path") == row.get("transcript_path"):
        with open(path, "rb"):
            pass  # readable now, not only listed (a share's stale entry, a permission taken away)
        return InputFingerprint(size, mtime, stored["media_sha256"], ctime_ns, inode)
    return InputFingerprint(size, mtime, file_sha256(path), ctime_ns, inode)
