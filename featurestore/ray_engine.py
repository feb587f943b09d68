"""``embed --engine ray``: the local engine's per-video work as a Ray Data pipeline.

Stages, in the local engine's order (``featurestore.embed`` does every piece of work; this
module only moves videos between them)::

    manifest rows ─ plan (driver: what the store lacks, as in the local engine)
      │ a dataset of VideoTasks, one block per video (up to MAX_INPUT_BLOCKS)
      ▼
    decode   stateless tasks, CPU        prepare_video: PyAV decode, windows, transcript files
    asr      actor pool (Whisper once    transcribe_videos: speech chunks of a batch of
             per actor; GPU when given)  videos decoded together
    audio    actor pool per encoder      encode_videos, one modality each; an actor loads
    video      (GPU share for encoders   its model once and checks its encoder id against
    text        that use one)            the driver's
    write    stateless tasks, CPU        feature_batch, then DataLayout.spill: the block's
                                         segments/embeddings become Parquet files
                                         under the store's data path (local or s3://)
      ▼
    driver   one transaction per block (embed.video_commit): the deletes, the small rows
             (video_features), ``ducklake_add_data_files`` of the block's files, and the
             videos/windows rows merged into the committed ones

The single committer is the driver, so the catalog needs no shared filesystem: workers only
read the videos and write data files. A block commits whole or not at all; a killed driver
takes its Ray job with it, and the next run plans again from the store and embeds only what
is missing (files a killed run wrote but never registered are orphans, which ``compact``
deletes once an hour old). A video that fails (bad file, encoder error) is recorded in
``videos`` exactly as the local engine records it, and the rest proceeds.

Ray is an optional extra (``pip install 'reels-emotion[ray]'``), imported only here.
"""
from __future__ import annotations

import logging
import math
import os
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .embed import (
    EmbedReport,
    EmbedSettings,
    ModelSpec,
    VideoTask,
    asr_source,
    build_embedder,
    encode_videos,
    feature_batch,
    prepare_video,
    record_outcome,
    transcribe_videos,
    video_commit,
)
from .errors import UserError
from .manifest import Manifest
from .schema import MODALITIES
from .store import DataLayout, FeatureStore, WriteBatch

#: The pip requirement the ``ray`` extra pins (pyproject.toml).
RAY_REQUIREMENT = "ray[data]==2.60.0"
#: Tables whose rows the write tasks put in data files themselves; the rest (videos,
#: video_features: one row per video) go through the driver's transaction as rows.
#: The tables a worker writes data files of: rows only a run of its kind writes (its encoders'
#: vectors, its ASR source's segments), so a retried commit may register the same files again.
#: A video's ``windows`` and ``videos`` rows are merged by the driver inside its transaction
#: (``embed.video_commit``), since other runs write them too.
SPILLED_TABLES = ("segments", "embeddings")
MODEL_STAGES = ("asr", *MODALITIES)
#: Heap reserved per decode task: the worker's libraries (~150 MB) and a decoded reel's frames
#: (a 77 s reel at 360 px holds about 200 MB of them).
DECODE_MEMORY = 512 * 1024 * 1024
#: At most this many input blocks: one video each up to there, so decode tasks run as many
#: videos at once as there are CPUs; beyond it a block holds several (Ray Data splits
#: a task's output into blocks as it goes, so memory stays per video).
MAX_INPUT_BLOCKS = 1024
STAGE_NAMES = ("decode", *MODEL_STAGES, "write")


class RayEngineError(UserError, RuntimeError):
    """``--engine ray`` cannot run as asked (Ray missing, no GPU for --device cuda, ...)."""


