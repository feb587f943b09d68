"""Prediction with a fitted fusion model.

* :func:`predict_store` scores every stored window of a split with the feature sets the
  model was trained on and writes the probabilities to ``window_predictions``; the store's
  ``video_predictions`` view then aggregates them per video by every method.
* :class:`Predictor` classifies media files outside any store: it embeds them
  with the encoders the model was trained on (rebuilt from their lineage and
  checked by ``encoder_id``) into a temporary store, scores the windows and
  aggregates them with the model's method by the same ``aggregate_windows`` (``sql/aggregate.sql``).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from featurestore.schema import AGGREGATIONS, CLASSES, SPLITS
from featurestore.store import FeatureStore, StoreError

from . import registry
from ._sql import fetch_arrow, read_sql
from .aggregate import aggregate_windows, window_predictions_table
from .data import vectors_to_matrix
from .modelio import FusionModel, load_model
from .registry import ModelLookupError, model_encoder_ids, stored_encoder_ids


class PredictError(StoreError):
    """The model cannot score these vectors (wrong encoders or dims, no such model...)."""


# ---------------------------------------------------------------- models of a store
def _store_model(store: FeatureStore, model_id: str | None, device: str) -> tuple[FusionModel, dict]:
    """:func:`fusion.registry.load_store_model`, its lookup errors as :class:`PredictError`."""
    try:
        return registry.load_store_model(store, model_id, device=device)
    except (ModelLookupError, FileNotFoundError) as exc:
        raise PredictError(str(exc)) from exc


def _store_model_row(store: FeatureStore, model_id: str | None) -> dict:
    """:func:`fusion.registry.lookup_model`, a missing model as :class:`PredictError`."""
    try:
        return registry.lookup_model(store, model_id)
    except ModelLookupError as exc:
        raise PredictError(str(exc)) from None


def check_store_matches(store: FeatureStore, con, model: FusionModel, encoder_ids: dict[str, str]) -> None:
    """Raise :class:`PredictError` unless ``con``'s ``fusion_vectors`` can serve the model: each
    of its modalities from the feature set it was trained on, at the dim it expects."""
    stored = {r["encoder_id"]: r for r in con.execute(read_sql("queries", "encoder_inventory")).to_arrow_table().to_pylist()}
    for m in model.modalities:
        want = encoder_ids.get(m)
        if not want:
            raise PredictError(f"model {model.model_id} does not record which {m} encoder it was trained on; "
                               "retrain it with tune-fusion")
        have = stored.get(want)
        if have is None or not have["n_videos"]:
            raise PredictError(f"model {model.model_id} reads {m} vectors of encoder {want} ({model.dims[m]}-D) "
                               f"but the store {store.root} has none; embed with that encoder first "
                               f"(`cli.py encoders` lists names; the model's lineage has its name)")
        if int(have["dim"]) != model.dims[m]:
            raise PredictError(f"model {model.model_id} expects {model.dims[m]}-D {m} vectors; encoder "
                               f"{want} ({have['name']}) gives {have['dim']}-D")


# ---------------------------------------------------------------- scoring
def _ids_table(ids: Sequence[str]) -> pa.Table:
    return pa.table({"video_id": pa.array(list(ids), pa.string())})


def _stage_vectors(con, model: FusionModel, ids: Sequence[str]) -> None:
    """Materialise the model's columns of ``fusion_vectors`` for ``ids`` in one pass."""
    con.register("predict_videos", _ids_table(ids))
    try:
        con.execute(read_sql("queries", "stage_vectors"), [list(model.modalities)])
    finally:
        con.unregister("predict_videos")


