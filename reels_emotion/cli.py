"""Command line: a thin shell over the featurestore and fusion libraries.

    python cli.py embed --store S --manifest train.csv
    python cli.py tune-fusion --store S --trials 30
    python cli.py predict --store S --split test
    python cli.py export-submission --store S --split test --out submission.csv
    python cli.py sql --store S "SELECT label, count(*) FROM videos GROUP BY 1"
    python cli.py sql --store S --snapshot 12 "SELECT count(*) FROM windows"
    python cli.py use-encoders --store S 3f2a9c1b0d4e
    python cli.py compact --store S
    python cli.py models list --store S
    python cli.py models show --store S 3f2a9c1b0d4e
    python cli.py remove --store S --manifest old.csv

Also installed as the ``reels-emotion`` console script and runnable as
``python -m reels_emotion`` (``python cli.py`` from a
checkout is a shim over this module). Exit status: 0 success, 1 some rows/videos failed
(the rest was done), 2 the command could not run; an expected error is one ``error:`` line,
a bug says so (``reels_emotion.errors``; docs/cli.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from featurestore.errors import InputError, MissingDataError
from featurestore.schema import MODALITIES  # light: names only

from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, report_error

FORMATS = ("table", "csv", "json")


def _store(args, create: bool = False):
    from featurestore.store import FeatureStore
    return FeatureStore(args.store, create=create, catalog=getattr(args, "catalog", None),
                        data_path=getattr(args, "data_path", None))


def _encoder_map(spec: str | None) -> dict[str, str] | None:
    """``audio=ID,text=ID`` -> ``{"audio": ID, "text": ID}``."""
    if not spec:
        return None
    out = {}
    for part in spec.split(","):
        modality, sep, encoder_id = part.partition("=")
        if not sep or not encoder_id.strip():
            raise InputError(f"--encoders {spec!r}: expected modality=encoder_id[,...], e.g. text=3f2a9c1b0d4e")
        if modality.strip() not in MODALITIES:
            raise InputError(f"--encoders {spec!r}: unknown modality {modality.strip()!r}; use "
                             f"{', '.join(MODALITIES)}")
        out[modality.strip()] = encoder_id.strip()
    return out


def _print_table(table, fmt: str = "table", out=None) -> None:
    """Print an Arrow table or DataFrame as an aligned table, CSV or a JSON array."""
    import pandas as pd
    out = out or sys.stdout   # looked up per call: sys.stdout may have been replaced since import
    df = table if isinstance(table, pd.DataFrame) else table.to_pandas()
    if fmt == "csv":
        df.to_csv(out, index=False)
    elif fmt == "json":
        out.write(df.to_json(orient="records", force_ascii=False, date_format="iso") + "\n")
    else:
        with pd.option_context("display.max_rows", 200, "display.max_columns", 50,
                               "display.width", 200, "display.max_colwidth", 60):
            out.write((df.to_string(index=False) if len(df) else "(no rows)") + "\n")


# ---------------------------------------------------------------------- commands
RAY_OPTIONS = ("ray_address", "ray_actors", "ray_cpus", "ray_gpus", "ray_batch")


def cmd_embed(args) -> int:
    from featurestore.embed import embed_manifest, parse_shard
    from featurestore.manifest import read_manifest
    if args.engine != "ray":
        given = [f"--{o.replace('_', '-')}" for o in RAY_OPTIONS if getattr(args, o) is not None]
        if given:
            raise InputError(f"{', '.join(given)} only apply with --engine ray")
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size {args.chunk_size}: need at least 1 video per chunk")
    if args.workers is not None and (args.workers < 1 or args.engine == "ray"):
        raise InputError(f"--workers {args.workers}: need at least 1, with the local engine "
                         "(Ray sizes its stages with --ray-actors/--ray-cpus)")
    if Path(args.store).exists() and not Path(args.store).is_dir():
        # Said before the manifest is read, so the first line names the real problem.
        raise InputError(f"--store {args.store} is a file; give a folder (a new one, or an existing store)")
    shard = parse_shard(args.shard)   # options first: a bad value is the first line a user reads
    manifest = read_manifest(args.manifest, split=args.split, videos_dir=args.videos_dir,
                             encoding=args.encoding)
    print(manifest.summary(), file=sys.stderr)
    store = _store(args, create=True)
    names = {m: n for m, n in (("audio", args.audio_encoder), ("video", args.video_encoder),
                               ("text", args.text_encoder)) if n}
    common = dict(modalities=args.modalities, encoder_names=names, device=args.device,
                  asr_backend=args.asr_backend, asr_model=args.asr_model, language=args.language,
                  text_model=args.text_model, beam_size=args.beam_size,
                  asr_batch_size=args.asr_batch_size, shard=shard,
                  chunk_size=args.chunk_size, progress=not args.quiet, text_unit=args.text_unit,
                  rehash=args.rehash)
    speaker = _speaker_encoder(args)
    if args.engine == "ray":
        if speaker:
            print("embed: the speaker stage runs with the local engine only; speaker groups come "
                  "from a later local `embed` of the same manifest", file=sys.stderr)
        # RayEngineError (Ray missing, no GPU for --device cuda...) is a UserError: one line, exit 2.
        from featurestore.ray_engine import RayOptions, embed_manifest_ray, parse_stage_map
        options = RayOptions(address=args.ray_address,
                             actors=parse_stage_map(args.ray_actors, "--ray-actors", int),
                             cpus=parse_stage_map(args.ray_cpus, "--ray-cpus", float),
                             gpus=parse_stage_map(args.ray_gpus, "--ray-gpus", float),
                             batch=parse_stage_map(args.ray_batch, "--ray-batch", int))
        report = embed_manifest_ray(store, manifest, options=options, **common)
    else:
        report = embed_manifest(store, manifest, speaker_encoder=speaker, workers=args.workers, **common)
    print(report.summary())
    if speaker and args.engine != "ray":
        from featurestore.speakers import infer_speaker_groups
        from featurestore.store import StoreError
        try:
            print(infer_speaker_groups(store, threshold=args.speaker_threshold,
                                       remove_emotion=args.speaker_remove_emotion).describe())
        except StoreError as exc:   # a store from before speaker groups: the embed itself stands
            print(f"embed: no speaker groups drawn: {exc}", file=sys.stderr)
    print(f"store: {store.root}")
    if report.failures:
        print(f"{len(report.failures)} video(s) failed; they are listed in the store's videos table "
              "(status='failed', error, failed_modalities) and left out of training until they "
              "succeed. The next embed of a manifest that lists them tries each of them again (a "
              "file that is back, or fixed, is embedded; one still missing fails again) and skips "
              "the videos that are done.", file=sys.stderr)
    return EXIT_OK if report.ok and manifest.ok else EXIT_PARTIAL


def _speaker_encoder(args) -> str | None:
    """The speaker stage's encoder for ``embed``: 'auto' runs resemblyzer with the audio
    modality (where it is installed), 'none' runs none."""
    name = args.speaker_encoder
    if name == "none" or (name == "auto" and "audio" not in args.modalities):
        return None
    if name == "auto":
        import importlib.util
        if importlib.util.find_spec("resemblyzer") is None:
            print("embed: resemblyzer is not installed, so no speaker groups are drawn "
                  "(scripts/setup.sh installs it)", file=sys.stderr)
            return None
        return "resemblyzer"
    return name


def cmd_speakers(args) -> int:
    from featurestore.speakers import infer_speaker_groups
    report = infer_speaker_groups(_store(args), threshold=args.threshold, remove_emotion=args.remove_emotion)
    if not report.n_videos:   # nothing to cluster: the command could not run
        raise MissingDataError(report.describe())
    print(report.describe())
    return EXIT_OK


def cmd_tune(args) -> int:
    from featurestore.sqlfiles import read_sql
    from fusion.tune import tune_fusion
    # Checked here: scikit-learn's own message for these is a ValueError that reads like a bug.
    if args.folds < 2:
        raise InputError(f"--folds {args.folds}: cross-validation needs 2 or more folds")
    if args.trials < 1 or args.confirm_top < 0 or args.confirm_repeats < 0:
        raise InputError("--trials must be 1 or more, --confirm-top and --confirm-repeats 0 or more")
    store = _store(args)
    n_failed = store.query(read_sql("queries", "failed_labelled")).column(0)[0].as_py()
    if n_failed:
        print(f"tune-fusion: {n_failed} labelled video(s) are left out: their last embed failed "
              "(`cli.py audit` lists them; the next embed of their manifest tries them again)",
              file=sys.stderr)
    result = tune_fusion(store, n_trials=args.trials, timeout=args.timeout, seed=args.seed,
                         study_name=args.study, storage=args.storage, n_folds=args.folds,
                         families=args.families, show_progress=not args.quiet,
                         confirm_top=args.confirm_top, confirm_repeats=args.confirm_repeats,
                         encoders=_encoder_map(args.encoders), estimate=args.estimate,
                         estimate_trials=args.estimate_trials, decision_rule=args.decision_rule,
                         ensemble=args.ensemble, group_norm=args.group_norm, refit=not args.no_refit,
                         speaker_groups=args.speaker_groups)
    print(result.summary() if hasattr(result, "summary") else result)
    return EXIT_OK


def cmd_predict(args) -> int:
    from featurestore.sqlfiles import read_sql
    from fusion.predict import expected_score_note, predict_store, text_origin_note
    store = _store(args)
    model_id = predict_store(store, split=args.split, model_id=args.model, progress=not args.quiet)
    note = text_origin_note(store, model_id, args.split)
    if note:
        print(note, file=sys.stderr)
    tbl = store.query(read_sql("queries", "prediction_summary"), [model_id, args.split])
    # Machine-readable formats keep stdout to the rows; the words go to stderr.
    words = sys.stdout if args.format == "table" else sys.stderr
    print(f"model {model_id}: window probabilities written; video_predictions per method:", file=words)
    print(f"  {expected_score_note(store, model_id, args.split)}", file=words)
    _print_table(tbl, args.format)
    return EXIT_OK


def cmd_predict_video(args) -> int:
    from fusion.predict import Predictor, served_text_note
    if not args.store and not args.model:
        print("error: predict-video needs a model: --store S (its newest model, or --model ID) or "
              "--model DIR (a model directory)", file=sys.stderr)
        return EXIT_USAGE
    if args.group is not None and not args.store:
        print("error: predict-video --group names a group of --store; give --store too", file=sys.stderr)
        return EXIT_USAGE
    # The model's own text origin (ASR model, language, text unit) unless a flag overrides it.
    options = dict(same_speaker=args.same_speaker, device=args.device, method=args.method,
                   asr_model=args.asr_model, language=args.language, text_unit=args.text_unit)
    predictor = Predictor.from_store(_store(args), model_id=args.model, group=args.group, **options) \
        if args.store else Predictor(args.model, **options)
    if args.json:
        print("predict-video: --json is deprecated; use --format json", file=sys.stderr)
    note = served_text_note(predictor.model.lineage, predictor.model.model_id, predictor.text_origin)
    if note and "text" in predictor.model.modalities:
        print(note, file=sys.stderr)
    df = predictor.predict_batch(args.paths, progress=not args.quiet)
    if len(predictor.speakers):
        # Which stored speaker (or a new one) each file's voice is, and what normalised it.
        import pandas as pd
        sp = predictor.speakers.rename(columns={"status": "speaker_status"})
        df = pd.concat([df, sp[["speaker", "speaker_status", "distance", "normalised_by"]]], axis=1)
    _print_table(df, "json" if args.json else args.format)
    return EXIT_PARTIAL if df["error"].notna().any() else EXIT_OK


def cmd_export(args) -> int:
    from featurestore.export import export_submission
    from featurestore.store import StoreError
    from fusion.predict import expected_score_note
    store = _store(args)
    ids = None
    if args.manifest:
        from featurestore.manifest import manifest_ids
        ids = manifest_ids(args.manifest, encoding=args.encoding)
    result = export_submission(store, split=args.split, out_csv=args.out,
                               method=args.method, model_id=args.model, video_ids=ids)
    print(result.summary() if hasattr(result, "summary") else result)
    try:
        print(f"  {expected_score_note(store, result.model_id, args.split)}")
    except StoreError:  # predictions written by hand: no models row to read an estimate from
        pass
    if len(result.fallbacks):
        # A batch job must be able to tell: these rows carry no prediction.
        print(f"{len(result.fallbacks)} of {result.n_rows} row(s) got the training prior "
              f"{result.prior!r} instead of a prediction (not embedded, failed, or not predicted); "
              "embed and predict them, then export again", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_audit(args) -> int:
    from featurestore.audit import audit
    report = audit(_store(args))
    if args.format == "json":
        print(report.to_json())
    elif args.format == "csv":
        for name, frame in report.to_frames().items():
            print(f"# {name}")
            frame.to_csv(sys.stdout, index=False)
    else:
        print(report.to_text())
    return EXIT_OK


def cmd_sql(args) -> int:
    import duckdb
    store = _store(args)
    if args.write:
        if args.snapshot is not None:
            raise InputError("--snapshot reads the past and cannot be written; leave it out with --write")
        # One writer transaction, with the commit counter, retried against a concurrent
        # writer's rows: the statements run again there.
        store.execute_write(args.query)
        return EXIT_OK
    con = store.connect(read_only=True, snapshot=args.snapshot)
    try:
        rel = con.sql(args.query)
        # A statement with no result set (COPY ... TO a file, SET, ...) has already run.
        tbl = rel.to_arrow_table() if rel is not None else None
    except duckdb.Error as exc:   # the user's own SQL: its message says what is wrong
        raise InputError(f"the query failed: {exc}") from exc
    finally:
        con.close()
    if tbl is not None:
        _print_table(tbl, args.format)
    return EXIT_OK


def cmd_snapshots(args) -> int:
    _print_table(_store(args).snapshots(), args.format)
    return EXIT_OK


def cmd_use_encoders(args) -> int:
    store = _store(args)
    if args.encoder_ids:
        # With --format csv/json, stdout holds only the rows.
        words = sys.stdout if args.format == "table" else sys.stderr
        for m, e in store.use_encoders(args.encoder_ids).items():
            print(f"fusion_vectors serves {m} from {e}", file=words)
    from featurestore.sqlfiles import read_sql
    _print_table(store.query(read_sql("queries", "encoder_inventory")), args.format)
    return EXIT_OK


def cmd_compact(args) -> int:
    result = _store(args).compact(expire_older_than=args.expire_older_than,
                                  cleanup_older_than=args.cleanup_older_than,
                                  orphans_older_than=args.orphans_older_than)
    print(f"data files {result['data_files_before']} -> {result['data_files_after']}; "
          f"{result['snapshots_expired']} snapshot(s) expired; {result['files_deleted']} file(s) deleted, "
          f"{result['orphans_deleted']} orphaned file(s) of killed runs deleted, "
          f"{result['files_waiting']} replaced file(s) kept for open readers until a later compact")
    return EXIT_OK


def cmd_encoders(args) -> int:
    from featurestore.encoders.registry import available_encoders, default_encoder
    rows = [{"name": n, "modality": m, "dim": d, "default": n == default_encoder(m), "description": desc}
            for n, (m, d, desc) in available_encoders().items()]
    import pandas as pd
    table = pd.DataFrame(rows)
    table["dim"] = table["dim"].astype("Int64")   # "hf:<path>" has none (the model decides)
    _print_table(table, args.format)
    return EXIT_OK


def cmd_demo(args) -> int:
    from reels_emotion.demo import run_demo
    return run_demo(Path(args.out), quick=args.quick)


# ---------------------------------------------------------------------- parser
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("reels-emotion")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line (exit 2), like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")


def _modality_list(spec: str) -> list[str]:
    """``audio,text`` -> ``["audio", "text"]``; an unknown name is a usage error."""
    names = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODALITIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{spec!r}: unknown modality {', '.join(map(repr, unknown)) or '(none given)'}; "
                                         f"use any of {','.join(MODALITIES)}")
    return names


def _with_format(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sp.add_argument("--format", default="table", choices=FORMATS,
                    help="rows as an aligned table (default), CSV or a JSON array")
    return sp


def _with_store_arg(cmd):
    """A command ``cmd(args, store, print_table)`` as ``func(args)``: the store opened here."""
    def func(args) -> int:
        return cmd(args, _store(args), _print_table)
    return func


def _all_parsers(sub) -> list[argparse.ArgumentParser]:
    """Every sub-command's parser, nested ones (``models list``) included."""
    out = []
    for sp in dict.fromkeys(sub.choices.values()):
        nested = [a for a in sp._actions if isinstance(a, argparse._SubParsersAction)]
        out += _all_parsers(nested[0]) if nested else [sp]
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reels-emotion", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("--debug", action="store_true", help="print the full traceback of any error")
    sub = p.add_subparsers(dest="command", required=True)

    def with_store(sp):
        sp.add_argument("--store", required=True, help="feature store directory")
        return sp

    e = with_store(sub.add_parser("embed", help="embed a manifest's videos into the store"))
    e.add_argument("--catalog", help="a new store's DuckLake catalog on PostgreSQL "
                   "(postgresql://user@host:port/db?schema=name); default a SQLite file in the store")
    e.add_argument("--data-path", help="a new store's data files on object storage (s3://bucket/prefix; "
                   "endpoint and keys from the AWS_* environment variables); the store directory "
                   "keeps store.json, models and a SQLite catalog")
    e.add_argument("--manifest", required=True, help="CSV id,video[,emotion][,transcript][,group][,split]")
    e.add_argument("--split", choices=["train", "test"], help="split of every row (default: train "
                   "when labelled, else test; a 'split' column wins)")
    e.add_argument("--videos-dir", help="folder holding {id}.mp4 for URL videos")
    e.add_argument("--encoding", help="manifest text encoding (default UTF-8)")
    e.add_argument("--modalities", type=_modality_list,
                   default=["audio", "video", "text"], help="any subset of audio,video,text")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--asr-backend", default="faster-whisper", choices=["faster-whisper", "openai-whisper"])
    e.add_argument("--asr-model", help="faster-whisper name/path (small, large-v3...) or an "
                   "openai-whisper checkpoint; default: offline Whisper base")
    e.add_argument("--language", default="id", help="spoken language (default id)")
    e.add_argument("--beam-size", type=int, help="Whisper beam width (default: 1 on CPU, 5 on CUDA)")
    e.add_argument("--asr-batch-size", type=int, help="speech chunks (<= 30 s) of one video decoded "
                   "together (default: 8 on CPU, 16 on CUDA; 1: one after another)")
    e.add_argument("--rehash", action="store_true",
                   help="hash every input file again (full SHA-256). By default a stored hash is "
                   "reused only while the file's size, mtime, ctime and inode are unchanged, which a "
                   "same-size, same-mtime replacement (cp -p, rsync -t, tar) cannot keep; use this on "
                   "file systems that keep no change time")
    e.add_argument("--text-unit", default="auto", choices=["auto", "segment", "word"],
                   help="a window's text from ASR, SRT/VTT or Whisper JSON: every overlapping "
                   "segment (as in the competition's transcripts) or only its own words; auto "
                   "(default): segment when the store's labelled videos or this manifest use "
                   "window transcript files or segments, else word")
    e.add_argument("--text-model", help="a local sentence-transformers/HF model directory")
    e.add_argument("--audio-encoder", help="audio encoder name (see `encoders`)")
    e.add_argument("--video-encoder", help="video encoder name")
    e.add_argument("--text-encoder", help="text encoder name")
    e.add_argument("--shard", help="i/n: embed only this shard of the manifest (run n processes)")
    e.add_argument("--chunk-size", type=int, default=8, help="videos per written chunk (one "
                   "transaction; with --engine ray also the videos per model call)")
    e.add_argument("--workers", type=int, help="local engine: threads that overlap the stages (the "
                   "next chunk decodes while one is encoded; the modalities' encoders side by side); "
                   "default 2 (1 on one core); 1 runs them in turn. The rows do not depend on it")
    e.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (default): this process, chunk by chunk; ray: a Ray Data pipeline "
                   "(decode tasks, ASR and encoder actor pools, one commit per block by this process)")
    e.add_argument("--ray-address", help="with --engine ray: a running cluster (auto, "
                   "ray://host:10001 or host:6379); default: start a local Ray sized to this machine")
    e.add_argument("--ray-actors", help="with --engine ray: most actors per model stage, N or "
                   "stage=N[,...] (stages asr, audio, video, text); default sized to the cluster")
    e.add_argument("--ray-cpus", help="with --engine ray: CPUs per worker, N or stage=N[,...] "
                   "(also decode, write)")
    e.add_argument("--ray-gpus", help="with --engine ray: GPUs per actor, e.g. asr=1,text=0.5; "
                   "default: the GPU stages share the cluster's GPUs evenly")
    e.add_argument("--ray-batch", help="with --engine ray: videos per call, stage=N[,...] "
                   "(default --chunk-size; decode 1)")
    e.add_argument("--speaker-encoder", default="auto",
                   help="voice encoder of the speaker stage, whose vectors are clustered into speaker "
                        "groups after the run (featurestore.speakers): auto (resemblyzer with the audio "
                        "modality), none, or an encoder name")
    e.add_argument("--speaker-threshold", type=float, help="cosine-distance cut of the speaker "
                   "clustering (default: chosen from the manifest groups, else the measured default)")
    e.add_argument("--speaker-remove-emotion", action="store_true", help="project the directions "
                   "along which a voice moves with the emotion (learned from the videos with a group "
                   "and a label) out of the voices before clustering (docs/benchmarks.md, section 8)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_embed)
    sg = with_store(sub.add_parser("speakers", help="cluster the stored voice vectors into speaker "
                                                    "groups again (embed does this after each run)"))
    sg.add_argument("--threshold", type=float, help="cosine-distance cut (default: chosen from the "
                                                    "manifest groups, else the measured default)")
    sg.add_argument("--remove-emotion", action="store_true", help="project the emotion directions "
                    "(learned from the videos with a group and a label) out of the voices first: "
                    "clusters follow the speaker more closely (docs/benchmarks.md, section 8)")
    sg.set_defaults(func=cmd_speakers)

    t = with_store(sub.add_parser("tune-fusion", help="Optuna search over fusion models, video-grouped CV"))
    t.add_argument("--trials", type=int, default=30)
    t.add_argument("--timeout", type=float, help="seconds")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--study", help="study name; the same name resumes it")
    t.add_argument("--storage", help="Optuna storage URL (e.g. postgresql://...); default a file in the store")
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--families", type=lambda s: s.split(","), help="restrict model families (comma list)")
    t.add_argument("--confirm-top", type=int, default=5, help="re-score this many best trials on "
                   "other fold partitions and keep the best mean (default 5; 0: the single best trial)")
    t.add_argument("--confirm-repeats", type=int, default=2, help="other fold partitions for "
                   "--confirm-top (default 2)")
    t.add_argument("--encoders", help="train on these feature sets instead of the store's named "
                   "choice: modality=encoder_id[,...] (see `use-encoders`)")
    t.add_argument("--estimate", choices=["nested", "off"], default="nested",
                   help="nested (default): score the whole procedure on outer folds it never saw "
                   "(about folds x estimate-trials / trials times the study's time); off: skip")
    t.add_argument("--estimate-trials", type=int, help="trials of each inner study of the nested "
                   "estimate (default min(trials, 10))")
    t.add_argument("--decision-rule", choices=["auto", "on", "off"], default="auto",
                   help="per-class log-probability offsets for macro-F1: auto (default) applies them "
                   "when offsets fitted on the other folds gain on the selection's folds (the nested "
                   "estimate makes the same choice inside every outer fold)")
    t.add_argument("--ensemble", choices=["auto", "on", "off"], default="auto",
                   help="ensemble selection over the trials: auto (default) deploys it when, chosen "
                   "on the other folds, it beats the single model on the selection's folds (chosen "
                   "the same way inside every outer fold of the nested estimate)")
    t.add_argument("--group-norm", choices=["auto", "on", "off"], default="auto",
                   help="standardise window vectors per speaker over all of its stored windows: the "
                   "manifest group, else the inferred voice group (embed's speaker stage); auto "
                   "(default) when the labelled videos have two or more speakers")
    t.add_argument("--speaker-groups", choices=["auto", "on", "off"], default="auto",
                   help="CV groups also merge the videos of one inferred speaker (voice clusters of "
                        "`embed`'s speaker stage): auto where some labelled video has an inferred "
                        "speaker but no manifest group")
    t.add_argument("--no-refit", action="store_true", help="a tuning-only worker: add trials to the "
                   "shared --study and stop; one later tune-fusion run without it confirms, estimates "
                   "and refits the chosen model")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_tune)

    pr = with_store(sub.add_parser("predict", help="score a split's windows and aggregate per video"))
    pr.add_argument("--split", default="test", choices=["train", "test"])
    pr.add_argument("--model", help="model_id (default: the newest trained on the current labelled set)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    _with_format(pr).set_defaults(func=cmd_predict)

    pv = sub.add_parser("predict-video", help="embed and classify files that are not in a store")
    pv.add_argument("paths", nargs="+")
    pv.add_argument("--store", help="store whose best (or --model) model to use")
    pv.add_argument("--model", help="model_id in --store, or a model directory")
    _with_format(pv)
    # Deprecated spelling of --format json, kept so existing scripts keep working.
    pv.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    pv.add_argument("--quiet", action="store_true", help="no progress bar")
    pv.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    pv.add_argument("--asr-model", help="Whisper model for the files' speech (default: the one the "
                    "model's training text came from, as its lineage records)")
    pv.add_argument("--language", help="spoken language (default: the model's training text's)")
    pv.add_argument("--text-unit", choices=["segment", "word"], help="how ASR text becomes window "
                    "text (default: the model's own)")
    pv.add_argument("--method", choices=["majority", "weighted", "mean", "max"],
                    help="window -> video aggregation (default: the model's own)")
    pv.add_argument("--group", help="for a model trained with per-group normalisation: the store's "
                    "group (speaker) the files belong to; its stored windows give the statistics")
    pv.add_argument("--same-speaker", action="store_true",
                    help="for such a model: the files are one new speaker, normalised by their own windows. "
                    "Without --group or --same-speaker, each file's voice is matched to the store's "
                    "speakers (manifest or inferred voice groups) and the output says which, or new")
    pv.set_defaults(func=cmd_predict_video)

    ex = with_store(sub.add_parser("export-submission", help="write id,emotion CSV through SQL COPY"))
    ex.add_argument("--split", default="test", choices=["train", "test"])
    ex.add_argument("--out", required=True)
    ex.add_argument("--method", choices=["majority", "weighted", "mean", "max"])
    ex.add_argument("--model")
    ex.add_argument("--manifest", help="export only this manifest's ids, in its order (each must be "
                    "a video of --split in the store); default: every video of the split in the "
                    "store, which is the union of every manifest embedded into it")
    ex.add_argument("--encoding", help="--manifest text encoding (default UTF-8)")
    ex.set_defaults(func=cmd_export)

    a = with_store(sub.add_parser("audit", help="duplicates, conflicts, leakage, balance, coverage"))
    _with_format(a)
    a.set_defaults(func=cmd_audit)

    q = with_store(sub.add_parser("sql", help="run a DuckDB query over the store's tables and views"))
    q.add_argument("query")
    _with_format(q)
    q.add_argument("--snapshot", type=int, help="read the store as of this snapshot id (see `snapshots`)")
    q.add_argument("--write", action="store_true", help="run statements that change the store, as "
                   "one writer transaction (run again against the rows of a writer that commits "
                   "first; no BEGIN/COMMIT of your own; default: read-only)")
    q.set_defaults(func=cmd_sql)

    sn = with_store(sub.add_parser("snapshots", help="the store's snapshots (time travel targets)"))
    _with_format(sn)
    sn.set_defaults(func=cmd_snapshots)

    ue = with_store(sub.add_parser("use-encoders", help="choose which stored feature set fusion_vectors "
                                   "serves per modality; without ids, list them"))
    ue.add_argument("encoder_ids", nargs="*", help="encoder_id per modality to serve")
    _with_format(ue).set_defaults(func=cmd_use_encoders)

    c = with_store(sub.add_parser("compact", help="merge small data files and clean up files no "
                                  "snapshot needs (DuckLake maintenance; safe while others write)"))
    c.add_argument("--expire-older-than", help="also expire snapshots older than this interval "
                   "(e.g. '30 days'): time travel before it stops working")
    c.add_argument("--cleanup-older-than", default="1 hour", help="delete the files compaction "
                   "replaced once they are this old (default '1 hour': open readers may still read them)")
    c.add_argument("--orphans-older-than", default="1 day", help="delete data files no snapshot "
                   "lists (left by killed runs) once they are this old (default '1 day': a younger one "
                   "may belong to a commit still in flight, which deleting it would break)")
    c.set_defaults(func=cmd_compact)

    en = sub.add_parser("encoders", help="list the available encoders")
    _with_format(en).set_defaults(func=cmd_encoders)

    d = sub.add_parser("demo", help="build a demo corpus and run the whole job on it")
    d.add_argument("--out", default="demo_out")
    d.add_argument("--quick", action="store_true", help="fewer clips and trials")
    d.set_defaults(func=cmd_demo)
    from .models_cmd import add_parsers
    add_parsers(sub, with_store, _with_format, _with_store_arg)
    for sp in _all_parsers(sub):  # also after the command, where users type it
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print the full traceback of any error")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (see :mod:`reels_emotion.errors`)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted: chunks committed so far are kept; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error ends as one line, or a traceback with --debug
        return report_error(exc, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