def import_ray():
    """``ray`` with Ray Data, or a :class:`RayEngineError` naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate extra of ray
    except ImportError as exc:
        raise RayEngineError(
            f"--engine ray needs Ray Data, which is an optional extra: pip install "
            f"'reels-emotion[ray]' (or pip install '{RAY_REQUIREMENT}'); missing: {exc.name or exc}") from exc
    return ray


# ---------------------------------------------------------------------- resources
@dataclass(frozen=True)
class StagePlan:
    """How one stage runs: stateless tasks (``actors`` None) or an actor pool of
    ``actors = (min, max)``, with the CPUs and GPUs each worker reserves and the videos it
    gets per call."""

    name: str
    num_cpus: float
    num_gpus: float = 0.0
    actors: tuple[int, int] | None = None
    batch_size: int = 1

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus > 0 else "cpu"

    @property
    def threads(self) -> int:
        """CPU threads for the stage's model: its reserved CPUs, at least one."""
        return max(1, int(math.ceil(self.num_cpus - 1e-9)))

    def describe(self) -> str:
        who = "tasks" if self.actors is None else (
            f"{self.actors[0]} actor" if self.actors[0] == self.actors[1]
            else f"{self.actors[0]}-{self.actors[1]} actors")
        gpu = f", {self.num_gpus:g} GPU" if self.num_gpus else ""
        return f"{self.name}: {who} ({self.num_cpus:g} CPU{gpu} each, {self.batch_size} video(s) per call)"


def plan_stages(cluster_cpus: float, cluster_gpus: float, model_stages: Sequence[tuple[str, bool]],
                device: str = "auto", chunk_size: int = 8, actors: dict[str, int] | None = None,
                cpus: dict[str, float] | None = None, gpus: dict[str, float] | None = None,
                batch: dict[str, int] | None = None) -> list[StagePlan]:
    """Each stage's resources on a cluster of ``cluster_cpus`` CPUs and ``cluster_gpus`` GPUs.

    ``model_stages``: ``(name, uses_gpu)`` of the ASR and encoder stages, in order. Rules
    (each overridable per stage by ``actors``/``cpus``/``gpus``/``batch``):

    * GPUs are used with ``device="cuda"``, or ``"auto"`` on a cluster that has some, by the
      stages whose model runs on one. They share the GPUs evenly: each such actor gets
      ``min(1, G / k)`` of a GPU for ``k`` GPU stages, and up to ``G / k`` actors of it.
    * Every stage gets ``min(1, C / (n + 1))`` CPUs per worker for ``n`` model stages, so
      one worker of every stage plus the tasks fit on any cluster (0.4 CPU each on 2 cores:
      Ray only counts them; a model thread still runs on one whole core); a CPU stage may
      grow to ``C / (n + 1)`` actors of that size.
    * Model stages take ``chunk_size`` videos per call (Whisper batches their speech chunks
      together, as the local engine does per chunk); decode takes one; write takes
      ``chunk_size``, the videos of one transaction.
    """
    actors, cpus, gpus, batch = actors or {}, cpus or {}, gpus or {}, batch or {}
    names = [n for n, _ in model_stages]
    for spec, what in ((actors, "--ray-actors"), (cpus, "--ray-cpus"), (gpus, "--ray-gpus"),
                       (batch, "--ray-batch")):
        unknown = set(spec) - set(STAGE_NAMES)
        if unknown:
            raise RayEngineError(f"{what}: unknown stage {', '.join(sorted(unknown))}; stages: "
                                 f"{', '.join(STAGE_NAMES)}")
    if device not in ("auto", "cpu", "cuda"):
        raise RayEngineError(f"--device {device!r}: use auto, cpu or cuda")
    if device == "cuda" and cluster_gpus <= 0:
        raise RayEngineError("--device cuda, but the Ray cluster has no GPU; use --device cpu or auto")
    use_gpu = device == "cuda" or (device == "auto" and cluster_gpus > 0)
    capable = {n for n, g in model_stages if g}
    for n, g in gpus.items():
        if g > 0 and n not in capable:
            raise RayEngineError(f"--ray-gpus {n}={g:g}: the {n} stage's model runs on the CPU only"
                                 if n in names else f"--ray-gpus {n}={g:g}: {n} is not a model stage of this run")
        if g > 0 and not use_gpu:
            raise RayEngineError(f"--ray-gpus {n}={g:g} with --device cpu, or on a cluster without GPUs")
    gpu_stages = [n for n in names if n in capable and use_gpu and gpus.get(n, 1) > 0]
    share = cluster_gpus / len(gpu_stages) if gpu_stages else 0.0
    slots = max(cluster_cpus, 1e-9) / (len(names) + 1)
    per_worker = min(1.0, slots)
    plans = [StagePlan("decode", num_cpus=cpus.get("decode", per_worker),
                       batch_size=batch.get("decode", 1))]
    for n in names:
        c = cpus.get(n, per_worker)
        if n in gpu_stages:
            g = gpus.get(n, min(1.0, share))
            most = max(1, int(math.floor(share / g + 1e-9)))
        else:
            g = 0.0
            most = max(1, int(math.floor(slots / c + 1e-9)))
        most = actors.get(n, most)
        if most < 1:
            raise RayEngineError(f"--ray-actors {n}={most}: need at least one actor")
        plans.append(StagePlan(n, num_cpus=c, num_gpus=g, actors=(1, most),
                               batch_size=batch.get(n, chunk_size)))
    plans.append(StagePlan("write", num_cpus=cpus.get("write", per_worker),
                           batch_size=batch.get("write", chunk_size)))
    for p in plans:
        if p.num_cpus <= 0 or p.batch_size < 1:
            raise RayEngineError(f"stage {p.name}: needs CPUs > 0 and a batch of at least 1 video")
    return plans


