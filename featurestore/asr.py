"""Speech recognition once per video, its segments (or words) mapped onto windows.

Two backends behind one class, :class:`Transcriber`:

* ``"faster-whisper"`` (default): CTranslate2 Whisper; the default model is the
  packaged Whisper base (:func:`featurestore.weights.whisper_base_dir`), any
  other name (``"small"``, ``"large-v3"``; needs internet) or local directory works.
* ``"openai-whisper"``: the reference PyTorch implementation, loading a ``.pt``
  checkpoint holding ``dims`` and ``model_state_dict`` (or an official name online).

Both return the same :class:`Segment` list (each with its timed :class:`Word` s); with
``vad_filter=True`` both skip non-speech with faster-whisper's Silero VAD (it ships
offline). faster-whisper's batched decoding (the default) runs on the encoder states of
each clip's 30 s track chunks, which the run's Whisper audio features read too
(:mod:`featurestore.whisper_states`): one encoder pass per clip for both.

A window's text (:func:`window_texts`) is either every *segment* (Whisper's sentence-like
unit) that overlaps it, as in the competition's transcripts (``../shared/data``: a window
inside an 8 s sentence carries the whole sentence), or only the *words* inside the
window's 1.0 s. Which one ``embed`` uses: ``featurestore.embed.matching_text_unit``.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from featurestore import weights
from featurestore.errors import InputError
from featurestore.media import Window
from featurestore.schema import SAMPLE_RATE

BACKENDS = ("faster-whisper", "openai-whisper")
#: Whisper's temperature fallback schedule (both backends' default).
WHISPER_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: gzip compression ratio above which a decoded text counts as a repetition loop (Whisper's
#: and faster-whisper's ``compression_ratio_threshold``).
COMPRESSION_RATIO_THRESHOLD = 2.4
#: Penalty on repeated tokens when such a looping chunk is decoded again (greedy, so the
#: text stays deterministic; temperature fallback garbles espeak-ng test speech).
LOOP_REPETITION_PENALTY = 1.05


#: What a window's text is made of: whole overlapping segments or overlapping words.
TEXT_UNITS = ("segment", "word")


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word (or a timed text unit): seconds from the clip start."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Segment:
    """One recognised segment (a sentence or cue): seconds from the clip start, and its words
    (empty where the source has no word timings)."""

    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()


def window_texts(segments: Sequence[Segment], windows: Sequence[Window],
                 unit: str = "segment") -> list[str | None]:
    """Each window's transcript from timed segments.

    Args:
        segments: in any order; see :class:`Segment`.
        windows: the windows to fill.
        unit: ``"segment"``: the whole text of every segment overlapping the window;
            ``"word"``: the words overlapping it (a segment without word timings counts
            as one word).

    Returns:
        One entry per window, None where nothing overlaps (:func:`assign_words_to_windows`).
    """
    if unit not in TEXT_UNITS:
        raise ValueError(f"unit must be one of {TEXT_UNITS}, got {unit!r}")
    if unit == "segment":
        units = [Word(s.start_s, s.end_s, s.text) for s in segments]
    else:
        units = [w for s in segments for w in (s.words or (Word(s.start_s, s.end_s, s.text),))]
    return assign_words_to_windows(units, windows)


def assign_words_to_windows(words: Sequence[Word], windows: Sequence[Window]) -> list[str | None]:
    """Each window's transcript: the words whose interval overlaps it, joined by spaces.

    A word overlaps ``[start_s, end_s)`` when ``word.start_s < end_s`` and
    ``word.end_s > start_s``; a zero-length word counts where its instant falls
    (``start_s <= t < end_s``, or ``t == end_s`` for the last window). Words keep their
    time order. Returns one entry per window, None where no word overlaps.
    """
    if not windows:
        return []
    if not words:
        return [None] * len(windows)
    ordered = sorted(words, key=lambda w: (w.start_s, w.end_s))
    w_start = np.array([w.start_s for w in ordered], dtype=np.float64)
    w_end = np.array([w.end_s for w in ordered], dtype=np.float64)
    point = w_end <= w_start
    last_end = max(win.end_s for win in windows)
    out: list[str | None] = []
    for win in windows:
        spans = (w_start < win.end_s) & (w_end > win.start_s)
        closes = win.end_s == last_end  # the final window also owns an instant at its end
        at = (w_start >= win.start_s) & ((w_start < win.end_s) | (closes & (w_start == win.end_s)))
        hit = np.where(point, at, spans)
        texts = [ordered[i].text.strip() for i in np.flatnonzero(hit)]
        texts = [t for t in texts if t]
        out.append(" ".join(texts) if texts else None)
    return out


def check_audio(audio: np.ndarray) -> np.ndarray:
    """``audio`` as float32 if it is 1-D, floating and finite; else a ValueError saying why."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples at {SAMPLE_RATE} Hz, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
    audio = audio.astype(np.float32, copy=False)
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    return audio


