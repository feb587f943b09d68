"""How the command line ends: exit codes and the one line a user reads when a command fails.

Exit 0: success. Exit 1: some rows or videos failed; the rest was done. Exit 2: the command
could not run. An expected error (:class:`featurestore.errors.UserError`, or a path that is
missing or unreadable) is one ``error:`` line naming the file, row or value and what to do;
any other exception is a bug: one line saying so and naming the file its traceback went to.
``--debug`` prints the traceback instead.
"""
from __future__ import annotations

import sys
import tempfile
import traceback
from typing import TextIO

from featurestore.errors import UserError

__all__ = ["EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "EXIT_INTERRUPTED", "is_expected", "one_line",
           "report_error"]

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130

#: Path errors: the file a user named is missing, a folder, or not readable. Their message
#: names the path, which is all a user needs.
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)


def is_expected(exc: BaseException) -> bool:
    """Whether ``exc`` is an error the user can fix (as opposed to a bug)."""
    return isinstance(exc, (UserError, *PATH_ERRORS))


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (a path error as ``path: reason``)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}; check the path"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def report_error(exc: BaseException, debug: bool = False, err: TextIO | None = None) -> int:
    """Print what the user needs about ``exc`` to ``err`` (stderr) and return the exit code."""
    err = err or sys.stderr
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=err)
    if is_expected(exc):
        print(f"error: {one_line(exc)}", file=err)
        return EXIT_USAGE
    if debug:
        print(f"error: unexpected {type(exc).__name__} (a bug; the traceback is above)", file=err)
        return EXIT_USAGE
    # A bug: keep the traceback in a file so the one line stays readable and nothing is lost.
    with tempfile.NamedTemporaryFile("w", prefix="reels-emotion-", suffix=".log", delete=False) as f:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=f)
    print(f"error: unexpected {type(exc).__name__}: {one_line(exc)}. This is a bug; the traceback "
          f"is in {f.name} (run again with --debug to print it)", file=err)
    return EXIT_USAGE