def parse_stage_map(spec: str | None, what: str, kind: Callable = float) -> dict:
    """``"asr=2,text=1"`` -> ``{"asr": 2, "text": 1}``; a bare ``"2"`` applies to every model
    stage. Raises :class:`RayEngineError` naming ``what`` (the option) for a bad value."""
    if not spec:
        return {}
    out = {}
    try:
        if "=" not in spec:
            value = kind(spec)
            return {n: value for n in MODEL_STAGES}
        for part in spec.split(","):
            stage, _, value = part.partition("=")
            out[stage.strip()] = kind(value.strip())
    except ValueError:
        raise RayEngineError(f"{what} {spec!r}: expected N or stage=N[,stage=N...], stages "
                             f"{', '.join(STAGE_NAMES)}") from None
    if any(v < 0 for v in out.values()):
        raise RayEngineError(f"{what} {spec!r}: values must be >= 0")
    return out


# ---------------------------------------------------------------------- the stages
# Rows of the dataset: a video's id and its pickled VideoTask. The task mixes arrays of
# per-video shapes with nested plain values; a pickled column keeps Ray Data's blocks one
# simple schema through every stage instead of an Arrow schema per stage.
def _unpack(batch: dict) -> list[VideoTask]:
    return [pickle.loads(b) for b in batch["task"]]


def _pack(videos: Sequence[VideoTask]) -> dict:
    return {"video_id": np.array([v.video_id for v in videos], dtype=object),
            "task": np.array([pickle.dumps(v, protocol=5) for v in videos], dtype=object)}


def _charge(videos: Sequence[VideoTask], stage_s: dict[str, float]) -> None:
    """Spread a batch's stage seconds evenly over its videos (summed again per block)."""
    if not videos:
        return
    for stage, seconds in stage_s.items():
        for v in videos:
            v.stage_s[stage] = v.stage_s.get(stage, 0.0) + seconds / len(videos)


def _drop(videos: Iterable[VideoTask], fields: Sequence[str]) -> None:
    """Free what no later stage reads, before the videos travel on."""
    for v in videos:
        if "audio" in fields or v.error:
            v.audio = None
        if "frames" in fields or v.error:
            v.frames = v.frame_index = v.frame_times = None


def decode_stage(batch: dict, settings: EmbedSettings, drop: Sequence[str]) -> dict:
    """Ray task: decode and window each video (``embed.prepare_video``)."""
    videos = _unpack(batch)
    for v in videos:
        spent: dict[str, float] = {}
        prepare_video(v, settings, spent)
        _charge([v], spent)
    _drop(videos, drop)
    return _pack(videos)


