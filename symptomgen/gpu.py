"""Ask for a GPU on Hugging Face ZeroGPU Spaces; do nothing anywhere else.

On a ZeroGPU Space a GPU is attached only while a function decorated with
``spaces.GPU`` runs, for at most the ``duration`` it asked for.  ``gpu(seconds)`` or
``gpu(duration_fn)`` applies that decorator when the ``spaces`` package is importable
*and* the Space runs on ZeroGPU (``SPACES_ZERO_GPU``: ``Settings.zero_gpu``); elsewhere (CPU basic,
a T4 Space, a laptop, CI) it returns the function unchanged.  ``spaces`` is
preinstalled on Spaces and deliberately not in requirements.txt.

``generation_seconds`` sizes a generation request: ZeroGPU schedules short requests
first and refuses ones above the visitor's quota, so ask for what the call needs, with
headroom, capped at ``max_seconds()`` (``SYMPTOMGEN_ZEROGPU_MAX_S``: ``Settings.zero_gpu_max_s``).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any, Callable, TypeVar, Union

from .settings import current

F = TypeVar("F", bound=Callable[..., Any])
Duration = Union[int, float, Callable[..., float]]

ZERO_GPU_MIN_SECONDS = 20


def max_seconds() -> int:
    """The longest GPU call to ask for (``Settings.zero_gpu_max_s``), read when asked."""
    return current().zero_gpu_max_s


def on_zero_gpu() -> bool:
    """Whether we run on a ZeroGPU Space with the ``spaces`` package available."""
    if not current().zero_gpu:
        return False
    try:
        return importlib.util.find_spec("spaces") is not None
    except (ImportError, ValueError):  # a broken or half-imported ``spaces``
        return False


def _clamp(seconds: float) -> int:
    return int(min(max_seconds(), max(ZERO_GPU_MIN_SECONDS, math.ceil(seconds))))


def generation_seconds(max_new_tokens: int = 48, num_sequences: int = 1) -> int:
    """GPU seconds for one generation call (a few ms per token; mostly model transfer)."""
    return _clamp(10 + 0.05 * max_new_tokens * max(1, num_sequences))


def gpu(duration: Duration = 60) -> Callable[[F], F]:
    """Decorator: ``spaces.GPU(duration=...)`` on ZeroGPU, a no-op elsewhere.

    ``duration`` is a number of seconds, or a function called with the decorated
    function's arguments that returns seconds (ZeroGPU's dynamic duration); either is
    clamped to ``[ZERO_GPU_MIN_SECONDS, max_seconds()]``.
    """
    if not (callable(duration) or isinstance(duration, (int, float))) or isinstance(duration, bool):
        raise TypeError(f"gpu() takes seconds or a function returning seconds, got {duration!r}.")

    def decorate(fn: F) -> F:
        if not on_zero_gpu():
            return fn
        import spaces

        if callable(duration):
            @functools.wraps(duration)
            def sized(*args: Any, **kwargs: Any) -> int:
                return _clamp(float(duration(*args, **kwargs)))

            return spaces.GPU(duration=sized)(fn)
        return spaces.GPU(duration=_clamp(duration))(fn)

    return decorate
