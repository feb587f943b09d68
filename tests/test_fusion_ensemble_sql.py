""""mean" aggregation has two homes that must agree: the SQL the store runs
(``sql/aggregate.sql``: ``aggregate_windows``) and the ensemble's numpy
(``fusion.ensemble.video_probs``, kept because greedy selection averages every trial's
probabilities many times and one SQL round trip per trial would dominate it)."""
import numpy as np
import pytest

from featurestore.schema import CLASSES
from fusion.aggregate import aggregate_windows
from fusion.ensemble import video_probs
from fusion.oof import OOFPredictions


@pytest.mark.parametrize("seed", range(3))
def test_the_ensembles_mean_is_the_sql_mean(seed):
    rng = np.random.default_rng(seed)
    n_videos = 30
    windows = rng.integers(1, 9, n_videos)                          # windows per video
    video_id = np.repeat([f"v{i:03d}" for i in range(n_videos)], windows)
    window_idx = np.concatenate([np.arange(n) for n in windows]).astype(np.int32)
    probs = rng.dirichlet(np.ones(len(CLASSES)), len(video_id)).astype(np.float32)
    order = rng.permutation(len(video_id))                          # any row order
    oof = OOFPredictions(probs=probs[order], video_id=video_id[order], window_idx=window_idx[order])
    asked = np.array([f"v{i:03d}" for i in range(n_videos + 2)])    # two videos without windows

    numpy_mean = video_probs(oof, asked)
    sql = aggregate_windows(probs, video_id, window_idx, method="mean").set_index("video_id")
    sql_mean = np.stack([np.asarray(sql.loc[v, "probs"], np.float64) for v in asked[:n_videos]])
    np.testing.assert_allclose(numpy_mean[:n_videos], sql_mean, rtol=0, atol=1e-6)
    assert np.isnan(numpy_mean[n_videos:]).all()
    # and the class each picks (SQL ties break to the first class, as argmax does)
    assert (numpy_mean[:n_videos].argmax(axis=1)
            == [CLASSES.index(e) for e in sql.loc[asked[:n_videos], "emotion"]]).all()
