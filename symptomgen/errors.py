"""The user-facing error types and the one helper that turns an exception into the sentence a user sees."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TrainingFailed(RuntimeError):
    """Training stopped on an error the user can act on (the message says which)."""
