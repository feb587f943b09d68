"""An encoder's width is declared twice, at registration and by its class; they must agree.

Fast: the classes are imported, not built, except where the class decides its width in its
constructor without loading weights (the Whisper configurations). The slow
``test_encoders.py::test_every_registered_encoder_is_what_its_registration_says`` builds
every one, weights included, and ``get_encoder`` itself now refuses a mismatch.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from featurestore.encoders import AudioEncoder, get_encoder, register_encoder
from featurestore.encoders.registry import _REGISTRY

#: Registrations whose class sets its width only once weights are loaded (a Hugging Face
#: model's hidden size); the build-time check covers them.
WIDTH_FROM_WEIGHTS = {"mpnet"}
BUILT_IN = sorted(n for n, s in _REGISTRY.items() if isinstance(s.factory, str))


def _class(spec):
    module, _, attr = spec.factory.partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_registered_dim_is_the_class_dim(name):
    spec = _REGISTRY[name]
    cls = _class(spec)
    assert cls.modality == spec.modality
    if name in WIDTH_FROM_WEIGHTS:
        pytest.skip("width known once the weights load (checked when built)")
    if cls.dim:                                 # declared on the class: compare, build nothing
        assert cls.dim == spec.dim, f"{name}: class {cls.__name__}.dim {cls.dim}, registered {spec.dim}"
    else:                                       # decided by the constructor from its options
        assert spec.build().dim == spec.dim


class _Four(AudioEncoder):
    """Four zeros per window."""

    name = "four"
    dim = 4

    def config(self):
        return {}

    def weights_sha256(self):
        return None

    def encode(self, batch):
        return np.zeros((len(batch), self.dim), np.float32), [None] * len(batch)


def test_a_registration_that_disagrees_with_its_class_is_refused_when_built():
    register_encoder("test-four-as-five", _Four, "audio", 5, "wrong width", replace=True)
    try:
        with pytest.raises(ValueError, match=r"'test-four-as-five'.*dim 5.*_Four.*dim 4"):
            get_encoder("test-four-as-five")
        register_encoder("test-four-as-five", _Four, "audio", 4, "right width", replace=True)
        assert get_encoder("test-four-as-five", device="cpu").dim == 4
    finally:
        _REGISTRY.pop("test-four-as-five", None)
