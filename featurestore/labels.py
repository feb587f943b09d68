"""Emotion label normalisation: the competition's spellings -> the 8 classes."""
from __future__ import annotations

import re

from .errors import InputError
from .schema import CLASSES

# Keys are compared after lower-casing and removing every non-letter, so
# "  TERKEJUT ", "Ter-kejut" and "terkejut" all match.
_ALIASES: dict[str, str] = {
    # Anger
    "anger": "Anger", "angry": "Anger", "marah": "Anger", "marh": "Anger", "kesal": "Anger",
    # Fear
    "fear": "Fear", "takut": "Fear", "afraid": "Fear", "ketakutan": "Fear",
    # Joy
    "joy": "Joy", "happy": "Joy", "happiness": "Joy", "senang": "Joy", "bahagia": "Joy",
    "gembira": "Joy",
    # Neutral
    "neutral": "Neutral", "netral": "Neutral", "biasa": "Neutral",
    # Proud
    "proud": "Proud", "pride": "Proud", "bangga": "Proud",
    # Sadness
    "sadness": "Sadness", "sad": "Sadness", "sedih": "Sadness", "kesedihan": "Sadness",
    # Surprise
    "surprise": "Surprise", "surprised": "Surprise", "kaget": "Surprise",
    "terkejut": "Surprise", "terkjut": "Surprise", "trkejut": "Surprise",
    "trekejut": "Surprise", "terkaget": "Surprise",
    # Trust
    "trust": "Trust", "percaya": "Trust", "kepercayaan": "Trust", "faith": "Trust",
    "loyalty": "Trust",
}


class UnknownLabelError(InputError):
    """A label that maps to none of the 8 classes."""


def _key(raw: str) -> str:
    return re.sub(r"[^a-z]", "", raw.lower())


def normalise_label(raw: str | None) -> str | None:
    """Map a raw label to one of :data:`CLASSES`; ``None``/blank stays ``None``.

    Raises :class:`UnknownLabelError` for anything else (e.g. ``"Love"``).
    """
    if raw is None or not str(raw).strip():
        return None
    label = _ALIASES.get(_key(str(raw)))
    if label is None:
        raise UnknownLabelError(
            f"unknown emotion label {raw!r}: expected one of {', '.join(CLASSES)} "
            "(or an Indonesian name such as Marah, Takut, Senang, Netral, Bangga, Sedih, Kaget, Percaya)"
        )
    return label


def known_aliases() -> dict[str, str]:
    """Every accepted spelling (normalised key) and its class."""
    return dict(_ALIASES)
