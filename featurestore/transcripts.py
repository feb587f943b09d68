"""Existing transcripts instead of ASR: window TSV, SRT, WebVTT and Whisper JSON.

* **Window TSV** (``.txt``/``.tsv``, the seed format): one line per window,
  ``window_idx<TAB>text``; ``[NO_SPEECH]`` or empty text means no speech. The
  file defines the windows itself: index ``i`` spans ``[i * HOP_S, i * HOP_S + WINDOW_S)``.
* **SRT** / **WebVTT**: timed cues; a cue's text goes to every window it overlaps.
* **Whisper JSON**: openai-whisper's result dict (``{"segments": [...]}``) or a bare
  list of segments; per-word timings (``"words"``) are kept when present.

Timed formats are mapped onto windows with :func:`featurestore.asr.window_texts` (whole
segments/cues by default, or words); without explicit windows, the grid is derived from
the last end time.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from featurestore.errors import InputError
from featurestore.asr import Segment, Word, window_texts
from featurestore.media import Window, window_grid
from featurestore.schema import HOP_S, WINDOW_S

#: Marker the seed transcripts use for a window without speech.
NO_SPEECH = "[NO_SPEECH]"
FORMATS = ("tsv", "srt", "vtt", "whisper-json")
_SUFFIX_FORMAT = {".txt": "tsv", ".tsv": "tsv", ".srt": "srt", ".vtt": "vtt", ".json": "whisper-json"}

_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <c.x>, <00:01.000>, {\an8}
_SRT_TIME = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*$")
_VTT_TIME = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2})\.(\d{1,3})\s*$")


class TranscriptError(InputError):
    """A transcript file is malformed; the message names the file, the line and the fix."""

    def __init__(self, path: str | os.PathLike, reason: str, line: int | None = None,
                 hint: str = "") -> None:
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}" + (f". {hint}" if hint else ""))


@dataclass
class TranscriptResult:
    """One transcript mapped onto windows.

    Attributes:
        path: the file read.
        format: one of ``FORMATS``.
        windows: the windows ``texts`` refers to.
        texts: one entry per window; None where nothing was said.
        segments: the timed units read (cues or Whisper segments with their words; empty
            for the TSV format).
    """

    path: Path
    format: str
    windows: list[Window]
    texts: list[str | None]
    segments: list[Segment] = field(default_factory=list)


def detect_format(path: str | os.PathLike, text: str | None = None) -> str:
    """Format by suffix, else by content (``WEBVTT`` header, JSON, ``-->`` cues, tabs)."""
    suffix = Path(path).suffix.lower()
    if suffix in _SUFFIX_FORMAT:
        return _SUFFIX_FORMAT[suffix]
    head = (text or "").lstrip("\ufeff").lstrip()
    if head.startswith("WEBVTT"):
        return "vtt"
    if head[:1] in "[{" and head:
        return "whisper-json"
    if "-->" in head[:2000]:
        return "srt"
    if "\t" in head[:2000]:
        return "tsv"
    raise TranscriptError(path, "cannot tell the transcript format",
                          hint=f"use one of the suffixes {sorted(_SUFFIX_FORMAT)}")


def read_transcript(path: str | os.PathLike, windows: Sequence[Window] | None = None,
                    format: str | None = None, unit: str = "segment") -> TranscriptResult:
    """Read a transcript file and give each window its text.

    Args:
        path: a ``.txt``/``.tsv`` window file, ``.srt``, ``.vtt`` or Whisper ``.json``.
        windows: the windows to fill (e.g. ``DecodedMedia.windows``). None: TSV files
            define their own windows; timed formats use ``window_grid(last end time)``.
        format: force a format (one of ``FORMATS``) instead of detecting it.
        unit: timed formats: a window's text is every overlapping ``"segment"`` (cue)
            or only the overlapping ``"word"`` s (:func:`featurestore.asr.window_texts`);
            TSV files already hold one text per window.

    Raises:
        TranscriptError: unreadable or malformed file (message names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise TranscriptError(path, "transcript file not found", hint="check the path in the manifest")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TranscriptError(path, f"not UTF-8 text (byte {exc.start})",
                              hint="re-save the transcript as UTF-8") from exc
    fmt = format or detect_format(path, text)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "tsv":
        return _from_tsv(path, text, windows)
    parse = {"srt": parse_srt, "vtt": parse_vtt, "whisper-json": parse_whisper_json}[fmt]
    segments = parse(text, path)
    if windows is None:
        windows = window_grid(max((s.end_s for s in segments), default=0.0))
    windows = list(windows)
    return TranscriptResult(path, fmt, windows, window_texts(segments, windows, unit), segments)


# ------------------------------------------------------------------ window TSV
def parse_window_tsv(text: str, path: str | os.PathLike = "<string>") -> dict[int, str | None]:
    """``{window_idx: text or None}`` from ``idx<TAB>text`` lines (blank lines ignored)."""
    rows: dict[int, str | None] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        idx_s, tab, body = line.partition("\t")
        if not tab:
            raise TranscriptError(path, f"no TAB in line {line[:60]!r}", lineno,
                                  "each line must be 'window_idx<TAB>text'")
        try:
            idx = int(idx_s.strip())
        except ValueError:
            raise TranscriptError(path, f"window index {idx_s[:30]!r} is not an integer", lineno,
                                  "each line must be 'window_idx<TAB>text'") from None
        if idx < 0:
            raise TranscriptError(path, f"negative window index {idx}", lineno)
        if idx in rows:
            raise TranscriptError(path, f"window index {idx} appears twice", lineno,
                                  "keep one line per window")
        body = body.strip()
        rows[idx] = None if body in ("", NO_SPEECH) else body
    return rows


def _from_tsv(path: Path, text: str, windows: Sequence[Window] | None) -> TranscriptResult:
    rows = parse_window_tsv(text, path)
    if windows is None:
        n = max(rows) + 1 if rows else 0
        # Indices missing from the file (gaps) are windows without text.
        windows = [Window(i, round(i * HOP_S, 9), round(i * HOP_S + WINDOW_S, 9)) for i in range(n)]
    windows = list(windows)
    known = {w.idx for w in windows}
    extra = sorted(set(rows) - known)
    if extra:
        warnings.warn(f"{path}: {len(extra)} window(s) beyond the given windows ignored "
                      f"(indices {extra[0]}..{extra[-1]})", RuntimeWarning, stacklevel=3)
    return TranscriptResult(path, "tsv", windows, [rows.get(w.idx) for w in windows])


# ------------------------------------------------------------------ SRT / VTT
def _clean(text: str) -> str:
    return " ".join(_TAG.sub("", text).split())


def _timestamp(raw: str, pattern: re.Pattern, path, lineno: int) -> float:
    m = pattern.match(raw)
    if not m:
        raise TranscriptError(path, f"bad timestamp {raw.strip()!r}", lineno,
                              "expected HH:MM:SS,mmm (SRT) or [HH:]MM:SS.mmm (VTT)")
    h, mnt, sec, frac = m.groups()
    if int(mnt) > 59 or int(sec) > 59:
        raise TranscriptError(path, f"bad timestamp {raw.strip()!r} (minutes/seconds over 59)", lineno)
    return int(h or 0) * 3600 + int(mnt) * 60 + int(sec) + int(frac.ljust(3, "0")) / 1000


def _parse_cues(text: str, path, pattern: re.Pattern, vtt: bool) -> list[Segment]:
    """Cue blocks: optional id line, ``start --> end [settings]``, text lines, blank line."""
    lines = text.splitlines()
    cues: list[Segment] = []
    i = 0
    if vtt:
        if not lines or not lines[0].lstrip("\ufeff").startswith("WEBVTT"):
            raise TranscriptError(path, "missing 'WEBVTT' header", 1, "a .vtt file starts with WEBVTT")
        while i < len(lines) and lines[i].strip():  # header block
            i += 1
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        block_start = i
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i])
            i += 1
        if vtt and block[0].split(maxsplit=1)[0] in ("NOTE", "STYLE", "REGION"):
            continue
        arrow = next((k for k, line in enumerate(block[:2]) if "-->" in line), None)
        if arrow is None:
            raise TranscriptError(path, f"cue without a 'start --> end' line: {block[0][:60]!r}",
                                  block_start + 1, "separate cues with one blank line")
        lineno = block_start + arrow + 1
        left, _, right = block[arrow].partition("-->")
        start = _timestamp(left, pattern, path, lineno)
        end = _timestamp(right.strip().split(maxsplit=1)[0] if right.strip() else "", pattern, path, lineno)
        if end < start:
            raise TranscriptError(path, f"cue ends ({end:.3f} s) before it starts ({start:.3f} s)", lineno)
        body = _clean(" ".join(block[arrow + 1:]))
        if body:
            cues.append(Segment(start, end, body))
    return cues


