"""The training process of a server job (``jobs``): what runs in the child, and how its end is told.

``child_main`` runs ``trainer.run_training`` (or a test's stand-in) in the spawned process, at a lower priority,
ignoring the terminal's Ctrl-C, and sends each record to the server over the pipe, then ``JobFailed`` with one
sentence if an exception ended it.  It watches its parent: when the server dies, training stops by itself.
``death_reason`` words the end of a process that sent neither a summary nor a failure (killed, crashed).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from .errors import UserError, failure_reason
from .events import RunSummary
from .records import RunStatus
from .settings import current

CHILD_NAME = "symptomgen-training"  # app.py skips building the page in a process with this name
_NICE = 10  # training yields the CPU to the server's requests


@dataclass(frozen=True)
class JobFailed:
    """Sent by the training process when an exception ended it: why, in one sentence without a server path."""

    message: str


def run_training_in_child(*args, **kwargs) -> RunSummary:
    """``trainer.run_training``, imported in the child only (the server never imports torch to start a job)."""
    from .trainer import run_training

    return run_training(*args, **kwargs)


def _watch_parent(stop) -> None:
    """In the child: when the server process ends, ask training to stop (it keeps the best epoch and records
    "stopped") instead of training on as an orphan."""
    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), stop.set()), daemon=True, name="watch-server").start()


def child_main(train_fn: Callable[..., Any], args: tuple, kwargs: dict, conn, stop) -> None:
    """The training process: run ``train_fn`` and send each record, then how it failed if it did, to the server."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the server's terminal is the server's to handle
    with contextlib.suppress(OSError, AttributeError):
        os.nice(_NICE)
    _watch_parent(stop)

    def send(record) -> None:
        try:
            conn.send(record)
        except (OSError, ValueError):
            pass  # the server is gone; the watcher has asked training to stop

    try:
        train_fn(*args, send, stop, **kwargs)
    except BaseException as exc:  # noqa: BLE001 (everything is reported, then the process ends)
        if not isinstance(exc, UserError):
            traceback.print_exc()  # for the server's log; the page gets one sentence
        send(JobFailed(failure_reason(exc)))
    finally:
        conn.close()


def death_reason(exitcode: int | None, *, shutting_down: bool, terminated: bool) -> tuple[RunStatus, str]:
    """How a training process that ended without a summary or a failure report is recorded, in one sentence."""
    if shutting_down:
        return RunStatus.INTERRUPTED, ("The server shut down during training; the best finished epoch is kept, "
                                       "and the run can be resumed from its last checkpoint.")
    if terminated:
        return RunStatus.STOPPED, (f"Stopped on request: training did not reach a stopping point within "
                                   f"{current().stop_grace_s:g} s, so its process was ended; the best finished "
                                   "epoch is kept.")
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (often the system running out of memory)" if -exitcode == signal.SIGKILL else ""
        return RunStatus.INTERRUPTED, (f"The training process was killed by {name}{why}; the best finished epoch "
                                       "is kept, and the run can be resumed from its last checkpoint.")
    return RunStatus.FAILED, (f"The training process ended unexpectedly (exit code {exitcode}); the best finished "
                              "epoch is kept.")
