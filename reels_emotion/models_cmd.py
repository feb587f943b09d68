"""``models list``, ``models show ID`` and ``remove``: thin shells over
:mod:`fusion.inventory` and :mod:`featurestore.remove`."""
from __future__ import annotations

import json
import sys
from typing import Callable

from featurestore.errors import InputError

from .errors import EXIT_OK

__all__ = ["add_parsers", "cmd_models_list", "cmd_models_show", "cmd_remove"]


def cmd_models_list(args, store, print_table: Callable) -> int:
    """Every fitted model of the store, newest first."""
    from fusion.inventory import models_table
    print_table(models_table(store), args.format)
    return EXIT_OK


def cmd_models_show(args, store, print_table: Callable) -> int:
    """One model's report: estimate, per-class table, feature sets, snapshot, lineage."""
    from fusion.inventory import model_report
    report = model_report(store, args.model_id)
    if args.format == "json":
        print(json.dumps(report.to_dict(), default=str, ensure_ascii=False))
    elif args.format == "csv":
        # CSV holds one table: the per-class rows, the part a spreadsheet wants.
        if report.per_class is None:
            raise InputError(f"model {args.model_id} has no nested predictions, so no per-class "
                             "table to write as CSV; use --format table or json")
        report.per_class.to_csv(sys.stdout, index=False)
    else:
        print(report.to_text())
    return EXIT_OK


def _ids(spec: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]`` (empty parts dropped)."""
    return [v.strip() for v in spec.split(",") if v.strip()]


def cmd_remove(args, store, print_table: Callable) -> int:
    """Delete the named videos, or a manifest's, from every table in one commit."""
    from featurestore.remove import remove_videos
    if bool(args.videos) == bool(args.manifest):
        raise InputError("remove needs exactly one of --videos ID[,ID...] or --manifest M.csv")
    if args.manifest:
        from featurestore.manifest import manifest_ids
        ids = manifest_ids(args.manifest, encoding=args.encoding)
    else:
        ids = _ids(args.videos)
    # A manifest may list rows that were never stored (rejected, or another version's): skip them.
    print(remove_videos(store, ids, missing_ok=bool(args.manifest)).summary())
    return EXIT_OK


def add_parsers(sub, with_store: Callable, with_format: Callable, run: Callable) -> None:
    """The ``models`` and ``remove`` sub-commands; ``run(cmd)`` wraps a command taking the store."""
    mo = sub.add_parser("models", help="list the store's fitted models, or show one model's report")
    msub = mo.add_subparsers(dest="models_command", required=True)
    ml = with_format(with_store(msub.add_parser("list", help="every fitted model, newest first: "
                                                "created, family and variant, nested estimate, "
                                                "feature sets, snapshot")))
    ml.set_defaults(func=run(cmd_models_list))
    ms = with_format(with_store(msub.add_parser("show", help="one model's report: nested estimate with "
                                                "its interval, per-class table, lineage, feature "
                                                "sets, the snapshot it was trained on")))
    ms.add_argument("model_id", help="a model id (see `models list`)")
    ms.set_defaults(func=run(cmd_models_show))

    rm = with_store(sub.add_parser("remove", help="delete videos (all their rows in every table) "
                                   "from the store in one transaction"))
    rm.add_argument("--videos", help="video ids, comma-separated")
    rm.add_argument("--manifest", help="remove every id of this manifest CSV (ids the store does "
                    "not hold are skipped and counted; --videos refuses them)")
    rm.add_argument("--encoding", help="manifest text encoding (default UTF-8)")
    rm.set_defaults(func=run(cmd_remove))
