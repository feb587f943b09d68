"""Per-modality window encoders (audio 128-D, video 3-D, text 384/768-D) behind one API.

>>> from featurestore.encoders import get_encoder, default_encoder
>>> enc = get_encoder(default_encoder("audio"))
>>> X, reasons = enc.encode([window_audio, None])   # (2, 128) float32; NaN row + reason for None
"""
from featurestore.encoders.base import (
    REASON_NO_AUDIO,
    REASON_NO_FACE,
    REASON_NO_SPEECH,
    REASON_NO_VIDEO,
    REASON_SHORT_AUDIO,
    REASON_SILENT,
    Encoder,
    resolve_device,
    window_bounds,
)
from featurestore.encoders.registry import available_encoders, default_encoder, get_encoder

__all__ = [
    "Encoder", "get_encoder", "available_encoders", "default_encoder", "resolve_device",
    "window_bounds", "REASON_NO_AUDIO", "REASON_SILENT", "REASON_SHORT_AUDIO",
    "REASON_NO_VIDEO", "REASON_NO_FACE", "REASON_NO_SPEECH",
]
