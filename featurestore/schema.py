"""The one place where the store's vocabulary is defined.

Class names, default window geometry, embedding dims, modality names and the
Arrow schemas of every part the store writes. Everything else imports from here.
"""
from __future__ import annotations

import pyarrow as pa

#: The eight emotion classes, in the order used by every probability vector.
CLASSES: tuple[str, ...] = (
    "Anger", "Fear", "Joy", "Neutral", "Proud", "Sadness", "Surprise", "Trust",
)
N_CLASSES = len(CLASSES)

#: Modalities, in the order their vectors are concatenated in ``fusion_vectors``.
MODALITIES: tuple[str, ...] = ("audio", "video", "text")

#: Dims the design card names: 128 + 3 + 768 = 899 (mpnet text). The store
#: benchmark uses these; any dims round-trip.
DESIGN_CARD_DIMS: dict[str, int] = {"audio": 128, "video": 3, "text": 768}
#: Dims of the default encoders: multilingual e5-small beat mpnet on the real
#: transcripts (bench/text_encoders.py), so text is 384-D and a window 515-D.
DEFAULT_DIMS: dict[str, int] = {"audio": 128, "video": 3, "text": 384}

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

# ---------------------------------------------------------------- part schemas
# Each kind of part lives under ``<store>/parts/<kind>/`` and is immutable.
# ``written_at`` (UTC) lets views keep the newest row per key, which is what
# makes re-runs and resumes idempotent without ever rewriting a file.

VIDEOS_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("split", pa.string()),
    ("label", pa.string()),
    ("raw_label", pa.string()),
    ("group", pa.string()),
    ("path", pa.string()),
    ("transcript_path", pa.string()),
    ("manifest_row", pa.int32()),
    ("duration_s", pa.float64()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("transcript_source", pa.string()),   # "file:<path>[#<unit>]", "asr:<backend>:<model>/<lang>#<unit>" or NULL
    ("written_at", pa.timestamp("us", tz="UTC")),
])

WINDOWS_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("window_idx", pa.int32()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("transcript", pa.string()),
    ("written_at", pa.timestamp("us", tz="UTC")),
])


#: What Whisper said in a video, kept so that a change of text unit or text encoder
#: re-windows without transcribing again. ``source`` is the ASR identity
#: (``asr:<backend>:<model>/<lang>``, as ``videos.transcript_source`` less its unit);
#: ``word_timestamps`` says whether ``words`` were timed (word windows need them).
SEGMENTS_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("segment_idx", pa.int32()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("text", pa.string()),
    ("words", pa.list_(pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()),
                                  ("text", pa.string())]))),
    ("source", pa.string()),
    ("word_timestamps", pa.bool_()),
    ("duration_s", pa.float64()),
    ("written_at", pa.timestamp("us", tz="UTC")),
])


def embedding_schema(dim: int) -> pa.Schema:
    """Schema of an embeddings part for one encoder of ``dim`` float32 values.

    ``embedding`` is NULL where the modality is missing for that window and
    ``missing_reason`` then says why (no audio track, no face, no speech...);
    ``embedding_f32`` holds the same floats as a fixed-width blob (NULL alike).
    """
    return pa.schema([
        ("video_id", pa.string()),
        ("window_idx", pa.int32()),
        ("embedding", pa.list_(pa.float32(), dim)),
        ("missing_reason", pa.string()),
        ("written_at", pa.timestamp("us", tz="UTC")),
        # The same float32 values as one little-endian blob per row, for fast
        # full-matrix loads (FeatureStore.load_embeddings); SQL uses ``embedding``.
        ("embedding_f32", pa.binary(4 * dim)),
    ])


ENCODERS_SCHEMA = pa.schema([
    ("encoder_id", pa.string()),
    ("name", pa.string()),
    ("modality", pa.string()),
    ("dim", pa.int32()),
    ("version", pa.string()),
    ("config", pa.string()),          # JSON
    ("weights_sha256", pa.string()),
    ("packages", pa.string()),        # JSON {package: version}
    ("written_at", pa.timestamp("us", tz="UTC")),
])

WINDOW_PREDICTIONS_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("video_id", pa.string()),
    ("window_idx", pa.int32()),
    ("probs", pa.list_(pa.float32(), N_CLASSES)),
    ("written_at", pa.timestamp("us", tz="UTC")),
])

MODELS_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("family", pa.string()),          # mlp | lightgbm | pooled-...
    ("method", pa.string()),          # default window->video aggregation
    ("cv_macro_f1", pa.float64()),
    ("path", pa.string()),            # directory holding the fitted model
    ("encoders", pa.string()),        # JSON {modality: encoder_id}
    ("lineage", pa.string()),         # JSON: params, per-fold scores, confusion, store snapshot
    ("written_at", pa.timestamp("us", tz="UTC")),
])

PART_SCHEMAS: dict[str, pa.Schema] = {
    "videos": VIDEOS_SCHEMA,
    "windows": WINDOWS_SCHEMA,
    "segments": SEGMENTS_SCHEMA,
    "encoders": ENCODERS_SCHEMA,
    "window_predictions": WINDOW_PREDICTIONS_SCHEMA,
    "models": MODELS_SCHEMA,
}

#: Window -> video aggregation methods; each is ``sql/aggregate_<name>.sql``.
AGGREGATIONS: tuple[str, ...] = ("majority", "weighted", "mean", "max")