def parse_srt(text: str, path: str | os.PathLike = "<string>") -> list[Segment]:
    """Timed cues of an SubRip file (tags like ``<i>`` removed)."""
    return _parse_cues(text, path, _SRT_TIME, vtt=False)


def parse_vtt(text: str, path: str | os.PathLike = "<string>") -> list[Segment]:
    """Timed cues of a WebVTT file (NOTE/STYLE/REGION blocks and cue settings skipped)."""
    return _parse_cues(text, path, _VTT_TIME, vtt=True)


# ------------------------------------------------------------------ Whisper JSON
def _seconds(value: Any, path, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TranscriptError(path, f"{where}: '{key}' must be a number of seconds, got {value!r}")
    return float(value)


def parse_whisper_json(text: str, path: str | os.PathLike = "<string>") -> list[Segment]:
    """Segments (with their words where timed) of a Whisper result: ``{"segments": [...]}`` or ``[...]``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TranscriptError(path, f"invalid JSON ({exc.msg}, column {exc.colno})", exc.lineno) from None
    segments = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(segments, list):
        raise TranscriptError(path, "no 'segments' list", hint="expected Whisper's result "
                              "dict {'segments': [...]} or a list of segments")
    out: list[Segment] = []
    for s_i, seg in enumerate(segments):
        where = f"segment {s_i}"
        if not isinstance(seg, dict):
            raise TranscriptError(path, f"{where} is not an object")
        words = []
        for w_i, w in enumerate(seg.get("words") or ()):
            wwhere = f"{where} word {w_i}"
            if not isinstance(w, dict):
                raise TranscriptError(path, f"{wwhere} is not an object")
            token = w.get("word", w.get("text"))
            if not isinstance(token, str):
                raise TranscriptError(path, f"{wwhere}: missing 'word' text")
            words.append(_timed(Word(_seconds(w.get("start"), path, wwhere, "start"),
                                     _seconds(w.get("end"), path, wwhere, "end"), token.strip()), path))
        words = tuple(w for w in words if w.text)
        body = seg.get("text")
        if body is None and words:
            body = " ".join(w.text for w in words)
        if not isinstance(body, str):
            raise TranscriptError(path, f"{where}: missing 'text'")
        if words and ("start" not in seg or "end" not in seg):
            start, end = words[0].start_s, max(w.end_s for w in words)
        else:
            start = _seconds(seg.get("start"), path, where, "start")
            end = _seconds(seg.get("end"), path, where, "end")
        segment = _timed(Segment(start, end, " ".join(body.split()), words), path)
        if segment.text:
            out.append(segment)
    return out


def _timed(unit, path):
    """``unit`` (a Word or Segment) unless it ends before it starts."""
    if unit.end_s < unit.start_s:
        raise TranscriptError(path, f"unit {unit.text[:30]!r} ends ({unit.end_s}) before it starts ({unit.start_s})")
    return unit
