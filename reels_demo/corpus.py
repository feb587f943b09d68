"""A small labelled demo corpus, synthesised on the fly (nothing shipped, nothing downloaded).

Each clip is an .mp4 (H.264 or MPEG-4 video + AAC audio) of a real face
(scikit-image's astronaut, cropped around her face, moving slightly) speaking
an Indonesian sentence written for one of the 8 emotions with espeak-ng, at an
emotion-dependent pitch, rate, loudness and word gap (plus a little per-clip
jitter). It exercises the whole pipeline - decoding, ASR, all three encoders,
fusion, prediction, export - with labels that are learnable from speech text
and prosody (the face is the same in every clip, so video carries little).

Layout of ``out_dir`` after :func:`build_demo_corpus`::

    manifest.csv      id,video,emotion,split  (test rows: empty emotion)
    test_labels.csv   id,emotion              (the test rows' labels, for scoring)
    demo.json         generation parameters, their hash and per-clip details
    videos/<id>.mp4

The reusable pieces, :func:`speak` and :func:`write_talking_video`, also make
the tests' media.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import uuid
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from featurestore.schema import CLASSES

#: Bump when the generated media change for the same parameters (invalidates reuse).
DEMO_VERSION = 1

#: Natural Indonesian sentences, six per emotion, so train and test clips can differ.
EMOTION_SENTENCES: dict[str, tuple[str, ...]] = {
    "Anger": (
        "Saya sudah muak dengan semua kebohongan kalian!",
        "Kenapa kamu selalu mengulangi kesalahan yang sama?",
        "Jangan pernah bicara seperti itu lagi kepada saya!",
        "Ini benar-benar keterlaluan, saya tidak bisa terima!",
        "Berhenti menyalahkan orang lain atas kesalahanmu sendiri!",
        "Saya marah sekali karena janji itu diingkari lagi!",
    ),
    "Fear": (
        "Saya takut sekali, ada suara aneh di luar rumah.",
        "Tolong jangan tinggalkan saya sendirian di sini.",
        "Bagaimana kalau terjadi sesuatu yang buruk malam ini?",
        "Tangan saya gemetar, saya tidak berani melihat ke bawah.",
        "Aduh, sepertinya ada yang mengikuti kita dari tadi.",
        "Saya khawatir banjir besar akan datang lagi tahun ini.",
    ),
    "Joy": (
        "Saya sangat senang hari ini, semuanya berjalan lancar!",
        "Wah, akhirnya kita bisa liburan bersama keluarga!",
        "Terima kasih banyak, hadiahnya bagus sekali!",
        "Hore, tim kita menang pertandingan tadi malam!",
        "Senang sekali bisa bertemu lagi dengan teman lama.",
        "Hari ini indah sekali, mari kita rayakan bersama!",
    ),
    "Neutral": (
        "Besok pagi saya akan pergi ke pasar membeli sayur.",
        "Rapat dimulai pukul sembilan di ruang lantai dua.",
        "Kereta berikutnya berangkat dari peron nomor tiga.",
        "Silakan isi formulir ini dengan nama lengkap Anda.",
        "Toko itu buka setiap hari kecuali hari Minggu.",
        "Hari ini cuaca berawan dan angin bertiup pelan.",
    ),
    "Proud": (
        "Saya bangga, anak saya lulus dengan nilai terbaik.",
        "Kami berhasil membangun usaha ini dari nol.",
        "Ini hasil kerja keras saya selama setahun.",
        "Tim kami menjadi juara nasional tahun ini.",
        "Saya bangga menjadi bagian dari bangsa Indonesia.",
        "Akhirnya karya saya dipamerkan di galeri kota.",
    ),
    "Sadness": (
        "Saya sedih, kucing saya sudah tiada.",
        "Sepi sekali sejak kamu pergi.",
        "Maaf, saya tidak kuat menahan tangis.",
        "Semua rencana kami gagal total.",
        "Rumah ini terasa kosong tanpa ibu.",
        "Saya rindu masa kecil dulu.",
    ),
    "Surprise": (
        "Hah, benarkah? Saya sama sekali tidak menyangka!",
        "Wah, kamu datang juga! Kejutan sekali!",
        "Astaga, harganya turun setengah dalam semalam!",
        "Apa? Dia sudah menikah minggu lalu?",
        "Lho, kok pintunya sudah terbuka sendiri?",
        "Ya ampun, ternyata hadiahnya mobil baru!",
    ),
    "Trust": (
        "Saya percaya kamu bisa menyelesaikan tugas ini.",
        "Tenang saja, kamu bisa mengandalkan saya.",
        "Dokter ini sudah merawat keluarga kami bertahun-tahun.",
        "Saya yakin dia akan menepati janjinya.",
        "Serahkan saja kepada kami, semuanya akan aman.",
        "Saya titipkan kunci rumah ini kepadamu.",
    ),
}


@dataclass(frozen=True)
class Prosody:
    """espeak-ng voice settings: pitch 0-99 (50 default), speed in words/min,
    amplitude 0-200 (100 default), word gap in units of 10 ms."""

    pitch: int
    speed: int
    amplitude: int
    word_gap: int = 0


#: Acted-speech stereotypes: anger loud and fast, sadness slow, low and quiet,
#: surprise and fear high, pride and trust low and measured.
EMOTION_PROSODY: dict[str, Prosody] = {
    "Anger": Prosody(pitch=45, speed=200, amplitude=190),
    "Fear": Prosody(pitch=75, speed=195, amplitude=90, word_gap=1),
    "Joy": Prosody(pitch=70, speed=185, amplitude=140),
    "Neutral": Prosody(pitch=50, speed=165, amplitude=100),
    "Proud": Prosody(pitch=38, speed=150, amplitude=150, word_gap=1),
    "Sadness": Prosody(pitch=22, speed=120, amplitude=65, word_gap=2),
    "Surprise": Prosody(pitch=92, speed=175, amplitude=150),
    "Trust": Prosody(pitch=42, speed=145, amplitude=100, word_gap=1),
}

#: Per-clip jitter (uniform, +/-): pitch, speed (words/min), amplitude.
_JITTER = Prosody(pitch=4, speed=8, amplitude=8)
#: Silence before the speech starts (seconds).
_LEAD_S = 0.25
#: Minimum silence after the speech ends (seconds).
_TAIL_S = 0.25
#: Centre (row, col) of the face in scikit-image's astronaut (512x512); crops are 256 px.
_FACE_CENTRE = (124, 224)


class DemoError(RuntimeError):
    """The demo corpus cannot be made (e.g. espeak-ng is not installed)."""


# ------------------------------------------------------------------ speech
def _espeak_exe() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DemoError("espeak-ng is not installed; install it with `apt-get install espeak-ng` "
                        "(the demo corpus and the tests synthesise Indonesian speech with it)")
    return exe


@lru_cache(maxsize=1)
def _known_voices() -> frozenset[str]:
    """Language codes, voice names and voice files ``espeak-ng --voices`` lists (lower case)."""
    listing = subprocess.run([_espeak_exe(), "--voices"], capture_output=True, text=True, check=False).stdout
    names = set()
    for line in listing.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            names.update(c.lower() for c in (cols[1], cols[3], cols[4]))
    return frozenset(names)


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(float32 mono in [-1, 1], rate) from 16-bit PCM WAV bytes.

    espeak-ng's ``--stdout`` cannot seek back to fill in the data size, so the
    data chunk is taken to run to the end of the bytes.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DemoError("espeak-ng did not return WAV data")
    pos, rate, channels, bits = 12, None, 1, 16
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body:body + 16])
        elif cid == b"data":
            end = min(len(data), body + size)
            if rate is None or bits != 16:
                raise DemoError(f"unexpected espeak-ng WAV format (rate {rate}, {bits} bits)")
            n = (end - body) // (2 * channels) * channels
            pcm = np.frombuffer(data, dtype="<i2", count=n, offset=body).reshape(-1, channels)
            return pcm.mean(axis=1).astype(np.float32) / 32768.0, int(rate)
        pos = body + size + (size & 1)
    raise DemoError("espeak-ng WAV output has no data chunk")


def speak(text: str, voice: str = "id", pitch: int = 50, speed: int = 150,
          amplitude: int = 100, word_gap: int = 0) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with espeak-ng, in memory.

    Args:
        text: what to say.
        voice: espeak-ng voice (``"id"`` Indonesian; variants such as ``"id+f3"``).
        pitch: 0-99 (espeak-ng's default is 50).
        speed: words per minute.
        amplitude: 0-200 (100 is espeak-ng's default loudness).
        word_gap: extra pause between words, in units of 10 ms.

    Returns:
        (samples, rate): float32 mono samples in [-1, 1] and their rate in Hz (22050).
    """
    if not text or not text.strip():
        raise ValueError("speak() needs non-empty text")
    # espeak-ng silently falls back to its default voice on an unknown name.
    if voice.split("+")[0].lower() not in _known_voices():
        raise DemoError(f"espeak-ng has no voice {voice!r}; pick one `espeak-ng --voices` lists "
                        "(e.g. 'id', or a variant such as 'id+f3')")
    cmd = [_espeak_exe(), "--stdout", "-v", voice, "-p", str(int(pitch)), "-s", str(int(speed)),
           "-a", str(int(amplitude)), "-g", str(int(word_gap)), text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise DemoError(f"espeak-ng failed (exit {proc.returncode}) for voice {voice!r}: "
                        f"{proc.stderr.decode(errors='replace').strip()}; "
                        "check `espeak-ng --voices` lists that voice")
    return _parse_wav(proc.stdout)


# ------------------------------------------------------------------ frames
@lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    import skimage.data

    img = skimage.data.astronaut()
    img.flags.writeable = False
    return img


def face_frames(n_frames: int, size: int = 256, seed: int = 0, motion: float = 1.0) -> np.ndarray:
    """Frames of a real face: scikit-image's astronaut, cropped around her face.

    Each frame is the crop with a small random-walk shift (a few pixels) and
    zoom (up to ~8 %), like a hand-held phone, so no two frames are identical.

    Args:
        n_frames: number of frames.
        size: output side in pixels (square; even, as H.264 needs).
        seed: makes the motion reproducible.
        motion: scales the shift and zoom (0 gives identical frames).

    Returns:
        (n_frames, size, size, 3) uint8 RGB.
    """
    import cv2

    img = _astronaut()
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    # Smooth motion: a random walk pulled back towards the centre.
    shift = np.zeros(2)
    zoom = 0.0
    out = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    for i in range(n_frames):
        shift = 0.8 * shift + rng.normal(0.0, 1.5 * motion, 2)
        zoom = float(np.clip(0.8 * zoom + rng.normal(0.0, 0.01 * motion), 0.0, 0.08 * motion))
        side = 256.0 / (1.0 + zoom)
        cy = float(np.clip(_FACE_CENTRE[0] + shift[0], side / 2, h - side / 2))
        cx = float(np.clip(_FACE_CENTRE[1] + shift[1], side / 2, w - side / 2))
        # Affine map of the source box onto the output square (sub-pixel shifts).
        s = size / side
        m = np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]])
        out[i] = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
    return out