def _batch_vectors(con, model: FusionModel, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X float32 (n_windows, sum(dims)) NaN where missing, video_id, window_idx) of staged ``ids``."""
    con.register("predict_batch", _ids_table(ids))
    try:
        table = fetch_arrow(con, read_sql("queries", "batch_vectors"))
    finally:
        con.unregister("predict_batch")
    X = np.concatenate([vectors_to_matrix(table[m], model.dims[m], m) for m in model.modalities], axis=1)
    video_id = np.asarray(table["video_id"].to_numpy(zero_copy_only=False)).astype(str)
    window_idx = table["window_idx"].to_numpy(zero_copy_only=False).astype(np.int32)
    return X, video_id, window_idx


def _split_videos(con, split: str) -> list[str]:
    return [r[0] for r in con.execute(read_sql("queries", "split_videos"), [split]).fetchall()]


def _group_normaliser(store: FeatureStore, con, model: FusionModel, encoder_ids: dict[str, str]):
    """(statistics, video_id -> group) for a model trained on per-group normalised vectors:
    the statistics over every stored window of each group, as at training."""
    from .groupnorm import store_group_stats, store_video_pools
    stats = store_group_stats(store, encoder_ids, model.dims)
    return stats, store_video_pools(con)


def _named_group_normaliser(store: FeatureStore, model: FusionModel, group: str) -> tuple:
    """``(GroupStats, group)`` of one stored group, for :class:`Predictor`.

    Raises:
        PredictError: the store has no such group.
    """
    from .groupnorm import POOLED, group_key, store_group_stats
    key = group_key(group)
    stats = store_group_stats(store, model_encoder_ids(model), model.dims)
    if key not in stats.mean:
        known = ", ".join(sorted(g or "(no group)" for g in stats.mean if g != POOLED)[:20])
        raise PredictError(f"group {group!r} has no stored windows in {store.root}; known groups: {known}. "
                           "Embed some of that speaker's videos with their group first, or use --same-speaker")
    return stats, key


def score_videos(store: FeatureStore, con, model: FusionModel, ids: Sequence[str], batch_videos: int = 256,
                 progress: bool = True, write: bool = True,
                 normaliser=None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Score the windows of ``ids`` in batches of whole videos (pooled models need whole videos).

    With ``write`` each batch is appended as a ``window_predictions`` part and nothing
    is returned; otherwise returns ``[(probs (n, 8), video_id, window_idx), ...]``.
    ``normaliser``: :func:`_group_normaliser`'s pair, for a model with ``group_norm``.
    """
    from .groupnorm import NO_GROUP
    if model.group_norm and normaliser is None:
        normaliser = _group_normaliser(store, con, model, model_encoder_ids(model))
    out = []
    _stage_vectors(con, model, ids)
    bar = tqdm(total=len(ids), unit="video", desc=f"predict {model.model_id}", disable=not progress,
               dynamic_ncols=True)
    for start in range(0, len(ids), batch_videos):
        batch = ids[start:start + batch_videos]
        X, video_id, window_idx = _batch_vectors(con, model, batch)
        if normaliser is not None:
            stats, groups = normaliser
            X = stats.transform(X, np.array([groups.get(v, NO_GROUP) for v in video_id], dtype=object))
        probs = np.asarray(model.predict_proba(X, video_id), dtype=np.float32)
        if probs.shape != (len(X), len(CLASSES)):
            raise PredictError(f"model {model.model_id} returned probabilities of shape {probs.shape} "
                               f"for {len(X)} windows; expected ({len(X)}, {len(CLASSES)})")
        if write:
            store.put("window_predictions",
                             window_predictions_table(probs, video_id, window_idx, model.model_id))
        else:
            out.append((probs, video_id, window_idx))
        bar.update(len(batch))
    bar.close()
    return out


def predict_store(store: FeatureStore, split: str = "test", model_id: str | None = None,
                  batch_videos: int = 256, device: str = "auto", progress: bool = True) -> str:
    """Score every stored window of ``split``'s embedded videos; returns the model_id used.

    The model is ``model_id`` or the newest trained on the current labelled set. Window
    probabilities (float32, ``schema.CLASSES`` order) are appended to the store as
    ``window_predictions``, one commit per ``batch_videos`` videos (a video's earlier rows
    from this model are replaced), and ``video_predictions`` shows them. Failed videos have no windows and
    get no rows (the submission export gives them the training prior).
    """
    if split not in SPLITS:
        raise PredictError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    model, row = _store_model(store, model_id, device)
    # The model's own feature sets, whatever the store's named choice is now.
    encoder_ids = model_encoder_ids(model, row)
    con = store.connect(encoders=encoder_ids)
    try:
        check_store_matches(store, con, model, encoder_ids)
        ids = _split_videos(con, split)
        normaliser = _group_normaliser(store, con, model, encoder_ids) if model.group_norm else None
        score_videos(store, con, model, ids, batch_videos=batch_videos, progress=progress,
                     normaliser=normaliser)
    finally:
        con.close()
    return model.model_id


