"""One error model across the command line: every command, run against a path that is not a
store, a malformed manifest, an empty store and a store without labels, ends with the exit
code the README promises (0 done, 1 some rows failed, 2 could not run) and, when it cannot
run, one ``error:`` line that names the problem; a bug says it is one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from featurestore.errors import InputError, MissingDataError, UserError
from featurestore.store import FeatureStore
from reels_emotion import cli as cli_module


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path]:
    """A file that is not a store, an empty store, a store of unlabelled (test) videos with
    text vectors, and a malformed manifest (no video column)."""
    root = tmp_path_factory.mktemp("errors")
    (root / "not-a-store.txt").write_text("just a file\n")
    FeatureStore(root / "empty").close()
    store = FeatureStore(root / "nolabels")
    store.register_encoder("text-enc", "text", 4, "1", {"d": 4}, None, {}, "text-4")
    rng = np.random.default_rng(0)
    for i in range(3):
        store.put("windows", [{"video_id": f"te{i}", "window_idx": k, "start_s": k * .5,
                               "end_s": k * .5 + 1, "transcript": "saya senang"} for k in range(3)])
        store.write_embeddings("text-4", 4, [f"te{i}"] * 3, range(3),
                               rng.standard_normal((3, 4)).astype(np.float32))
    store.put("videos", [{"video_id": f"te{i}", "split": "test", "label": None, "status": "ok",
                          "manifest_row": i + 1} for i in range(3)])
    store.close()
    (root / "bad.csv").write_text("id,emotion\na,Joy\n")
    (root / "good.csv").write_text("id,video\nte0,te0.mp4\n")
    return {"bad_store": root / "not-a-store.txt", "empty": root / "empty",
            "nolabels": root / "nolabels", "bad_manifest": root / "bad.csv",
            "good_manifest": root / "good.csv", "out": root / "submission.csv"}


def _argv(command: str, store: Path, manifest: Path | None, out: Path) -> list[str]:
    """The command line of ``command`` against ``store``; ``manifest`` where it takes one."""
    s = ["--store", str(store)]
    m = ["--manifest", str(manifest)] if manifest else []
    return {
        "embed": ["embed", *s, *m, "--modalities", "text", "--quiet"],
        "speakers": ["speakers", *s],
        "tune-fusion": ["tune-fusion", *s, "--trials", "2", "--estimate", "off", "--quiet"],
        "predict": ["predict", *s, "--quiet"],
        "predict-video": ["predict-video", *s, "clip.mp4", "--quiet"],
        "export-submission": ["export-submission", *s, "--out", str(out), *m],
        "audit": ["audit", *s],
        "sql": ["sql", *s, "SELECT count(*) AS n FROM videos"],
        "snapshots": ["snapshots", *s],
        "use-encoders": ["use-encoders", *s],
        "compact": ["compact", *s],
        "models list": ["models", "list", *s],
        "models show": ["models", "show", *s, "no-such-model"],
        "remove": ["remove", *s, *(m or ["--videos", "no-such-video"])],
    }[command]


NO_MODEL = "error: the store has no fitted model; run `cli.py tune-fusion"
#: (command, scenario) -> (exit code, how stderr's first line starts; None: no error line).
#: A scenario that does not apply to a command (embed into an empty store is its normal use)
#: is left out.
EXPECTED: dict[tuple[str, str], tuple[int, str | None]] = {
    ("embed", "bad_store"): (2, "error: --store {store} is a file"),
    ("embed", "bad_manifest"): (2, "error: manifest {manifest} lacks column(s) video"),
    ("remove", "bad_manifest"): (2, "error: manifest {manifest} lacks column(s) video"),
    ("export-submission", "bad_manifest"): (2, "error: manifest {manifest} lacks column(s) video"),
    **{(c, "bad_store"): (2, "error: {store} is not a feature store")
       for c in ("speakers", "tune-fusion", "predict", "predict-video", "export-submission", "audit",
                 "sql", "snapshots", "use-encoders", "compact", "models list", "models show", "remove")},
    **{(c, scenario): code for scenario in ("empty", "nolabels") for c, code in {
        "speakers": (2, "error: speaker groups: no voice vectors in the store"),
        "tune-fusion": (2, "error: no windows in fusion_vectors for the 0 labelled training video(s); "
                           "embed a labelled manifest"),
        "predict": (2, NO_MODEL),
        "predict-video": (2, NO_MODEL),
        "export-submission": (2, "error: the store {store} has no test videos" if scenario == "empty"
                              else NO_MODEL),
        "audit": (0, None), "sql": (0, None), "snapshots": (0, None), "use-encoders": (0, None),
        "compact": (0, None), "models list": (0, None),
        "models show": (2, "error: no model 'no-such-model' in the store {store}"),
        "remove": (2, "error: no video 'no-such-video' in the store {store}; nothing was removed"),
    }.items()},
}


@pytest.mark.parametrize("command, scenario", sorted(EXPECTED), ids=lambda v: str(v).replace(" ", "-"))
def test_every_command_fails_with_one_line_and_the_right_code(command, scenario, places, capsys):
    store = places["empty"] if scenario == "bad_manifest" else places[scenario]
    manifest = places["bad_manifest"] if scenario == "bad_manifest" else (
        places["good_manifest"] if command == "embed" else None)
    code, first = EXPECTED[command, scenario]
    assert cli_module.main(_argv(command, store, manifest, places["out"])) == code
    err = capsys.readouterr().err
    lines = err.splitlines()
    if first is None:
        assert not any(line.startswith("error:") for line in lines), err
        return
    assert lines and lines[0].startswith(first.format(store=store, manifest=manifest)), err
    assert "This is a bug" not in err and "Traceback" not in err
    assert sum(line.startswith("error:") for line in lines) == 1, err


def test_every_command_is_in_the_matrix():
    """A new command joins the error matrix (every parser but those needing no store)."""
    parser = cli_module.build_parser()
    names = set()
    for name, sp in parser._subparsers._group_actions[0].choices.items():
        nested = [a for a in sp._actions if a.__class__.__name__ == "_SubParsersAction"]
        names |= {f"{name} {n}" for n in nested[0].choices} if nested else {name}
    assert names - {"encoders", "demo"} == {c for c, _ in EXPECTED}


@pytest.mark.parametrize("argv, first", [
    (["embed", "--store", "S", "--manifest", "m.csv", "--modalities", "audio,txt"],
     "error: reels-emotion embed: argument --modalities: 'audio,txt': unknown modality 'txt'"),
    (["predict", "--store", "S", "--format", "xml"], "error: reels-emotion predict: argument --format"),
    (["predict-video", "x.mp4", "--text-unit", "line"], "error: reels-emotion predict-video: argument --text-unit"),
    (["models"], "error: reels-emotion models: the following arguments are required"),
])
def test_usage_errors_are_one_line_with_exit_2(argv, first, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_module.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(first) and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("raised, expected", [
    (MissingDataError("the store has no labels; embed a labelled manifest"), True),
    (InputError("--shard '5/2': need 0 <= i < n"), True),
    (UserError("plain user error"), True),
    (FileNotFoundError(2, "No such file or directory", "/no/such/file.csv"), True),
    (ValueError("operands could not be broadcast together"), False),   # numpy's, not the user's
    (KeyError("video_id"), False),                                       # a LookupError, a bug
    (RuntimeError("CUDA error: device-side assert"), False),
])
def test_expected_errors_are_one_line_others_are_bugs(raised, expected, monkeypatch, capsys):
    def broken(args):
        raise raised
    monkeypatch.setattr(cli_module, "cmd_encoders", broken)
    assert cli_module.main(["encoders"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    if expected:
        assert "bug" not in err
        assert "/no/such/file.csv: No such file or directory" in err or str(raised).strip("'") in err
    else:
        assert "This is a bug; the traceback is in " in err
        log = Path(err.split("traceback is in ")[1].split(" ")[0])
        assert type(raised).__name__ in log.read_text()
        log.unlink()
    # --debug: the traceback on stderr instead, and still exit 2 (1 means "some rows failed")
    assert cli_module.main(["encoders", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_encoders_prints_every_format(fmt, capsys):
    assert cli_module.main(["encoders", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        rows = json.loads(out)
        assert {"name", "modality", "dim", "default"} <= set(rows[0])
    elif fmt == "csv":
        assert out.splitlines()[0].startswith("name,modality,dim,default")
    else:
        assert out.split()[:2] == ["name", "modality"]


def test_a_bad_option_value_is_the_first_line_before_any_work(places, capsys):
    """embed checks its options before reading the manifest, so the error leads stderr."""
    argv = ["embed", "--store", str(places["empty"]), "--manifest", str(places["good_manifest"]),
            "--shard", "5/2", "--modalities", "text", "--quiet"]
    assert cli_module.main(argv) == 2
    assert capsys.readouterr().err.splitlines()[0] == "error: --shard '5/2': need 0 <= i < n"


@pytest.mark.parametrize("option, first", [
    (["--folds", "1"], "error: --folds 1: cross-validation needs 2 or more folds"),
    (["--families", "lightgbm,nope"], "error: unknown model family ['nope']"),
    (["--encoders", "txt=3f2a9c1b0d4e"], "error: --encoders 'txt=3f2a9c1b0d4e': unknown modality 'txt'"),
])
def test_tune_fusion_bad_option_values_exit_2(option, first, places, capsys):
    assert cli_module.main(["tune-fusion", "--store", str(places["nolabels"]), "--quiet", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith(first) and len(err.splitlines()) == 1, err
