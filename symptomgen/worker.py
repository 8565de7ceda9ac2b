"""The training process of a server job (``launchers.ChildProcessLauncher``): what runs in the child.

``child_main`` runs ``trainer.run_training`` (or a test's stand-in) in the spawned process, at a lower priority,
ignoring the terminal's Ctrl-C, and sends each record to the server over the pipe, then ``JobFailed`` with one
sentence (``outcomes.failure``) if an exception ended it.  It watches its parent: when the server dies, training
stops by itself.
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

from .errors import UserError
from .events import RunSummary
from .outcomes import failure, mark_server_gone

CHILD_NAME = "symptomgen-training"  # app.py skips building the page in a process with this name
_NICE = 10  # training yields the CPU to the server's requests


@dataclass(frozen=True)
class JobFailed:
    """Sent by the training process when an exception ended it: why, in one sentence without a server path (a
    person sees it behind ``outcomes.failed_line``'s prefix)."""

    message: str


def run_training_in_child(*args, **kwargs) -> RunSummary:
    """``trainer.run_training``, imported in the child only (the server never imports torch to start a job).

    The child is a fresh interpreter: the server's ``quiet_libraries`` does not reach it, so it is called here,
    or every save prints transformers' "Writing model shards" bar into the server's log."""
    from . import quiet_libraries
    from .trainer import run_training

    quiet_libraries()

    return run_training(*args, **kwargs)


def _watch_parent(stop) -> None:
    """In the child: when the server process ends, ask training to stop (it keeps the best epoch and records
    "stopped") instead of training on as an orphan."""
    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), mark_server_gone(), stop.set()), daemon=True,
                         name="watch-server").start()


def child_main(train_fn: Callable[..., Any], args: tuple, kwargs: dict, conn, stop) -> None:
    """The training process: run ``train_fn`` and send each record, then how it failed if it did, to the server."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the server's terminal is the server's to handle
    # SIGTERM is the server going (its shutdown, or a service manager stopping every process): stop at the next
    # step and record the run as interrupted by the shutdown.  A person's Stop comes through ``stop`` alone.
    signal.signal(signal.SIGTERM, lambda *_: (mark_server_gone(), stop.set()))
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
        send(JobFailed(failure(exc)))
    finally:
        conn.close()
