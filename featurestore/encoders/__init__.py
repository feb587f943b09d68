"""Per-modality window encoders behind one API.

>>> from featurestore.encoders import get_encoder, default_encoder
>>> enc = get_encoder("librosa-descriptors")
>>> X, reasons = enc.encode([window_audio, None])   # (2, 128) float32; NaN row + reason for None

A new encoder subclasses :class:`AudioEncoder`, :class:`VideoEncoder` or :class:`TextEncoder`
and is registered with :func:`register_encoder` (or an entry point): see
``featurestore.encoders.registry``.
"""
from featurestore.encoders.base import (
    REASON_NO_AUDIO,
    REASON_NO_FACE,
    REASON_NO_SPEECH,
    REASON_NO_VIDEO,
    REASON_SHORT_AUDIO,
    REASON_SILENT,
    AudioEncoder,
    Encoder,
    VideoEncoder,
    resolve_device,
    window_bounds,
)
from featurestore.encoders.registry import available_encoders, default_encoder, get_encoder, register_encoder
from featurestore.encoders.text import TextEncoder

__all__ = [
    "Encoder", "AudioEncoder", "VideoEncoder", "TextEncoder", "get_encoder", "register_encoder",
    "available_encoders", "default_encoder", "resolve_device",
    "window_bounds", "REASON_NO_AUDIO", "REASON_SILENT", "REASON_SHORT_AUDIO",
    "REASON_NO_VIDEO", "REASON_NO_FACE", "REASON_NO_SPEECH",
]
