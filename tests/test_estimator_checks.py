"""scikit-learn's estimator checks (``check_estimator``) on every fusion estimator.

Each classifier runs twice: with ``n_classes=None`` (scikit-learn's label convention: the
classes of ``y``, any labels) and in the project's fixed label space (``n_classes=8``:
``y`` holds class indices, ``predict_proba`` always has 8 columns). The checks that do not
apply, and why, are :data:`EXPECTED_FAILURES`; every other check passes.
"""
from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from fusion.gbm import LGBMClassifier
from fusion.linear import LogRegClassifier
from fusion.mlp import MLPClassifier
from fusion.preprocess import Imputer
from fusion.stacking import SpecialistStack

#: Small settings, so that the ~60 checks of each estimator take seconds.
SMALL = {
    LGBMClassifier: dict(n_estimators=30),
    # lr and batch size for the checks' 300-row toy problems (the defaults are for windows).
    MLPClassifier: dict(hidden=16, depth=1, max_epochs=40, lr=1e-2, batch_size=32, device="cpu"),
    SpecialistStack: dict(n_inner_folds=2),
}


def _classifiers(n_classes):
    kw = {} if n_classes == "default" else {"n_classes": n_classes}
    return [LogRegClassifier(**kw), LogRegClassifier(knn_weight=0.3, knn_k=5, **kw),
            LGBMClassifier(**SMALL[LGBMClassifier], **kw), MLPClassifier(**SMALL[MLPClassifier], **kw),
            SpecialistStack(fusion="stack", **SMALL[SpecialistStack], **kw),
            SpecialistStack(fusion="late", **SMALL[SpecialistStack], **kw)]


EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "sample weights are relative: normalised to mean 1 together with the class weights, so a "
        "weight of 2 is not a repeated row under the same regularisation, and the early-stopping "
        "split and inner folds are drawn over rows"),
    "check_class_weight_classifiers": (
        "class_weight takes None, 'balanced' or 'sqrt' (the search space's choices), not a dict"),
}
#: The project's label space (n_classes=8) by design: labels are class indices
#: 0..n_classes-1 and predict_proba keeps a column for every class, seen in fit or not, so
#: the probabilities of models fitted on different folds line up.
FIXED_LABEL_SPACE = {
    "check_classifiers_classes": "labels must be class indices 0..7, not strings",
    "check_classifiers_train": "predict_proba has 8 columns for the toy problems' 2 or 3 classes",
}


def expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, Imputer):
        return {}
    if estimator.n_classes is None:
        return dict(EXPECTED_FAILURES)
    return {**EXPECTED_FAILURES, **FIXED_LABEL_SPACE}


@parametrize_with_checks([*_classifiers(None), Imputer(blocks=None)], expected_failed_checks=expected_failures)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(_classifiers("default"), expected_failed_checks=expected_failures)
def test_scikit_learn_checks_in_the_fixed_label_space(estimator, check):
    check(estimator)
