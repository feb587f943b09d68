"""`reels-emotion demo` runs the demo pipeline of the command-line package (the libraries make
no media), wired without running it: the real run is minutes of models (`make demo`)."""
from pathlib import Path

import reels_emotion.demo as demo
from reels_emotion.cli import main


def test_the_demo_command_runs_reels_emotion_demo(monkeypatch, tmp_path):
    seen = {}

    def fake_run_demo(out: Path, quick: bool = False) -> int:
        seen.update(out=Path(out), quick=quick)
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert main(["demo", "--out", str(tmp_path / "d"), "--quick"]) == 0
    assert seen == {"out": tmp_path / "d", "quick": True}
    assert demo.build_demo_corpus.__module__ == "reels_demo.corpus"