def expected_score_note(store: FeatureStore, model_id: str, split: str = "test") -> str:
    """What ``model_id`` should score on ``split``'s videos (:func:`fusion.estimate.expected_score`
    for a set of that many videos)."""
    from .estimate import expected_score

    row = registry.lookup_model(store, model_id)
    con = store.connect()
    try:
        n_videos = con.execute(read_sql("export", "split_counts"), [split]).fetchone()[0]
    finally:
        con.close()
    lineage = registry.model_lineage(row)
    lineage.setdefault("cv_macro_f1", row.get("cv_macro_f1"))
    return expected_score(registry.model_dir(store, row), lineage, int(n_videos or 0))


def text_origin_note(store: FeatureStore, model_id: str, split: str = "test") -> str | None:
    """A warning when ``split``'s window texts come from elsewhere than the model's training
    texts (e.g. trained on transcript files, predicting through Whisper base): the model's
    cross-validated score never saw that text's errors. None when they match or unknown."""
    from featurestore.embed import text_origins

    lineage = registry.model_lineage(registry.lookup_model(store, model_id))
    trained = lineage.get("text_origins")
    if not trained or "text" not in (lineage.get("dims") or {}):
        return None
    now = text_origins(store, split)
    new = {o: n for o, n in now.items() if o not in trained}
    if not new:
        return None

    def fmt(counts: dict[str, int]) -> str:
        return ", ".join(f"{o} ({n} videos)" for o, n in counts.items())
    return (f"note: model {model_id} learned from text of {fmt(trained)}; {sum(new.values())} "
            f"{split} video(s) have text from {fmt(new)}. Its cross-validated score never saw "
            "that text's errors: judge it on held-out videos whose text comes the same way "
            "(README, *What the estimate covers*; docs/benchmarks.md, section 5).")


#: The packaged Whisper base's name in a text origin (``asr:faster-whisper:whisper-base-ct2/id``).
PACKAGED_ASR_MODEL = "whisper-base-ct2"


@dataclass(frozen=True)
class TextOrigin:
    """How new files' speech becomes window text: the ASR backend, model (None: the packaged
    Whisper base), language, and text unit (None: the model's own)."""

    backend: str = "faster-whisper"
    asr_model: str | None = None
    language: str = "id"
    text_unit: str | None = None

    @property
    def source(self) -> str:
        """As ``featurestore.embed.asr_source`` names it: ``asr:<backend>:<model>/<language>``."""
        model = PACKAGED_ASR_MODEL if self.asr_model is None else (Path(self.asr_model).name or self.asr_model)
        return f"asr:{self.backend}:{model}/{self.language}"


def _parse_asr_origin(origin: str) -> TextOrigin | None:
    """``asr:<backend>:<model>/<language>`` as a :class:`TextOrigin`; None for anything else."""
    if not origin.startswith("asr:"):
        return None
    backend, sep, rest = origin[4:].partition(":")
    model, sep2, language = rest.rpartition("/")
    if not (sep and sep2 and backend and model and language):
        return None
    return TextOrigin(backend=backend, asr_model=None if model == PACKAGED_ASR_MODEL else model,
                      language=language)


def model_text_origin(lineage: dict, asr_model: str | None = None, language: str | None = None,
                      text_unit: str | None = None) -> TextOrigin:
    """The text origin to serve a model with: the ASR model and language most of its training
    text came from (its lineage's ``text_origins``) and its ``text_unit``, each overridden by
    the argument given. A model trained on transcript files only, or that records none,
    gets the packaged Whisper base in Indonesian."""
    counts = lineage.get("text_origins") or {}
    parsed = [(n, o) for o, n in counts.items() if _parse_asr_origin(o) is not None]
    base = _parse_asr_origin(max(parsed)[1]) if parsed else TextOrigin()
    return TextOrigin(backend=base.backend,
                      asr_model=asr_model if asr_model is not None else base.asr_model,
                      language=language or base.language,
                      text_unit=text_unit or lineage.get("text_unit"))


def served_text_note(lineage: dict, model_id: str | None, origin: TextOrigin) -> str | None:
    """The warning ``predict`` gives (:func:`text_origin_note`), for files whose text comes
    from ``origin``: None unless the model reads text and learned from other text origins."""
    trained = lineage.get("text_origins")
    if not trained or "text" not in (lineage.get("dims") or {}) or origin.source in trained:
        return None
    learned = ", ".join(f"{o} ({n} videos)" for o, n in trained.items())
    return (f"note: model {model_id} learned from text of {learned}; these files' text comes from "
            f"{origin.source}. Its cross-validated score never saw that text's errors: judge it on "
            "held-out videos whose text comes the same way (README, *What the estimate covers*; "
            "docs/benchmarks.md, section 5).")