def _cuda_devices_ct2() -> int:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count()
    except Exception:  # no CUDA runtime at all
        return 0


def _cuda_torch() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


class Transcriber:
    """Whisper transcription with word timestamps, loaded once and reused per video.

    Args:
        backend: ``"faster-whisper"`` or ``"openai-whisper"``.
        model: faster-whisper: None (packaged Whisper base), a model name or a
            CTranslate2 directory; openai-whisper: a ``.pt`` checkpoint path (required
            offline) or an official model name.
        language: spoken language code; ``"id"`` (Indonesian) by default. None
            auto-detects (slower, and unreliable on short clips).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
        compute_type: faster-whisper: None -> ``int8`` on CPU, ``float16`` on CUDA;
            openai-whisper: ``"float16"`` or ``"float32"`` (None -> fp16 on CUDA only).
        vad_filter: drop non-speech with Silero VAD before decoding.
        beam_size: beam search width; None -> 5 on CUDA, 1 (greedy) on CPU. On 2 CPU
            cores greedy decoding takes Whisper base from ~10 to ~3.4 s per minute of
            speech (bench/embed_speed.py) with the same words on espeak-ng test speech.
        temperature: decoding temperature, or the fallback sequence tried when a
            segment looks degenerate (Whisper's default ``(0.0, 0.2, ..., 1.0)``).
        cpu_threads: CPU threads (None -> ``os.cpu_count()``).
        word_timestamps: time every word (needed for ``unit="word"`` windows); without
            them segments carry no words and ASR is ~25 % faster.
        condition_on_previous_text: feed each 30 s chunk the previous chunk's text. Off by
            default: on 5 min of dense speech (bench/spoken_transcripts.py audio) it doubled
            ASR time through repetition loops and temperature fallbacks, for the same words.
        batch_size: faster-whisper: the 30 s track chunks with speech of a clip, or of the
            clips given to :meth:`transcribe_many` together, are decoded this many at a time
            (faster-whisper's ``BatchedInferencePipeline`` steps on our encoder states); None
            -> 8 on CPU, 16 on CUDA; 1 -> faster-whisper's sequential ``transcribe`` (its own
            encoder pass; the only way with previous-text conditioning). The text does not
            depend on the batch (checked: a chunk decodes alike alone and among 8).
        context: batched decoding's Whisper context for a chunk shorter than 30 s
            (``featurestore.whisper_states``): ``"fit"`` (default) pads a 4 s clip to 10 s,
            not 30 s; ``"full"`` pads every chunk to 30 s. Each clip's 30 s track chunks are
            encoded once, for this and the run's Whisper audio features alike.
    """

    def __init__(
        self,
        backend: str = "faster-whisper",
        model: str | os.PathLike | None = None,
        language: str | None = "id",
        device: str = "auto",
        compute_type: str | None = None,
        vad_filter: bool = True,
        beam_size: int | None = None,
        temperature: float | Sequence[float] = WHISPER_TEMPERATURES,
        cpu_threads: int | None = None,
        word_timestamps: bool = True,
        condition_on_previous_text: bool = False,
        batch_size: int | None = None,
        context: str = "fit",
    ) -> None:
        from featurestore.whisper_states import CONTEXTS

        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
        self.context = context
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        if backend == "openai-whisper" and model is None:
            raise InputError(
                "backend='openai-whisper' needs model=<path to a .pt checkpoint with 'dims' and "
                "'model_state_dict'> (or an official model name when online); no openai-whisper "
                "weights ship offline: use backend='faster-whisper' for the packaged Whisper base"
            )
        self.backend = backend
        self.language = language
        self.vad_filter = vad_filter
        self.word_timestamps = word_timestamps
        self.condition_on_previous_text = condition_on_previous_text
        self.temperature = (
            float(temperature) if np.isscalar(temperature) else tuple(float(t) for t in temperature)
        )
        self.cpu_threads = cpu_threads or os.cpu_count() or 1
        self.device = self._resolve_device(device)
        self.beam_size = beam_size if beam_size is not None else (5 if self.device == "cuda" else 1)
        self.compute_type = compute_type or self._default_compute_type()
        if batch_size is not None and int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size!r}")
        default_batch = 16 if self.device == "cuda" else 8
        self.batch_size = int(batch_size) if batch_size is not None else default_batch
        if backend != "faster-whisper" or condition_on_previous_text:
            self.batch_size = 1
        self._model_arg = model
        self._model_path: Path | None = None
        self._sha256: str | None = None
        self._model: Any = None
        self._pass: Any = None

    # -------------------------------------------------------------- setup
    def _resolve_device(self, device: str) -> str:
        if device != "auto":
            return device
        has_cuda = _cuda_devices_ct2() > 0 if self.backend == "faster-whisper" else _cuda_torch()
        return "cuda" if has_cuda else "cpu"

    def _default_compute_type(self) -> str:
        if self.backend == "faster-whisper":
            return "float16" if self.device == "cuda" else "int8"
        return "float16" if self.device == "cuda" else "float32"

    def _resolve_model(self) -> str:
        """Local path (str) when there is one, else the name as given."""
        if self._model_arg is None:
            self._model_path = weights.whisper_base_dir()
            self._sha256 = weights.WHISPER_BASE_SHA256
            return str(self._model_path)
        candidate = Path(self._model_arg).expanduser()
        if candidate.exists():
            self._model_path = candidate.resolve()
            return str(self._model_path)
        return str(self._model_arg)

    def load(self) -> "Transcriber":
        """Load the model (idempotent; ``transcribe`` calls it on first use)."""
        if self._model is not None:
            return self
        ref = self._resolve_model()
        try:
            if self.backend == "faster-whisper":
                from featurestore.whisper_states import shared_pass

                # Shared with the run's Whisper audio encoder: one load, one encoder pass.
                self._pass = shared_pass(ref, self.device, self.compute_type, self.cpu_threads)
                self._model = self._pass.model
            else:
                import torch
                import whisper

                if self.device == "cpu":
                    torch.set_num_threads(self.cpu_threads)
                self._model = whisper.load_model(ref, device=self.device)
        except Exception as exc:
            where = "local path" if self._model_path else "model name (needs internet to download)"
            raise RuntimeError(
                f"could not load {self.backend} model {ref!r} ({where}) on {self.device}: "
                f"{type(exc).__name__}: {exc}. Offline, use backend='faster-whisper' with "
                f"model=None (packaged Whisper base) or a local model path."
            ) from exc
        return self

    # -------------------------------------------------------------- lineage
    @property
    def weights_sha256(self) -> str | None:
        """SHA-256 of the local weights file (model.bin or the .pt), None for hub names."""
        if self._sha256 is None:
            if self._model_path is None:
                self._resolve_model()
            path = self._model_path
            if path is not None:
                target = path / "model.bin" if path.is_dir() else path
                if target.is_file():
                    self._sha256 = weights.sha256_file(target)
        return self._sha256

    @property
    def name(self) -> str:
        """Short identifier, e.g. ``faster-whisper:whisper-base-ct2``."""
        if self._model_arg is None:
            model = "whisper-base-ct2"
        else:
            model = Path(str(self._model_arg)).name or str(self._model_arg)
        return f"{self.backend}:{model}"

    @property
    def config(self) -> dict[str, Any]:
        """Everything that changes the output, for lineage (JSON-serialisable)."""
        return {
            "backend": self.backend,
            "model": str(self._model_arg) if self._model_arg is not None else "packaged:whisper-base",
            "language": self.language,
            "device": self.device,
            "compute_type": self.compute_type,
            "vad_filter": self.vad_filter,
            "beam_size": self.beam_size,
            "temperature": self.temperature,
            "word_timestamps": self.word_timestamps,
            "condition_on_previous_text": self.condition_on_previous_text,
            "batch_size": self.batch_size,
            "context": self.context,
            "weights_sha256": self.weights_sha256,
        }

    # -------------------------------------------------------------- inference
    def transcribe_segments(self, audio_16k: np.ndarray) -> list[Segment]:
        """Segments of a whole clip with their words, in time order.

        Args:
            audio_16k: (n_samples,) float32 mono at 16 kHz (``DecodedMedia.audio``).

        Returns:
            Segments (and words) with times in seconds from the clip start, clipped to
            ``[0, duration]`` (Whisper can place the last word past the end of the audio).
        """
        return self.transcribe_many([audio_16k])[0]

    def transcribe_many(self, audios: Sequence[np.ndarray]) -> list[list[Segment]]:
        """:meth:`transcribe_segments` of several clips; with batched decoding their speech
        chunks share batches, so short clips (one chunk each) fill a batch together.

        On eight 29 s clips on 2 CPU cores, decoding them together took 1.5 s per minute
        of audio against 2.5 one clip at a time (batches of their own single chunk).
        """
        checked = [check_audio(a) for a in audios]
        out: list[list[Segment]] = [[] for _ in checked]
        todo = [i for i, a in enumerate(checked) if a.size >= SAMPLE_RATE // 100]  # under 10 ms: nothing
        if not todo:
            return out
        self.load()
        if self.backend == "faster-whisper" and self.batch_size > 1:
            raws = self._transcribe_batched([checked[i] for i in todo])
        elif self.backend == "faster-whisper":
            raws = [self._transcribe_faster(checked[i]) for i in todo]
        else:
            raws = [self._transcribe_openai(checked[i]) for i in todo]
        for i, raw in zip(todo, raws):
            out[i] = _tidy(raw, checked[i].size / SAMPLE_RATE)
        return out

    def transcribe(self, audio_16k: np.ndarray) -> list[Word]:
        """Words of a whole clip, in time order (:meth:`transcribe_segments`, flattened)."""
        words = [w for seg in self.transcribe_segments(audio_16k)
                 for w in (seg.words or (Word(seg.start_s, seg.end_s, seg.text),))]
        return sorted(words, key=lambda w: (w.start_s, w.end_s))

    def _options(self) -> dict[str, Any]:
        return dict(language=self.language, beam_size=self.beam_size, temperature=self.temperature,
                    word_timestamps=self.word_timestamps,
                    condition_on_previous_text=self.condition_on_previous_text)

    def _first_temperature(self) -> float:
        return self.temperature[0] if isinstance(self.temperature, tuple) else self.temperature

    def _transcribe_faster(self, audio: np.ndarray, vad_filter: bool | None = None,
                           **extra: Any) -> list[Segment]:
        import ctranslate2

        vad = self.vad_filter if vad_filter is None else vad_filter
        # The temperature fallback samples; a fixed seed per clip makes its text independent
        # of what the process (the model is shared: featurestore.whisper_states) decoded before.
        ctranslate2.set_random_seed(0)
        segments, _info = self._model.transcribe(audio, vad_filter=vad, **{**self._options(), **extra})
        return [_segment(seg) for seg in list(segments)]

    def _transcribe_batched(self, audios: list[np.ndarray]) -> list[list[Segment]]:
        """Every clip decoded from the encoder states of its 30 s track chunks, in shared
        batches.

        The states are those of :mod:`featurestore.whisper_states`: each clip's track cut
        into 30 s chunks from 0 s, encoded once for both ASR and the Whisper audio feature
        sets (whichever runs first leaves them for the other). faster-whisper's
        ``BatchedInferencePipeline`` would encode VAD-condensed speech chunks of its own,
        a second encoder pass over the same audio; here its decoding steps
        (``forward`` without the encoder, :func:`_states_pipeline_class`) run on our states.
        Silero VAD picks the chunks worth decoding (a chunk with no speech is skipped) and
        drops a segment that overlaps no speech (Whisper's text over silence or music).
        A chunk's text depends on that chunk's audio alone, word timings on its clip's
        chunks alone: never on the batch, so any batch or chunk size gives the same text.
        """
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        from featurestore.whisper_states import CHUNK_S, track_chunks

        states = self._pass.track_states(audios, batch_size=self.batch_size, context=self.context)
        jobs: list[tuple[int, int, float, float]] = []   # (clip, chunk, offset s, duration s)
        speech: list[np.ndarray] = []
        for k, a in enumerate(audios):
            spans = _speech_spans(a) if self.vad_filter else np.array([[0.0, a.size / SAMPLE_RATE]])
            speech.append(spans)
            for j, c in enumerate(track_chunks(a)):
                t0, t1 = j * CHUNK_S, j * CHUNK_S + c.size / SAMPLE_RATE
                if np.any((spans[:, 0] < t1) & (spans[:, 1] > t0)):
                    jobs.append((k, j, t0, t1 - t0))
        out: list[list[Segment]] = [[] for _ in audios]
        if not jobs:
            return out
        pipe = _states_pipeline_class()(self._model)
        languages = self._languages(states, jobs)
        by_clip: dict[int, list[tuple[int, list[dict]]]] = {}   # clip -> [(job, its segments)]
        for lang in dict.fromkeys(languages):
            tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual,
                                  task="transcribe", language=lang)
            options = self._batch_options(tokenizer)
            mine = [i for i, l in enumerate(languages) if l == lang]
            # One batch holds states of one length (a short chunk's context is shorter).
            mine.sort(key=lambda i: (len(states[jobs[i][0]][jobs[i][1]]), i))
            batches = [mine[b:b + self.batch_size] for b in range(0, len(mine), self.batch_size)]
            batches = [[i for i in bt if len(states[jobs[i][0]][jobs[i][1]]) == n] for bt in batches
                       for n in dict.fromkeys(len(states[jobs[i][0]][jobs[i][1]]) for i in bt)]
            for batch in batches:
                X = np.stack([states[jobs[i][0]][jobs[i][1]] for i in batch])
                meta = [{"offset": jobs[i][2], "duration": jobs[i][3]} for i in batch]
                for n, (i, segs) in enumerate(zip(batch, pipe.forward(X, tokenizer, meta, options))):
                    if any(sg["compression_ratio"] > COMPRESSION_RATIO_THRESHOLD for sg in segs):
                        # The batched decoding runs at the first temperature only; a chunk
                        # caught in a repetition loop ("saya-saya-saya-...") is decoded again
                        # on its own states with a mild repetition penalty (still greedy).
                        segs = pipe.forward(X[n:n + 1], tokenizer, meta[n:n + 1], dataclasses.replace(
                            options, repetition_penalty=LOOP_REPETITION_PENALTY))[0]
                    by_clip.setdefault(jobs[i][0], []).append((i, segs))
            if self.word_timestamps:
                # Word timings chunk by chunk in time order within each clip (faster-whisper
                # carries the last word's time from one chunk to the next: across clips, or
                # batched, that would tie a clip's timings to its neighbours).
                mine_set = set(mine)
                for k in sorted({jobs[i][0] for i in mine}):
                    last = 0.0
                    for i, segs in sorted((i, segs) for i, segs in by_clip[k] if i in mine_set and segs):
                        sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(
                            states[k][jobs[i][1]][None]))
                        size = int(np.ceil(jobs[i][3]) * self._model.frames_per_second)
                        last = self._model.add_word_timestamps(
                            [segs], tokenizer, sv, [size], options.prepend_punctuations,
                            options.append_punctuations, last) or last
        for k, done in by_clip.items():
            spans = speech[k]
            for _, segs in sorted(done):
                for sg in segs:
                    span = _snap(sg["start"], sg["end"], spans)
                    if span is None:
                        continue  # over no speech: Whisper's text over silence or music
                    words = tuple(Word(*(_snap(w["start"], w["end"], spans) or (w["start"], w["end"])),
                                       w["word"]) for w in sg.get("words") or ())
                    out[k].append(Segment(*span, sg["text"], words))
        return out

    def _languages(self, states: list[np.ndarray], jobs: list[tuple[int, int, float, float]]) -> list[str]:
        """Each job's language: the fixed one, or (auto-detect) its clip's, detected on
        the clip's first chunk with speech."""
        if self.language is not None:
            return [self.language] * len(jobs)
        import ctranslate2

        first: dict[int, int] = {}
        for k, j, _, _ in jobs:
            first.setdefault(k, j)
        found = {}
        for k, j in first.items():
            sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(states[k][j][None]))
            found[k] = self._model.model.detect_language(sv)[0][0][0][2:-2]
        return [found[k] for k, _, _, _ in jobs]

    def _batch_options(self, tokenizer: Any) -> Any:
        """faster-whisper's ``TranscriptionOptions`` as its batched pipeline builds them."""
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        return TranscriptionOptions(
            beam_size=self.beam_size, best_of=5, patience=1, length_penalty=1, repetition_penalty=1,
            no_repeat_ngram_size=0, log_prob_threshold=-1.0, no_speech_threshold=0.6,
            compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
            temperatures=[self._first_temperature()], initial_prompt=None, prefix=None,
            suppress_blank=True, suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            prepend_punctuations="\"'“¿([{-", append_punctuations="\"'.。,，!！?？:：”)]}、",
            max_new_tokens=None, hotwords=None, word_timestamps=False,
            hallucination_silence_threshold=None, condition_on_previous_text=False,
            clip_timestamps="0", prompt_reset_on_temperature=0.5, multilingual=False,
            without_timestamps=False, max_initial_timestamp=0.0)

    def _transcribe_openai(self, audio: np.ndarray) -> list[Segment]:
        ts_map = None
        if self.vad_filter:
            from faster_whisper.vad import SpeechTimestampsMap, VadOptions, get_speech_timestamps

            speech = get_speech_timestamps(audio, VadOptions(), sampling_rate=SAMPLE_RATE)
            if not speech:
                return []
            ts_map = SpeechTimestampsMap(speech, SAMPLE_RATE)
            audio = np.concatenate([audio[c["start"]:c["end"]] for c in speech])
        result = self._model.transcribe(
            audio, language=self.language, word_timestamps=self.word_timestamps, verbose=None,
            fp16=self.compute_type == "float16", beam_size=self.beam_size,
            temperature=self.temperature, condition_on_previous_text=self.condition_on_previous_text,
        )

        def original(start: float, end: float) -> tuple[float, float]:
            if ts_map is None:
                return float(start), float(end)
            return ts_map.get_original_time(float(start)), ts_map.get_original_time(float(end), is_end=True)

        segments = []
        for seg in result.get("segments", []):
            words = tuple(Word(*original(w["start"], w["end"]), w["word"]) for w in seg.get("words") or ())
            segments.append(Segment(*original(seg["start"], seg["end"]), seg["text"], words))
        return segments


