"""The store's one error type, shared by every module of the store."""
from __future__ import annotations


class StoreError(RuntimeError):
    """The store cannot do what was asked (wrong path, unknown encoder, failed commit...)."""
