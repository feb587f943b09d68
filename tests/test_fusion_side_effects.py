"""No side effects at import or inside fit: heavy libraries load when used, global state stays."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "lightgbm", "optuna", "matplotlib")


def _loaded_after(statements: str) -> list[str]:
    """The HEAVY modules a fresh interpreter has loaded after running ``statements``."""
    code = f"import sys\n{statements}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_importing_fusion_and_its_serving_parts_loads_no_heavy_library():
    assert _loaded_after("import fusion") == []
    assert _loaded_after("from fusion import FusionModel, load_model, load_window_data, aggregate_windows, "
                         "FAMILIES\nimport fusion.predict, fusion.registry, fusion.gbm, fusion.linear, "
                         "fusion.stacking, fusion.report, fusion.space, fusion.cv, featurestore.export") == []


def test_importing_the_tuner_does_not_touch_matplotlib():
    # Optuna is the tuner's own library; matplotlib waits for the first report.
    assert _loaded_after("import fusion.tune") == ["optuna"]


def test_mlp_fit_leaves_torch_global_generator_and_threads_alone():
    torch = pytest.importorskip("torch")
    from fusion.mlp import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    X[::7, 3:] = np.nan
    y = rng.integers(0, 3, 120)
    threads = torch.get_num_threads()
    probas = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        est = MLPClassifier(hidden=8, depth=1, dropout=0.3, max_epochs=3, blocks=[(0, 3), (3, 6)], device="cpu",
                            random_state=5)
        probas.append(est.fit(X, y).predict_proba(X))
        assert torch.equal(torch.get_rng_state(), state), "fit drew from or reseeded torch's global generator"
        assert torch.get_num_threads() == threads, "fit left torch's thread count changed"
    np.testing.assert_array_equal(probas[0], probas[1])  # the estimator's own seed decides, not the global one


def test_report_figures_leave_matplotlib_state_alone(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna

    from fusion.report import write_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    rc = {k: str(v) for k, v in matplotlib.rcParams.items()}
    figures = plt.get_fignums()
    paths = write_report(tmp_path / "report", np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), study, "title")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    assert plt.get_fignums() == figures, "a figure was left open"
    assert {k: str(v) for k, v in matplotlib.rcParams.items()} == rc, "rcParams (style) changed"