@functools.lru_cache(maxsize=None)
def _states_pipeline_class() -> type:
    """faster-whisper's ``BatchedInferencePipeline`` decoding on encoder states we computed
    (``featurestore.whisper_states``) instead of its own encoder pass: its ``forward``
    (timestamp splitting) with ``generate_segment_batched`` running CTranslate2's
    ``generate`` on the given states, as faster-whisper 1.2.1 does after its ``encode``.
    Word timings are added by the caller, clip by clip."""
    import ctranslate2
    from faster_whisper import BatchedInferencePipeline

    class StatesPipeline(BatchedInferencePipeline):
        def generate_segment_batched(self, features, tokenizer, options):
            # ``features`` are encoder states (batch, 1500, d_model): no encode() here.
            enc = ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32))
            prompt = self.model.get_prompt(tokenizer, previous_tokens=[],
                                           without_timestamps=options.without_timestamps,
                                           hotwords=options.hotwords)
            results = self.model.model.generate(
                enc, [list(prompt) for _ in range(len(features))], beam_size=options.beam_size,
                patience=options.patience, length_penalty=options.length_penalty,
                max_length=self.model.max_length, suppress_blank=options.suppress_blank,
                suppress_tokens=options.suppress_tokens, return_scores=True,
                return_no_speech_prob=True, sampling_temperature=options.temperatures[0],
                repetition_penalty=options.repetition_penalty,
                no_repeat_ngram_size=options.no_repeat_ngram_size)
            output = []
            for r in results:
                n = len(r.sequences_ids[0])
                output.append(dict(avg_logprob=r.scores[0] * (n ** options.length_penalty) / (n + 1),
                                   no_speech_prob=r.no_speech_prob, tokens=r.sequences_ids[0]))
            return enc, output

    return StatesPipeline