class AsrStage:
    """Ray actor: one Whisper per actor, over batches of videos (``embed.transcribe_videos``)."""

    def __init__(self, spec: ModelSpec, settings: EmbedSettings, plan: StagePlan, drop: Sequence[str]):
        extra = {"cpu_threads": plan.threads} if plan.device == "cpu" else {}
        self.transcriber = spec.build_transcriber(device=plan.device, **extra).load()
        if asr_source(self.transcriber) != settings.asr_source:
            raise RayEngineError(f"this worker's Whisper is {asr_source(self.transcriber)}, the driver's "
                                 f"{settings.asr_source}: install the same package versions on every node")
        self.settings, self.drop = settings, tuple(drop)

    def __call__(self, batch: dict) -> dict:
        videos = _unpack(batch)
        spent: dict[str, float] = {}
        transcribe_videos(videos, self.transcriber, self.settings, spent)
        _charge([v for v in videos if v.needs_asr], spent)
        _drop(videos, self.drop)
        return _pack(videos)


class EncoderStage:
    """Ray actor: one modality's encoder, loaded once per actor (``embed.encode_videos``)."""

    def __init__(self, spec: ModelSpec, settings: EmbedSettings, modality: str, plan: StagePlan,
                 drop: Sequence[str]):
        _limit_threads(plan)
        self.modality, self.settings, self.drop = modality, settings, tuple(drop)
        self.encoder = spec.build_encoder(modality, device=plan.device)
        want = settings.encoder(modality).encoder_id
        if self.encoder.encoder_id != want:
            raise RayEngineError(
                f"this worker's {self.encoder.name} has encoder id {self.encoder.encoder_id}, the "
                f"driver's {want}: install the same package versions and weights on every node")
        if hasattr(self.encoder, "show_progress"):
            self.encoder.show_progress = False

    def __call__(self, batch: dict) -> dict:
        videos = _unpack(batch)
        spent: dict[str, float] = {}
        encode_videos(self.modality, self.encoder, videos, spent)
        _charge([v for v in videos if self.modality in v.outputs], spent)
        _drop(videos, self.drop)
        return _pack(videos)


def _limit_threads(plan: StagePlan) -> None:
    # Ray sets OMP_NUM_THREADS for its workers; torch reads its own setting.
    if plan.device == "cpu":
        try:
            import torch
            torch.set_num_threads(plan.threads)
        except ImportError:
            pass


@dataclass
class BlockResult:
    """What a write task hands the driver: the block's transaction (its big tables already in
    data files) and its videos, stripped to what the report counts."""

    batch: WriteBatch
    videos: list[VideoTask]
    stage_s: dict[str, float] = field(default_factory=dict)


def write_stage(batch: dict, settings: EmbedSettings, layout: DataLayout) -> dict:
    """Ray task: the block's feature rows (``embed.feature_batch``), its vectors and segments
    written as Parquet files under the store's data path (``DataLayout.spill``)."""
    videos = _unpack(batch)
    t = time.perf_counter()
    spilled = layout.spill(feature_batch(videos, settings))
    spent: dict[str, float] = {}
    for v in videos:
        for stage, seconds in v.stage_s.items():
            spent[stage] = spent.get(stage, 0.0) + seconds
        v.audio = v.frames = v.frame_index = v.frame_times = None
        # The windows and their texts stay: the driver merges them into the committed rows.
        v.outputs, v.segments, v.cached_segments, v.stored = {}, None, None, None
    spent["write"] = spent.get("write", 0.0) + time.perf_counter() - t
    return {"block": np.array([pickle.dumps(BlockResult(spilled, videos, spent), protocol=5)],
                              dtype=object)}


