"""Model files of format 1, for tests/test_fusion_models.py's test that old files still load.

Made with the code of commit f593941 (before the scikit-learn imputer and neighbour vote):

    git archive f593941 | tar -x -C /tmp/old && cd /tmp/old && \
        python <this file> <repo>/tests/data/fusion_model_v1

Writes one model directory per family (tiny synthetic data, few rounds/epochs) and
``expected.npz``: every model's ``predict_proba`` on the data's windows, as the old code gave.
"""
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [".", "tests"]
from fusion.data import load_window_data, pool_numpy  # noqa: E402
from fusion.gbm import LGBMClassifier  # noqa: E402
from fusion.linear import LogRegClassifier  # noqa: E402
from fusion.mlp import MLPClassifier  # noqa: E402
from fusion.modelio import FusionModel  # noqa: E402
from fusion.stacking import SpecialistStack  # noqa: E402
from test_fusion_synthdata import synthetic_con  # noqa: E402

out = Path(sys.argv[1])
data = load_window_data(synthetic_con(n_videos=24, seed=3, signal=0.8))
y = data.video_labels()[data.video_code]
yv = data.video_labels()
blocks = [(s.start, s.stop) for s in data.slices.values()]
pooled = pool_numpy(data.X, data.video_code, data.n_videos, data.slices, "mean")
pblocks, start = [], 0
for d in data.dims.values():
    pblocks.append((start, start + d))
    start += d + 1
common = dict(modalities=tuple(data.dims), dims=data.dims)
models = {
    "mlp": FusionModel("mlp", "mean", MLPClassifier(hidden=16, depth=1, max_epochs=3, blocks=blocks, device="cpu")
                       .fit(data.X, y, groups=data.video_code), model_id="v1-mlp", **common),
    "lightgbm": FusionModel("lightgbm", "mean", LGBMClassifier(n_estimators=5).fit(data.X, y, groups=data.video_code),
                            model_id="v1-lightgbm", **common),
    "pooled-logreg": FusionModel("pooled-logreg", "mean",
                                 LogRegClassifier(C=0.5, knn_weight=0.3, knn_k=5, blocks=pblocks).fit(pooled, yv),
                                 pool_stats="mean", model_id="v1-pooled-logreg", **common),
    "stacked": FusionModel("stacked", "mean", SpecialistStack(blocks=pblocks, names=list(data.dims), fusion="stack",
                                                              n_inner_folds=3).fit(pooled, yv),
                           pool_stats="mean", model_id="v1-stacked", **common),
}
models["ensemble"] = FusionModel("ensemble", "mean", None, members=[models["pooled-logreg"], models["mlp"]],
                                 member_weights=[0.6, 0.4], model_id="v1-ensemble", **common)
expected = {}
for name, model in models.items():
    model.save(out / name)
    expected[name] = model.predict_proba(data.X, data.video_id)
np.savez_compressed(out / "expected.npz", **expected)
print({k: v.shape for k, v in expected.items()})
