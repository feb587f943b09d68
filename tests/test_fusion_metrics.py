"""The one macro-F1 (fusion.metrics) is scikit-learn's, and every scoring path uses it."""
import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from fusion import aggregate, estimate, report
from fusion.metrics import class_scores, macro_f1


def _random(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n)
    pred = np.where(rng.random(n) < 0.4, y, rng.integers(-1, 8, n))     # -1: no prediction
    return rng, y, pred


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_is_sklearns_f1_score_over_the_label_set(seed):
    rng, y, pred = _random(seed)
    labels = np.unique(rng.choice(8, 5, replace=False))                  # not y's classes
    want = f1_score(y, pred, labels=labels, average="macro", zero_division=0)
    assert macro_f1(y, pred, labels) == pytest.approx(want, abs=1e-15)
    assert macro_f1(y, pred) == pytest.approx(                           # labels=None: y's classes
        f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0), abs=1e-15)
    w = rng.integers(0, 4, len(y))
    assert macro_f1(y, pred, labels, w) == pytest.approx(
        f1_score(y, pred, labels=labels, average="macro", zero_division=0, sample_weight=w), abs=1e-12)


def test_class_names_score_as_indices_do():
    names = np.array(list("abcdefgh"))
    _, y, pred = _random(7)
    labels = np.arange(6)
    by_name = macro_f1(names[y], np.where(pred < 0, "?", names[pred]), names[labels])
    assert by_name == pytest.approx(macro_f1(y, pred, labels), abs=1e-15)


def test_float_indices_score_as_integer_indices():
    _, y, pred = _random(5)
    labels = np.arange(6)
    assert macro_f1(y.astype(float), pred, labels.astype(float)) == macro_f1(y, pred, labels)


def test_class_scores_are_sklearns_precision_recall_f1_support():
    _, y, pred = _random(3)
    labels = np.arange(8)
    got = class_scores(y, pred, labels)
    want = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-15)


def test_every_scoring_path_is_the_one_macro_f1():
    """No second implementation: the old homes delegate to fusion.metrics."""
    _, y, pred = _random(11)
    labels = np.unique(y)
    one = macro_f1(y, pred, labels)
    assert aggregate.macro_f1 is macro_f1
    assert estimate.macro_f1_weighted(y, pred, labels) == one
    table = report.per_class_table(y, pred)
    assert table.iloc[-1]["f1"] == one       # y holds every scored class: the classes present
