"""The one place where the toolkit's vocabulary is defined.

Class names, default window geometry, embedding dims and modality names. Everything else
imports from here; the store's tables are in ``sql/schema.sql``.
"""
from __future__ import annotations

#: The eight emotion classes, in the order used by every probability vector.
CLASSES: tuple[str, ...] = (
    "Anger", "Fear", "Joy", "Neutral", "Proud", "Sadness", "Surprise", "Trust",
)
N_CLASSES = len(CLASSES)

#: Modalities, in the order their vectors are concatenated in ``fusion_vectors``.
MODALITIES: tuple[str, ...] = ("audio", "video", "text")

#: Dims the design card names: 128 + 3 + 768 = 899 (mpnet text). The store
#: benchmark uses these; any dims round-trip, and each encoder states its own
#: (``featurestore.encoders.registry``).
DESIGN_CARD_DIMS: dict[str, int] = {"audio": 128, "video": 3, "text": 768}

#: Window geometry (seconds) and frames sampled per window.
WINDOW_S = 1.0
HOP_S = 0.5
FRAMES_PER_WINDOW = 4
#: A trailing partial window is kept when at least this long (seconds).
MIN_LAST_WINDOW_S = 0.5
#: Audio sample rate every encoder receives (Hz, mono float32).
SAMPLE_RATE = 16_000

#: Per-video embed status values stored in ``videos.status``.
STATUS_PENDING = "pending"
STATUS_OK = "ok"
STATUS_FAILED = "failed"

SPLITS = ("train", "test")

# The store's tables and views are defined in sql/schema.sql (the one place for them).

#: Window -> video aggregation methods (``aggregation_methods()`` in ``sql/schema.sql``; the
#: rules are ``aggregate_windows`` in ``sql/aggregate.sql``).
AGGREGATIONS: tuple[str, ...] = ("majority", "weighted", "mean", "max")