# ---------------------------------------------------------------- files outside a store
@dataclass
class VideoPrediction:
    """One file's prediction.

    ``probabilities`` is the aggregation method's per-class vector (for ``mean`` the mean
    window probabilities; for ``majority``/``weighted`` vote shares; for ``max`` the most
    confident window's probabilities), so ``probabilities[emotion] == confidence``.
    ``windows``: one row per window: ``window_idx, start_s, end_s`` (seconds), the
    window's own ``emotion`` (argmax) and ``confidence`` (its probability), ``transcript``.
    """

    path: str
    emotion: str
    confidence: float
    probabilities: dict[str, float]
    windows: pd.DataFrame
    method: str
    model_id: str | None


class Predictor:
    """Classify media files with a fitted fusion model, without writing to any store.

    Parameters
    ----------
    model_path : a model directory (or its ``fusion_model.json``) written by tune-fusion.
    device : ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"`` for model and encoders.
    method : aggregation (default the model's own).
    encoder_lineage : ``{modality: {"encoder_id", "name"}}``; default the model's lineage.
    encoders : ready encoders ``{modality: Encoder}`` instead of rebuilding them by name
        (their ``encoder_id`` must still match the lineage).
    transcriber : an ``asr.Transcriber`` for the text modality (default: built from the
        model's text origin, :func:`model_text_origin`).
    language, asr_model : override the language and Whisper model of the model's text origin
        (the ASR model and language most of its training text came from; the packaged Whisper
        base in Indonesian where its lineage records none).
    text_unit : ``"segment"`` or ``"word"``: how ASR text becomes window text. Default: the
        unit recorded in the model's lineage by tune-fusion (the one its training windows
        match), else ``"segment"``.
    normaliser : for a model trained with per-group normalisation, ``(GroupStats, group)``:
        every file is normalised by that group's statistics.
    group, group_store : for such a model, the same from the windows of manifest group ``group``
        (a speaker) stored in ``group_store`` (what :meth:`from_store`'s ``group`` passes).
    same_speaker : for such a model, the files are one new speaker: the statistics are taken
        over the files' own windows, as the store takes them over a new test group's.
    speaker_store : for such a model, find each file's speaker by its voice among the speakers of
        this store (manifest groups and inferred voice groups, ``featurestore.speakers``): a file
        whose voice is within the store's clustering threshold of a stored speaker is normalised
        by that speaker's statistics; a new speaker, and a file without speech, by the store's
        pooled statistics (a clip normalised by its own windows loses its emotion: macro-F1
        0.05 against 0.50 for the pooled statistics on javanese-speech, bench/speakers.py).
        :attr:`speakers` then says, per file, which (what ``predict-video --store`` does when
        neither ``--group`` nor ``--same-speaker`` is given).
    """

    def __init__(self, model_path: str | Path, device: str = "auto", method: str | None = None,
                 encoder_lineage: dict[str, dict] | None = None, encoders: dict | None = None,
                 transcriber=None, language: str | None = None, asr_model: str | None = None,
                 text_unit: str | None = None, normaliser: tuple | None = None,
                 same_speaker: bool = False, group: str | None = None,
                 group_store: FeatureStore | None = None, speaker_store: FeatureStore | None = None):
        try:
            self.model = load_model(model_path, device=device)
        except FileNotFoundError as exc:
            raise PredictError(str(exc)) from exc
        self.same_speaker = bool(same_speaker)
        self.speaker_store = speaker_store
        #: After a prediction with ``speaker_store``: per file, its speaker assignment.
        self.speakers = pd.DataFrame()
        wants_stats = normaliser is not None or self.same_speaker or group is not None
        if speaker_store is not None and not wants_stats and self.model.group_norm:
            wants_stats = True
        if self.model.group_norm and not wants_stats:
            raise PredictError(f"model {self.model.model_id} was trained on vectors normalised per manifest "
                               "group (speaker), so each file needs its speaker's statistics: pass the "
                               "store and the speaker's group (`predict-video --store S --group G`, "
                               "Predictor.from_store(store, group=G)), or say the files are all one new "
                               "speaker (`--same-speaker`: statistics over the files' own windows)")
        if not self.model.group_norm and (normaliser is not None or self.same_speaker or group is not None):
            raise PredictError(f"model {self.model.model_id} was trained without per-group normalisation; "
                               "drop --group/--same-speaker")
        if group is not None:
            if group_store is None:
                raise PredictError(f"group={group!r} names a group of a store: pass group_store= "
                                   "(or use Predictor.from_store(store, group=...))")
            normaliser = _named_group_normaliser(group_store, self.model, group)
        self.normaliser = normaliser
        self.device = device
        self.method = method or self.model.method
        if self.method not in AGGREGATIONS:
            raise PredictError(f"unknown aggregation {self.method!r}; one of {', '.join(AGGREGATIONS)}")
        self.lineage = encoder_lineage or _lineage_of(self.model)
        self._encoders = dict(encoders) if encoders else None
        self._transcriber = transcriber
        # The model's own text origin unless overridden: its training text's ASR model and language.
        self.text_origin = model_text_origin(self.model.lineage, asr_model, language, text_unit)
        self.asr_backend = self.text_origin.backend
        self.language, self.asr_model = self.text_origin.language, self.text_origin.asr_model
        self.text_unit = self.text_origin.text_unit or "segment"

    @classmethod
    def from_store(cls, store: FeatureStore, model_id: str | None = None, group: str | None = None,
                   **kwargs) -> "Predictor":
        """The store's named (or current) model, with encoder names from its lineage.

        ``group``: a manifest group of the store (a speaker); files are normalised by the
        statistics of that group's stored windows (models trained with group normalisation).
        Without ``group`` or ``same_speaker``, such a model finds each file's speaker among the
        store's by voice (``speaker_store``) where the store has voice vectors.
        """
        row = _store_model_row(store, model_id)
        path = registry.model_dir(store, row)
        ids = {m: e for m, e in stored_encoder_ids(row).items() if e}
        con = store.connect()
        try:
            rows = con.execute(read_sql("queries", "encoder_lineage"), [list(ids.values())]).fetchall()
        finally:
            con.close()
        by_id = {r[0]: {"encoder_id": r[0], "name": r[1], "modality": r[2], "dim": r[3],
                        "config": json.loads(r[4]) if r[4] else {}} for r in rows}
        if group is None and not kwargs.get("same_speaker") and "speaker_store" not in kwargs:
            from featurestore.speakers import speaker_encoder_id
            con = store.connect()
            try:
                has_voices = speaker_encoder_id(con) is not None
            finally:
                con.close()
            kwargs["speaker_store"] = store if has_voices else None
        predictor = cls(path, group=group, group_store=store, **kwargs)
        if "text" in ids and not kwargs.get("text_unit") and "text_unit" not in predictor.model.lineage:
            from featurestore.embed import matching_text_unit
            predictor.text_unit = matching_text_unit(store)  # a model from before units were recorded
        # The store's encoders view knows each configuration's name; the model file may too.
        for m, e in ids.items():
            predictor.lineage[m] = {**predictor.lineage.get(m, {}), **by_id.get(e, {"encoder_id": e})}
        predictor.model.model_id = row["model_id"]
        return predictor

    # ------------------------------------------------------------ components
    def encoders(self) -> dict:
        """``{modality: Encoder}`` matching the model's lineage (built once, on first use)."""
        if self._encoders is None:
            from featurestore.encoders.registry import get_encoder
            built = {}
            for m in self.model.modalities:
                info = self.lineage.get(m) or {}
                name = info.get("name")
                if not name:
                    raise PredictError(
                        f"model {self.model.model_id}: its lineage does not name the {m} encoder "
                        f"(have {info or 'nothing'}); use Predictor.from_store(store) with the store it "
                        "was trained on, or pass encoders=")
                built[m] = get_encoder(name, device=self.device)
            self._encoders = built
        for m in self.model.modalities:
            enc = self._encoders.get(m)
            if enc is None:
                raise PredictError(f"no {m} encoder given; the model reads {list(self.model.modalities)}")
            want = (self.lineage.get(m) or {}).get("encoder_id")
            if want and enc.encoder_id != want:
                raise PredictError(
                    f"the {m} encoder {enc.name!r} built here has encoder_id {enc.encoder_id}, but model "
                    f"{self.model.model_id} was trained on {want}: its config or weights differ "
                    f"(lineage: {self.lineage.get(m)}); install the same weights/version")
            if enc.dim != self.model.dims[m]:
                raise PredictError(f"the {m} encoder gives {enc.dim}-D vectors; the model expects "
                                   f"{self.model.dims[m]}-D")
        return self._encoders

    def transcriber(self):
        if self._transcriber is None and "text" in self.model.modalities:
            from featurestore.asr import Transcriber
            self._transcriber = Transcriber(backend=self.asr_backend, model=self.asr_model,
                                            language=self.language, device=self.device,
                                            word_timestamps=self.text_unit == "word")
        return self._transcriber

    # ------------------------------------------------------------ predicting
    def _run(self, paths: list[str], progress: bool) -> "_Scored":
        """Embed ``paths`` into a temporary store (deleted after), score and aggregate them.

        Video ids are ``f{i}`` for ``paths[i]``.
        """
        from featurestore.embed import Embedder

        with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
            store = FeatureStore(Path(tmp) / "store")
            manifest = pd.DataFrame([{
                "video_id": f"f{i}", "split": "test", "label": None, "raw_label": None, "group": None,
                "path": str(Path(p).expanduser().resolve()) if p else None, "transcript_path": None,
                "manifest_row": i + 1, "error": None if p else "empty path"}
                for i, p in enumerate(paths)], dtype=object)
            encoders = dict(self.encoders())
            if self.speaker_store is not None:
                encoders["speaker"] = self._speaker_encoder()
            embedder = Embedder(store, encoders, self.transcriber(), progress=progress,
                                log=lambda msg: None, text_unit=self.text_unit)
            report = embedder.run(manifest)
            errors = {f.video_id: f.error for f in report.failures}
            con = store.connect(encoders={m: e.encoder_id for m, e in self.encoders().items()})
            try:
                ids = _split_videos(con, "test")
                # same_speaker: the temporary store's one group pool is exactly the files' windows.
                normaliser = None
                if self.speaker_store is not None:
                    normaliser = self._speaker_normaliser(con, ids, paths)
                elif self.normaliser is not None:
                    stats, group = self.normaliser
                    normaliser = (stats, {v: group for v in ids})
                results = score_videos(store, con, self.model, ids, progress=False, write=False,
                                       normaliser=normaliser)
                windows = fetch_arrow(con, read_sql("queries", "windows")).to_pandas()
            finally:
                con.close()
        if results:
            probs = np.concatenate([r[0] for r in results])
            vid = np.concatenate([r[1] for r in results])
            widx = np.concatenate([r[2] for r in results])
            videos = aggregate_windows(probs, vid, widx, self.method, self.model.model_id or "model")
        else:
            probs, vid = np.zeros((0, len(CLASSES)), np.float32), np.array([], dtype=str)
            widx = np.array([], dtype=np.int32)
            videos = pd.DataFrame(columns=["video_id", "emotion", "confidence", "probs"])
        scored = set(videos["video_id"])
        for i in range(len(paths)):
            errors.setdefault(f"f{i}", None if f"f{i}" in scored else "no windows could be scored")
        return _Scored(videos.set_index("video_id"), errors, probs, vid, widx, windows)

    def _speaker_encoder(self):
        """The speaker store's voice encoder, rebuilt by name (its encoder_id must match)."""
        from featurestore.encoders.registry import get_encoder
        from featurestore.speakers import speaker_encoder_id
        con = self.speaker_store.connect()
        try:
            eid = speaker_encoder_id(con)
            name = con.execute(read_sql("queries", "served_encoder"), [eid]).fetchone()[1]
        finally:
            con.close()
        enc = get_encoder(name, device=self.device)
        if enc.encoder_id != eid:
            raise PredictError(f"the speaker encoder {name!r} built here has encoder_id {enc.encoder_id}, "
                               f"but the store's voice vectors are {eid}: install the same version")
        return enc

    def _speaker_normaliser(self, con, ids: list[str], paths: list[str]):
        """(GroupStats, video_id -> pool) for the files: each file's voice matched to the stored
        speakers' (see the class docstring); sets :attr:`speakers`."""
        from featurestore.speakers import nearest_speaker, speaker_centroids, voice_vectors
        from .groupnorm import POOLED, store_group_stats, store_video_pools
        big = self.speaker_store
        bcon = big.connect()
        try:
            centroids, threshold, mean_voice = speaker_centroids(bcon)
            pools = store_video_pools(bcon)
            speaker_pool = {}
            sp = bcon.execute(read_sql("queries", "video_speakers")).fetchall()
            for vid, _group, _inferred, speaker, _source, _speech, _windows in sp:
                if speaker is not None and vid in pools:
                    speaker_pool.setdefault(speaker, pools[vid])
        finally:
            bcon.close()
        stats = store_group_stats(big, model_encoder_ids(self.model), self.model.dims)
        vv = voice_vectors(con)
        voice = dict(zip(vv.video_id, vv.voice))
        n_speech = dict(zip(vv.video_id, vv.n_windows))
        rows, mapping = [], {}
        for v in ids:
            path = paths[int(v[1:])]
            if v not in voice:
                pool, speaker, dist, status = POOLED, None, float("nan"), "no speech"
            else:
                speaker, dist = nearest_speaker(voice[v], centroids, threshold, mean_voice)
                if speaker is not None:
                    status = "stored speaker"
                    pool = speaker_pool.get(speaker, POOLED)
                else:
                    status, pool = "new speaker", POOLED
            if pool not in stats.mean:
                pool = POOLED
            mapping[v] = pool
            rows.append({"path": path, "speaker": speaker, "status": status, "distance": dist,
                         "threshold": threshold, "speech_windows": int(n_speech.get(v, 0)),
                         "normalised_by": ("pooled statistics of every stored window (fallback)"
                                           if pool == POOLED else f"stored speaker {pool}")})
        self.speakers = pd.DataFrame(rows)
        return stats, mapping

    def predict_video(self, path: str | Path, progress: bool = False) -> VideoPrediction:
        """Classify one file; raises :class:`PredictError` naming the file if it cannot be used."""
        s = self._run([str(path)], progress)
        if s.errors["f0"]:
            raise PredictError(f"{path}: {s.errors['f0']}")
        row = s.videos.loc["f0"]
        w = s.windows[s.windows["video_id"] == "f0"].set_index("window_idx").loc[s.window_idx]
        top = s.probs.argmax(axis=1)            # ties go to the earlier class, as in the SQL
        windows = pd.DataFrame({
            "window_idx": s.window_idx,
            "start_s": w["start_s"].to_numpy(),
            "end_s": w["end_s"].to_numpy(),
            "emotion": np.asarray(CLASSES, dtype=object)[top],
            "confidence": s.probs[np.arange(len(top)), top].astype(np.float64),
            "transcript": w["transcript"].to_numpy(),
        })
        vec = np.asarray(row["probs"], dtype=np.float64)
        return VideoPrediction(path=str(path), emotion=str(row["emotion"]), confidence=float(row["confidence"]),
                               probabilities=dict(zip(CLASSES, vec.tolist())), windows=windows,
                               method=self.method, model_id=self.model.model_id)

    def predict_batch(self, paths: Iterable[str | Path], progress: bool = True) -> pd.DataFrame:
        """Classify many files in one embed run: DataFrame ``path, emotion, confidence, error``.

        A file that cannot be read or embedded gets a row with ``error`` set (emotion
        None, confidence NaN); the others proceed. Rows follow ``paths``.
        """
        paths = [str(p) for p in paths]
        s = self._run(paths, progress)
        rows = []
        for i, p in enumerate(paths):
            err = s.errors[f"f{i}"]
            if err:
                rows.append({"path": p, "emotion": None, "confidence": np.nan, "error": err})
            else:
                r = s.videos.loc[f"f{i}"]
                rows.append({"path": p, "emotion": str(r["emotion"]), "confidence": float(r["confidence"]),
                             "error": None})
        return pd.DataFrame(rows, columns=["path", "emotion", "confidence", "error"])


@dataclass
class _Scored:
    videos: pd.DataFrame          # index video_id: emotion, confidence, probs (the method's)
    errors: dict[str, str | None]
    probs: np.ndarray             # (n_windows, 8) float32
    video_id: np.ndarray
    window_idx: np.ndarray
    windows: pd.DataFrame         # video_id, window_idx, start_s, end_s, transcript


def _lineage_of(model: FusionModel) -> dict[str, dict]:
    return {m: dict(v) for m, v in model.encoders.items()}
