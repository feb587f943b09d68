"""The project's expected errors: what a user can fix, as opposed to a bug.

Every layer raises these for input it cannot use (a path that is not a store, a malformed
manifest row, an unknown model id, a store without labels...). The command line prints
their message as one ``error:`` line and exits 2; any other exception is treated as a bug
(a generic ``ValueError`` from numpy or scikit-learn included). Subclasses keep the builtin
base that callers already catch (``ValueError``, ``LookupError``, ``RuntimeError``).
``StoreError`` is the store's one error type, shared by every module of the store.
"""
from __future__ import annotations

__all__ = ["UserError", "InputError", "MissingDataError", "StoreError"]


class UserError(Exception):
    """An expected error: the message names the file, row or value and what to do."""


class InputError(UserError, ValueError):
    """A value the user gave (an option, a name, a path's content) cannot be used."""


class MissingDataError(UserError, LookupError):
    """The store lacks what the command needs (no embedded videos, no labels, no model)."""


class StoreError(UserError, RuntimeError):
    """The store cannot do what was asked (wrong path, unknown encoder, failed commit...)."""
