"""Tiny real media for tests: espeak-ng Indonesian speech + a real face, muxed with PyAV.

Everything is made on the fly in a directory the caller owns (e.g. pytest's
``tmp_path``); nothing is downloaded. Needs the ``espeak-ng`` binary
(``apt-get install espeak-ng``) for speech and scikit-image for the images.

Frames carry a marker: the top-left 16x16 block has grey level
``(frame_number * MARKER_STEP) % 256``, so a test can tell which source frame
it got back (``frame_number_from_marker``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SPEECH_TEXT = "Saya sangat senang hari ini"
#: A ~4.7 s sentence Whisper base recognises almost word for word from espeak-ng
#: ("sangat" alone tends to come out as "saya").
CLEAR_TEXT = "Saya sangat senang sekali hari ini karena bertemu teman"
#: A ~10 s Indonesian passage (timings, longer tests).
LONG_TEXT = (
    "Selamat pagi semuanya. Hari ini kita bisa berkumpul bersama keluarga. "
    "Terima kasih atas dukungan kalian, semoga kita selalu sehat."
)
MARKER = 16
MARKER_STEP = 16


def espeak(text: str = SPEECH_TEXT, voice: str = "id", pitch: int = 50,
           speed: int = 150) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with espeak-ng; returns (float32 mono samples in [-1, 1], rate Hz).
    Without espeak-ng the calling test skips, or fails where CI requires services."""
    import shutil

    if shutil.which("espeak-ng") is None:
        from conftest import require
        require("espeak-ng", "apt-get install espeak-ng")
    from reels_demo.corpus import speak

    return speak(text, voice=voice, pitch=pitch, speed=speed)


def face_image(face: bool = True, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """RGB uint8 (H, W, 3) image of ``size`` = (width, height).

    face=True: scikit-image's astronaut (a real smiling face, upper 4:3 crop);
    face=False: scikit-image's coffee cup (no face).
    """
    import cv2
    import skimage.data

    if face:
        img = skimage.data.astronaut()[:384, :512]  # 4:3 crop keeping head and shoulders
    else:
        img = skimage.data.coffee()
    return np.ascontiguousarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA))


