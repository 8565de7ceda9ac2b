"""Every error a person can act on, under one base class, and the helper that turns one into the line they see.

Both doors (the CLI and the web page) catch ``UserError`` and show its first line as is.  Anything else is a
bug or a broken machine: the doors log it with its traceback and show a short "internal error" line.  The
subclasses keep the built-in base their callers already expect (a bad value is still a ``ValueError``).
"""

from __future__ import annotations

import errno
import re

# An absolute path (POSIX, or Windows with a drive): at least two components, so "a/b" or "1/2" stay.
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s'\"\\/:,;()]+){2,}[\\/]?")
_DISK_FULL = ("no space left on device", "storagefull", "disk quota exceeded")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UserError(Exception):
    """Something the person asked for cannot be done; the message says why in one sentence."""


class InvalidInput(UserError, ValueError):
    """A setting, name or value is out of range or malformed."""


class DataError(InvalidInput):
    """The data cannot be used for training; the message names the file and the columns."""


class RunNotFoundError(InvalidInput):
    """The named run does not exist (or the name would leave the runs folder)."""


class RunNotReady(InvalidInput):
    """The run exists but cannot be used for this: it is still training, or has no saved model."""


class ModelLoadError(InvalidInput):
    """A model or tokenizer could not be loaded; the message says which and why."""


class ShareError(InvalidInput):
    """A run cannot be exported, imported or pushed; the message says why in one sentence."""


class TrainingFailed(UserError, RuntimeError):
    """Training stopped on an error the user can act on (the message says which)."""


class QuotaExceeded(UserError, RuntimeError):
    """The runs folder is at its limit (runs or bytes); the message says how to free space."""


class TrainingBusyError(UserError, RuntimeError):
    """A training job is already running; the message says so in one sentence."""


class HubUnreachableError(UserError, RuntimeError):
    """The Hub could not be reached and the thing asked for is not cached locally."""


class EvaluationCancelled(UserError, RuntimeError):
    """An evaluation was cancelled (its page went away, or a newer request replaced it)."""


def internal_error_line(exc: BaseException) -> str:
    """What a person sees for an error that is not theirs (the traceback goes to the log)."""
    return f"Internal error ({type(exc).__name__}): {first_line(exc)[:200]}. Details are in the server log."


def without_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last component: a message shown to a visitor must not
    reveal where this server keeps its files (temp folders, the runs folder)."""
    return _PATH.sub(lambda m: m.group(0).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1], text)


def is_disk_full(exc: BaseException) -> bool:
    """The disk (or the user's quota) is full, however the library that hit it reported it."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(mark in str(exc).lower() for mark in _DISK_FULL)


def disk_full_line(then: str = "resume the run") -> str:
    """The full-disk sentence, ending with what to do ``then`` (a training resumes; an import is tried again)."""
    return f"The disk is full (no space left on device): delete old runs to free space, then {then}."


DISK_FULL = disk_full_line()


def failure_reason(exc: BaseException, then: str = "resume the run") -> str:
    """One sentence saying why a job failed, for its run record and the person who started it: a ``UserError``'s
    own sentence; a full disk (saying what to do ``then``) or another file error in words; anything else as its
    type and first line.  Never a path of this machine."""
    if is_disk_full(exc):
        return disk_full_line(then)
    if isinstance(exc, UserError):
        return without_paths(first_line(exc))
    if isinstance(exc, OSError):
        return f"A file could not be read or written ({exc.strerror or type(exc).__name__})."
    if isinstance(exc, MemoryError):
        return "Out of memory: lower the batch size or max length, or choose a smaller model."
    return without_paths(f"{type(exc).__name__}: {first_line(exc)}")[:300]