# ------------------------------------------------------------------ muxing
_AUDIO_CODECS = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".flac": "flac"}


def _video_codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_talking_video(path: str | os.PathLike, frames: np.ndarray | Iterable[np.ndarray] | None,
                        fps: float, audio: np.ndarray | None = None,
                        sample_rate: int | None = None) -> Path:
    """Mux frames and/or mono audio into a media file with PyAV, atomically.

    The file appears under ``path`` only once complete (written to a temporary
    name beside it, then renamed).

    Args:
        path: output file; the suffix picks the container (.mp4, .mkv, .wav, ...).
            Video is H.264 (MPEG-4 part 2 where libx264 is missing), yuv420p;
            audio is AAC, or PCM/MP3/FLAC for a .wav/.mp3/.flac path.
        frames: (n, H, W, 3) uint8 RGB array or an iterable of (H, W, 3) frames
            (even H and W); None writes no video stream.
        fps: frames per second.
        audio: (n_samples,) float mono in [-1, 1]; None writes no audio stream.
        sample_rate: Hz of ``audio`` (required with audio).

    Returns:
        The written path.
    """
    import av

    path = Path(path)
    if frames is None and audio is None:
        raise ValueError(f"{path}: nothing to write (neither frames nor audio)")
    if audio is not None and not sample_rate:
        raise ValueError(f"{path}: sample_rate is required with audio")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        with av.open(str(tmp), mode="w") as out:
            astream = None
            if audio is not None:
                codec = _AUDIO_CODECS.get(path.suffix.lower(), "aac")
                astream = out.add_stream(codec, rate=int(sample_rate))
                astream.layout = "mono"
            if frames is not None:
                _mux_video(out, frames, fps, path)
            if astream is not None:
                _mux_audio(out, astream, np.asarray(audio, dtype=np.float32).reshape(-1), int(sample_rate))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _mux_video(out, frames, fps: float, path: Path) -> None:
    import av

    rate = Fraction(fps).limit_denominator(1001)
    vstream = None
    for i, img in enumerate(frames):
        img = np.ascontiguousarray(img, dtype=np.uint8)
        if vstream is None:
            h, w = img.shape[:2]
            if img.ndim != 3 or img.shape[2] != 3 or h % 2 or w % 2:
                raise ValueError(f"{path}: frames must be (H, W, 3) RGB with even H and W, got {img.shape}")
            vstream = out.add_stream(_video_codec(), rate=rate)
            vstream.width, vstream.height = w, h
            vstream.pix_fmt = "yuv420p"
            if vstream.codec_context.name == "libx264":
                # Short synthetic clips: encoding speed matters more than bitrate.
                vstream.options = {"preset": "veryfast", "crf": "23"}
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        frame.time_base = 1 / rate
        out.mux(vstream.encode(frame))
    if vstream is None:
        raise ValueError(f"{path}: frames is empty; pass None to write no video stream")
    out.mux(vstream.encode(None))