def frame_number_from_marker(frame: np.ndarray) -> int:
    """Source frame number modulo ``256 // MARKER_STEP`` read back from a frame's marker.

    Works on downscaled frames too (reads the centre of the scaled marker block).
    """
    h, w = frame.shape[:2]
    # Marker spans MARKER px of a frame whose width was 320 in the fixtures.
    k = max(1, int(round(MARKER * w / 320 / 3)))
    level = float(frame[k:2 * k, k:2 * k].mean())
    return int(round(level / MARKER_STEP)) % (256 // MARKER_STEP)


def _write(path: Path, image: np.ndarray | None, n_frames: int, fps: int,
           audio: tuple[np.ndarray, int] | None, marker: bool) -> Path:
    from reels_demo.corpus import write_talking_video

    def frames():
        for i in range(n_frames):
            img = image.copy()
            if marker:
                img[:MARKER, :MARKER] = (i * MARKER_STEP) % 256
            yield img

    samples, rate = audio if audio is not None else (None, None)
    return write_talking_video(path, frames() if image is not None else None, fps, samples, rate)


def _fit(samples: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    n = int(round(seconds * rate))
    return np.pad(samples, (0, max(0, n - len(samples))))[:n]


def make_talking_face_video(path: str | Path, text: str = SPEECH_TEXT, seconds: float | None = None,
                            face: bool = True, audio: bool = True, voice: str = "id",
                            pitch: int = 50, speed: int = 150, fps: int = 15,
                            size: tuple[int, int] = (320, 240), marker: bool = True) -> Path:
    """Write an .mp4 (H.264 or MPEG-4 + AAC) of a face with espeak-ng speech.

    seconds=None: as long as the speech plus 0.3 s of silence, rounded up to a
    whole frame; else the speech is padded with silence / cut to ``seconds``.
    audio=False writes no audio track at all.
    """
    path = Path(path)
    speech, rate = espeak(text, voice, pitch, speed)
    if seconds is None:
        seconds = len(speech) / rate + 0.3
    n_frames = max(1, int(np.ceil(seconds * fps - 1e-9)))
    seconds = n_frames / fps
    track = (_fit(speech, rate, seconds), rate) if audio else None
    return _write(path, face_image(face, size), n_frames, fps, track, marker)


def make_silent_video(path: str | Path, seconds: float = 2.0, face: bool = True, fps: int = 15,
                      size: tuple[int, int] = (320, 240), marker: bool = True) -> Path:
    """Write an .mp4 with a video track and no audio track."""
    n_frames = max(1, int(np.ceil(seconds * fps - 1e-9)))
    return _write(Path(path), face_image(face, size), n_frames, fps, None, marker)


def make_audio_only(path: str | Path, text: str = SPEECH_TEXT, seconds: float | None = None,
                    voice: str = "id", pitch: int = 50, speed: int = 150) -> Path:
    """Write speech without video; the codec follows the suffix (.wav PCM, .mp3, .flac, else AAC)."""
    speech, rate = espeak(text, voice, pitch, speed)
    if seconds is not None:
        speech = _fit(speech, rate, seconds)
    return _write(Path(path), None, 0, 1, (speech, rate), marker=False)


def make_zero_byte(path: str | Path) -> Path:
    """An empty file (a failed download)."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_text_as_video(path: str | Path) -> Path:
    """A text file with a video suffix (an HTML error page saved as .mp4)."""
    path = Path(path)
    path.write_text("<html><body>404 Not Found</body></html>\n" * 20, encoding="utf-8")
    return path


def make_truncated_video(path: str | Path, source: str | Path, keep_bytes: int = 2048) -> Path:
    """The first ``keep_bytes`` of a real video: a valid header, no decodable data."""
    path = Path(path)
    path.write_bytes(Path(source).read_bytes()[:keep_bytes])
    return path


def make_corrupt_video(path: str | Path, source: str | Path) -> Path:
    """A copy of a real .mp4 whose media data (``mdat`` payload) is zeroed.

    The container parses (streams, duration) but no packet decodes.
    """
    data = bytearray(Path(source).read_bytes())
    at = data.find(b"mdat")
    if at < 4:
        raise ValueError(f"{source} has no mdat box; pass an .mp4 made by these fixtures")
    size = int.from_bytes(data[at - 4:at], "big")
    data[at + 4:at - 4 + size] = bytes(size - 8)
    path = Path(path)
    path.write_bytes(bytes(data))
    return path


#: Indonesian emotion words the text-only corpora cycle through (one per video).
EMOTION_WORDS = ("senang", "marah", "takut", "sedih", "bangga", "kaget", "percaya", "biasa")


def text_corpus(root: str | Path, n_videos: int, n_windows: int, no_speech_first: bool = False) -> Path:
    """A manifest of ``n_videos`` text-only videos with seed-format window transcripts.

    Video ``v{i}`` is labelled ``EMOTION_WORDS[i % 8]`` (raw Indonesian labels, as the
    competition's) and has ``n_windows`` windows ``"saya {word} sekali nomor {i} bagian {k // 3}"``,
    the first one ``[NO_SPEECH]`` with ``no_speech_first``. Quick to embed (text only), so
    tests use it for many videos and many commits. Returns the manifest path, ``root/m.csv``.
    """
    root = Path(root)
    lines = ["id,video,emotion,transcript"]
    for i in range(n_videos):
        w = EMOTION_WORDS[i % len(EMOTION_WORDS)]
        rows = ["[NO_SPEECH]" if no_speech_first and k == 0 else f"saya {w} sekali nomor {i} bagian {k // 3}"
                for k in range(n_windows)]
        (root / f"t{i}.txt").write_text("".join(f"{k}\t{t}\n" for k, t in enumerate(rows)))
        lines.append(f"v{i},,{w},t{i}.txt")
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    return root / "m.csv"