def _drops(stages: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """After which stage each big array is read for the last time (then dropped)."""
    users = {"audio": [s for s in stages if s in ("asr", "audio")], "frames": [s for s in stages if s == "video"]}
    out: dict[str, list[str]] = {s: [] for s in stages}
    for name, used_by in users.items():
        out[used_by[-1] if used_by else "decode"].append(name)
    return {s: tuple(v) for s, v in out.items()}


# ---------------------------------------------------------------------- the driver
@dataclass
class RayOptions:
    """How ``--engine ray`` runs: where the cluster is and the per-stage overrides of
    :func:`plan_stages` (``{stage: value}``)."""

    address: str | None = None
    actors: dict[str, int] = field(default_factory=dict)
    cpus: dict[str, float] = field(default_factory=dict)
    gpus: dict[str, float] = field(default_factory=dict)
    batch: dict[str, int] = field(default_factory=dict)


def _connect(ray, address: str | None, quiet: bool) -> bool:
    """Join ``address``, or start a local Ray instance sized to this machine; True when this
    call started (or joined) it and must shut it down. A caller's ``ray.init`` is reused."""
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    level = logging.WARNING if quiet else logging.INFO
    try:
        if address:
            ray.init(address=address, logging_level=level)
        else:
            ray.init(include_dashboard=False, logging_level=level)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RayEngineError(f"cannot connect to {where}: {exc}") from exc
    return True


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a cluster address nothing listens at: ``ray.init`` retries such an address
    for many minutes. ``auto`` (the cluster this machine belongs to) is left to Ray."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayEngineError(f"--ray-address {address!r}: expected auto, host:port (the GCS, 6379 by "
                             "default) or ray://host:port (Ray Client, 10001 by default)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayEngineError(f"--ray-address {address}: nothing answers there ({exc}); is the cluster "
                             "up (`ray start --head`) and the port open?") from exc


def _runtime_env(forward_aws: bool = False) -> dict:
    """The workers' environment. They import this very package: its checkout goes first on
    their path (on a local cluster; remote nodes without that folder use their own installed
    copy). For a store on S3 they also get this process's ``AWS_*`` variables, so that the
    files they write reach the same endpoint with the same keys."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    if forward_aws:
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    return {"env_vars": env}


def _identify_gpu_encoders(ray, embedder, spec: ModelSpec, plans: dict[str, StagePlan]) -> None:
    """Encoders whose id depends on the device (compute type) are identified where they run:
    a one-off task on a GPU builds each one and returns its lineage row."""
    for m, enc in list(embedder.encoders.items()):
        plan = plans.get(m)
        if plan is None or plan.num_gpus <= 0:
            continue

        @ray.remote(num_gpus=plan.num_gpus, num_cpus=plan.num_cpus, runtime_env=_runtime_env())
        def identify(spec=spec, modality=m):
            built = spec.build_encoder(modality, device="cuda")
            return built.info()

        embedder.encoders[m] = _RemoteEncoder(ray.get(identify.remote()))


@dataclass
class _RemoteEncoder:
    """The lineage of an encoder built on a GPU worker (the driver may have no GPU): what the
    plan and the ``encoders`` table need of it."""

    row: dict

    @property
    def encoder_id(self) -> str:
        return self.row["encoder_id"]

    @property
    def name(self) -> str:
        return self.row["name"]

    @property
    def dim(self) -> int:
        return int(self.row["dim"])

    def info(self) -> dict:
        return dict(self.row)


def embed_manifest_ray(store: FeatureStore, manifest: Manifest, modalities: Iterable[str] = MODALITIES,
                       encoder_names: dict[str, str] | None = None, device: str = "auto",
                       asr_backend: str = "faster-whisper", asr_model: str | None = None,
                       language: str = "id", text_model: str | None = None, beam_size: int | None = None,
                       asr_batch_size: int | None = None, shard: tuple[int, int] = (0, 1),
                       chunk_size: int = 8, progress: bool = True, text_unit: str = "auto",
                       rehash: bool = False, options: RayOptions | None = None,
                       log: Callable[[str], None] | None = None) -> EmbedReport:
    """``embed_manifest`` on Ray: the same plan, rows and report, one transaction per block
    of ``chunk_size`` videos committed by this process."""
    ray = import_ray()
    options = options or RayOptions()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    t0 = time.perf_counter()
    # The driver's models only give ids and lineage; workers build their own on their devices.
    embedder, spec = build_embedder(
        store, manifest, modalities, encoder_names, "cpu", asr_backend, asr_model, language,
        text_model, beam_size, asr_batch_size, chunk_size, progress, text_unit, rehash)
    spec = ModelSpec(spec.encoder_names, device, spec.transcriber_kwargs)
    embedder.log = log
    owned = _connect(ray, options.address, quiet=not progress)
    try:
        resources = ray.cluster_resources()
        stages = ([("asr", True)] if embedder.transcriber is not None else []) + \
            [(m, bool(getattr(enc, "uses_gpu", False))) for m, enc in embedder.encoders.items()]
        plans = plan_stages(resources.get("CPU", 1.0), resources.get("GPU", 0.0), stages, device,
                            chunk_size, options.actors, options.cpus, options.gpus, options.batch)
        by_name = {p.name: p for p in plans}
        _identify_gpu_encoders(ray, embedder, spec, by_name)
        report, todo = embedder.start(manifest, shard)
        report.engine = "ray"
        report.stage_s["commit"] = 0.0
        report.notes.append("ray stages: " + "; ".join(p.describe() for p in plans))
        if todo:
            _run_pipeline(ray, store, embedder.settings, spec, plans, todo, report, progress, log, t0)
    finally:
        if owned:
            ray.shutdown()
    report.wall_s = time.perf_counter() - t0
    return report


def _run_pipeline(ray, store: FeatureStore, settings: EmbedSettings, spec: ModelSpec,
                  plans: list[StagePlan], todo: list[VideoTask], report: EmbedReport,
                  progress: bool, log: Callable[[str], None], t0: float) -> None:
    """Build the dataset of ``todo``, stream it through the stages and commit block by block."""
    from tqdm.auto import tqdm

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.enable_operator_progress_bars = progress
    if not progress:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ctx.issue_detectors_config.detectors = []  # their advice goes to the log, not a quiet run
    env = _runtime_env(forward_aws=store.remote)
    drops = _drops([p.name for p in plans])
    layout = store.data_layout(SPILLED_TABLES)
    ds = ray.data.from_items([{"video_id": v.video_id, "task": pickle.dumps(v, protocol=5)} for v in todo],
                             override_num_blocks=min(len(todo), MAX_INPUT_BLOCKS))
    for p in plans:
        common = dict(batch_size=p.batch_size, batch_format="numpy", num_cpus=p.num_cpus,
                      runtime_env=env, zero_copy_batch=True)
        if p.name == "decode":
            # The memory a decoded reel holds (its frames) is reserved per task. A resource
            # request of its own also keeps Ray Data from fusing decode into the next actor
            # pool (it fuses operators that ask for the same resources), which would decode
            # on the ASR actors, one video at a time, instead of on every free CPU.
            ds = ds.map_batches(decode_stage, fn_kwargs={"settings": settings, "drop": drops["decode"]},
                                compute=ray.data.TaskPoolStrategy(), memory=DECODE_MEMORY, **common)
        elif p.name == "write":
            ds = ds.map_batches(write_stage, fn_kwargs={"settings": settings, "layout": layout},
                                compute=ray.data.TaskPoolStrategy(), **common)
        else:
            cls, kwargs = (AsrStage, {}) if p.name == "asr" else (EncoderStage, {"modality": p.name})
            lo, hi = p.actors
            ds = ds.map_batches(
                cls, fn_constructor_kwargs={"spec": spec, "settings": settings, "plan": p,
                                            "drop": drops[p.name], **kwargs},
                compute=ray.data.ActorPoolStrategy(min_size=lo, max_size=hi,
                                                   initial_size=hi if p.num_gpus else lo),
                num_gpus=p.num_gpus or None, **common)
    bar = tqdm(total=len(todo), unit="video", desc="embed (committed)", disable=not progress,
               dynamic_ncols=True)
    try:
        for row in ds.iter_rows():
            block: BlockResult = pickle.loads(row["block"])
            t = time.perf_counter()
            store.commit(video_commit(block.videos, settings, features=block.batch))
            report.stage_s["commit"] += time.perf_counter() - t
            for stage, seconds in block.stage_s.items():
                report.stage_s[stage] = report.stage_s.get(stage, 0.0) + seconds
            record_outcome(block.videos, report, log)
            bar.update(len(block.videos))
            elapsed = time.perf_counter() - t0
            bar.set_postfix(windows=report.n_windows, media_x=f"{report.media_s / max(elapsed, 1e-9):.1f}")
    except Exception as exc:  # noqa: BLE001 - Ray wraps the worker's error; name what is kept
        if isinstance(exc, RayEngineError):
            raise
        done = report.n_embedded + len(report.failures)
        raise RayEngineError(
            f"the Ray pipeline stopped: {type(exc).__name__}: {exc}. The {done} video(s) committed "
            "before it are kept; run the same command again to embed the rest") from exc
    finally:
        bar.close()