def _snap(start: float, end: float, spans: np.ndarray) -> tuple[float, float] | None:
    """``[start, end)`` (s) narrowed to the VAD speech it overlaps, None if it overlaps none.

    Whisper's own timestamps over a chunk that holds silence can start a segment or word
    up to ~0.7 s before the voice does; the VAD's speech pieces (padded by its
    ``speech_pad_ms``) bound them, as the condensed-audio pipeline's time map did.
    """
    hit = np.flatnonzero((spans[:, 0] < end) & (spans[:, 1] > start))
    if hit.size == 0:
        return None
    a, b = max(start, spans[hit[0], 0]), min(end, spans[hit[-1], 1])
    return (round(float(a), 3), round(float(max(a, b)), 3))


def _speech_spans(audio: np.ndarray) -> np.ndarray:
    """Silero VAD speech pieces of a clip as (n, 2) ``[start_s, end_s]`` (faster-whisper's
    VAD settings for its batched pipeline)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    speech = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160))
    return np.array([[p["start"] / SAMPLE_RATE, p["end"] / SAMPLE_RATE] for p in speech],
                    dtype=np.float64).reshape(-1, 2)


def _segment(seg: Any) -> Segment:
    """Our :class:`Segment` from a faster-whisper segment."""
    return Segment(seg.start, seg.end, seg.text, tuple(Word(w.start, w.end, w.word) for w in seg.words or ()))


def _tidy(raw: Sequence[Segment], duration: float) -> list[Segment]:
    """Segments clipped to ``[0, duration]``, words sorted, in time order; a segment with
    timed words spans exactly its words (so both text units agree)."""
    out = []
    for seg in raw:
        words = tuple(sorted(filter(None, (_clip(w, duration) for w in seg.words)),
                             key=lambda w: (w.start_s, w.end_s)))
        if words:
            span = Word(words[0].start_s, max(w.end_s for w in words), " ".join(w.text for w in words))
        else:
            span = _clip(Word(seg.start_s, seg.end_s, seg.text), duration)
        if span is not None:
            out.append(Segment(span.start_s, span.end_s, span.text, words))
    return sorted(out, key=lambda s: (s.start_s, s.end_s))


def _clip(w: Word, duration: float) -> Word | None:
    """``w`` stripped, its times clipped to ``[0, duration]`` and rounded to ms; None if empty."""
    text = w.text.strip()
    if not text:
        return None
    start = min(max(float(w.start_s), 0.0), duration)
    end = min(max(float(w.end_s), start), duration)
    return Word(round(start, 3), round(end, 3), text)