def _mux_audio(out, astream, samples: np.ndarray, rate: int, chunk: int = 1024) -> None:
    import av

    samples = np.clip(samples, -1.0, 1.0)
    for start in range(0, len(samples), chunk):
        piece = np.ascontiguousarray(samples[start:start + chunk])[None, :]
        frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        out.mux(astream.encode(frame))
    out.mux(astream.encode(None))


# ------------------------------------------------------------------ corpus
@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one demo clip (its hash decides reuse)."""

    id: str
    emotion: str
    split: str
    text: str
    voice: str
    pitch: int
    speed: int
    amplitude: int
    word_gap: int
    seconds_min: float
    seconds_max: float
    fps: float
    size: int
    seed: int

    def digest(self) -> str:
        payload = json.dumps({"version": DEMO_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def _n_test(n_per_class: int, test_fraction: float) -> int:
    if n_per_class < 2:
        raise ValueError(f"n_per_class must be >= 2 (one train and one test clip per class), got {n_per_class}")
    return int(min(n_per_class - 1, max(1, round(n_per_class * test_fraction))))


def plan_demo_corpus(n_per_class: int = 4, seconds: tuple[float, float] = (3.0, 5.0), seed: int = 0,
                     test_fraction: float = 0.25, voice: str = "id", fps: float = 10.0,
                     size: int = 256) -> list[ClipSpec]:
    """The clips :func:`build_demo_corpus` makes, in manifest order (see there)."""
    lo, hi = float(seconds[0]), float(seconds[1])
    if not 0.5 < lo <= hi:
        raise ValueError(f"seconds must be (min, max) with 0.5 < min <= max, got {seconds!r}")
    n_test = _n_test(n_per_class, test_fraction)
    rng = np.random.default_rng(seed)
    rows = []
    for emotion in CLASSES:
        sentences = list(EMOTION_SENTENCES[emotion])
        order = rng.permutation(len(sentences))
        # Test clips speak sentences no train clip speaks (while there are enough).
        n_test_pool = min(len(sentences) - 1, max(1, round(len(sentences) * n_test / n_per_class)))
        test_pool = [sentences[k] for k in order[:n_test_pool]]
        train_pool = [sentences[k] for k in order[n_test_pool:]]
        base = EMOTION_PROSODY[emotion]
        for k in range(n_per_class):
            split = "test" if k < n_test else "train"
            pool = test_pool if split == "test" else train_pool
            j = k if split == "test" else k - n_test
            jitter = rng.uniform(-1.0, 1.0, 3)
            rows.append(dict(
                emotion=emotion, split=split, text=pool[j % len(pool)], voice=voice,
                pitch=int(np.clip(round(base.pitch + jitter[0] * _JITTER.pitch), 0, 99)),
                speed=int(max(80, round(base.speed + jitter[1] * _JITTER.speed))),
                amplitude=int(np.clip(round(base.amplitude + jitter[2] * _JITTER.amplitude), 10, 200)),
                word_gap=base.word_gap, seconds_min=lo, seconds_max=hi, fps=float(fps), size=int(size),
                seed=int(rng.integers(2**31)),
            ))
    # Ids and order carry no hint of the label.
    perm = rng.permutation(len(rows))
    rows = [rows[i] for i in perm]
    rows.sort(key=lambda r: r["split"] != "train")
    return [ClipSpec(id=f"demo{i:03d}", **r) for i, r in enumerate(rows)]


def _render_clip(spec: ClipSpec, path: Path) -> dict:
    """Synthesise and mux one clip; returns its measured details."""
    speed = spec.speed
    for _ in range(3):
        speech, rate = speak(spec.text, spec.voice, spec.pitch, speed, spec.amplitude, spec.word_gap)
        speech_s = len(speech) / rate
        room = spec.seconds_max - _LEAD_S - _TAIL_S
        if speech_s <= room:
            break
        # Too long for the clip: say it faster rather than cut words off.
        speed = int(np.ceil(speed * speech_s / room * 1.03))
    speech = speech[: int((spec.seconds_max - _LEAD_S) * rate)]
    n_frames = int(np.ceil(max(spec.seconds_min, _LEAD_S + len(speech) / rate + _TAIL_S) * spec.fps - 1e-9))
    n_frames = min(n_frames, int(np.floor(spec.seconds_max * spec.fps + 1e-9)))
    duration = n_frames / spec.fps
    track = np.zeros(int(round(duration * rate)), dtype=np.float32)
    lead = int(_LEAD_S * rate)
    track[lead:lead + len(speech)] = speech[: len(track) - lead]
    frames = face_frames(n_frames, spec.size, spec.seed)
    write_talking_video(path, frames, spec.fps, track, rate)
    return {"duration_s": duration, "speech_s": round(len(speech) / rate, 3), "speed_used": speed,
            "n_frames": n_frames}


def _write_if_changed(path: Path, text: str) -> None:
    # Unchanged files keep their mtime, so callers can see nothing was redone.
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def build_demo_corpus(out_dir: str | os.PathLike, n_per_class: int = 4,
                      seconds: tuple[float, float] = (3.0, 5.0), seed: int = 0, progress: bool = True,
                      test_fraction: float = 0.25, voice: str = "id", fps: float = 10.0,
                      size: int = 256) -> Path:
    """Make (or reuse) the labelled demo corpus in ``out_dir``; returns ``manifest.csv``.

    Args:
        out_dir: folder to fill (created); see the module docstring for its layout.
        n_per_class: clips per emotion (>= 2); 8 classes, so 8 * n_per_class clips.
        seconds: (min, max) clip length in seconds: the speech plus short silences,
            padded to ``min``; speech longer than ``max`` is re-synthesised faster.
        seed: fixes sentence choice, prosody jitter, ids and face motion.
        progress: show a tqdm bar while clips are made.
        test_fraction: share of each class put in the test split (at least one clip
            per class; 1 of 4 by default). Test rows have an empty emotion in the
            manifest; ``test_labels.csv`` keeps their labels for scoring.
        voice: espeak-ng voice.
        fps: video frame rate.
        size: square frame side in pixels (even).

    Clips whose generation parameters (hashed, with :data:`DEMO_VERSION`) match
    ``demo.json`` and whose file exists are reused untouched; so are the CSVs
    when their content is unchanged.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    specs = plan_demo_corpus(n_per_class, seconds, seed, test_fraction, voice, fps, size)
    meta_path = out / "demo.json"
    old: dict = {}
    if meta_path.exists():
        try:
            old = {c["id"]: c for c in json.loads(meta_path.read_text(encoding="utf-8")).get("clips", [])}
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
            old = {}  # a damaged record only costs a rebuild

    clips, todo = {}, []
    for spec in specs:
        rel = f"videos/{spec.id}.mp4"
        prev = old.get(spec.id)
        if prev and prev.get("sha256") == spec.digest() and (out / rel).is_file():
            clips[spec.id] = prev
        else:
            todo.append(spec)
    for spec in tqdm(todo, desc="demo clips", unit="clip", disable=not progress or not todo):
        rel = f"videos/{spec.id}.mp4"
        details = _render_clip(spec, out / rel)
        clips[spec.id] = {**asdict(spec), "video": rel, "sha256": spec.digest(), **details}
    # Clips of an earlier, different corpus in this folder are ours to remove.
    wanted = {s.id for s in specs}
    for cid, prev in old.items():
        if cid not in wanted and prev.get("video"):
            (out / prev["video"]).unlink(missing_ok=True)

    params = {"version": DEMO_VERSION, "n_per_class": n_per_class, "seconds": [float(s) for s in seconds],
              "seed": seed, "test_fraction": test_fraction, "voice": voice, "fps": float(fps), "size": size}
    meta = {"params": params,
            "params_sha256": hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest(),
            "clips": [clips[s.id] for s in specs]}
    manifest = out / "manifest.csv"
    _write_if_changed(manifest, _csv_text(
        ("id", "video", "emotion", "split"),
        ((s.id, f"videos/{s.id}.mp4", s.emotion if s.split == "train" else "", s.split) for s in specs)))
    _write_if_changed(out / "test_labels.csv", _csv_text(
        ("id", "emotion"), ((s.id, s.emotion) for s in specs if s.split == "test")))
    _write_if_changed(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return manifest
