"""How a run ended, in words: the status and the one sentence that its record, its summary and its job show.

Every ending is worded here and nowhere else: a run that trained to its end, stopped (on request, on its time
budget, on the disk limit, early) or ran out of memory (``of_training``); one that an exception ended
(``of_exception``); one whose process died without a word (``of_death``); one whose process could not even start
(``could_not_start``).  A failure's reason travels bare (in the run's record, over the job's pipe); a person sees
it behind "Training failed: ", added by ``failed_line`` alone.  No torch here: the server words a child's death
without importing it.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Protocol

from .config import TrainConfig
from .errors import TrainingFailed, failure_reason, without_paths
from .records import RunStatus
from .settings import current

OOM_MESSAGE = "Out of memory: lower the batch size or max length. The best finished epoch is kept."
INTERRUPTED_MESSAGE = "Interrupted; resume the run to continue."
SHUT_DOWN_MESSAGE = ("The server shut down during training; the best finished epoch is kept, and the run can be "
                     "resumed from its last checkpoint.")
# Set in a training process when its stop came from the server going away (its SIGTERM, or the server process
# gone), not from a person's Stop: the run then reads "interrupted", never "stopped on request".
_server_gone = threading.Event()


def mark_server_gone() -> None:
    """This training process is stopping because the server is going: its run is interrupted, not stopped."""
    _server_gone.set()


STOPPED_MESSAGE = "Stopped on request; the best finished epoch is kept."
STOPPED_EMPTY_MESSAGE = "Stopped on request before the first epoch finished; nothing to keep."
_FAILED = "Training failed: "


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its status and one sentence (empty for a plain finish with nothing to explain)."""

    status: RunStatus
    message: str


def failed_line(reason: str) -> str:
    """What a person sees for a run that failed on ``reason``: the one place the "Training failed: " is added."""
    return _FAILED + reason


class RunFailed(TrainingFailed):
    """Training itself raised an error a person can act on: read as "Training failed: <reason>" (the CLI's line),
    while the run records, and the job receives, ``reason`` alone."""

    def __init__(self, reason: str):
        super().__init__(failed_line(reason))
        self.reason = reason

    def __reduce__(self):  # pickled (ZeroGPU's process boundary) from its reason, not from its shown line
        return type(self), (self.reason,)


def failure(exc: BaseException) -> str:
    """The reason an exception ended a run, in one sentence without a server path (and without the prefix)."""
    return without_paths(exc.reason) if isinstance(exc, RunFailed) else failure_reason(exc)


def could_not_start(exc: BaseException) -> str:
    """A training process that could not be started at all."""
    return f"Training could not start: {failure_reason(exc)}"


def of_exception(exc: BaseException) -> Outcome:
    """A run that ``exc`` ended: interrupted (Ctrl-C, exit), else failed with its reason."""
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit
        return Outcome(RunStatus.INTERRUPTED, INTERRUPTED_MESSAGE)
    return Outcome(RunStatus.FAILED, failure(exc))


def of_death(exitcode: int | None, *, shutting_down: bool, terminated: bool) -> Outcome:
    """A training process that ended without a summary or a failure report (killed, crashed, ended by us)."""
    if shutting_down:
        return Outcome(RunStatus.INTERRUPTED, SHUT_DOWN_MESSAGE)
    if terminated:
        return Outcome(RunStatus.STOPPED, f"Stopped on request: training did not reach a stopping point within "
                                          f"{current().stop_grace_s:g} s, so its process was ended; the best "
                                          "finished epoch is kept.")
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (often the system running out of memory)" if -exitcode == signal.SIGKILL else ""
        return Outcome(RunStatus.INTERRUPTED, f"The training process was killed by {name}{why}; the best finished "
                                              "epoch is kept, and the run can be resumed from its last checkpoint.")
    return Outcome(RunStatus.FAILED, f"The training process ended unexpectedly (exit code {exitcode}); the best "
                                     "finished epoch is kept.")


class TrainingEnd(Protocol):
    """What the trainer's epoch reporter knows when training returns (``reporter.EpochReporter``)."""

    error: str | None
    stopped: bool
    out_of_time: bool
    out_of_room: bool
    early_stopped: bool
    best_epoch: int | None
    epochs_done: int
    kept_epoch: int | None


def of_training(end: TrainingEnd, cfg: TrainConfig, oom: bool, train_rows: int | None,
                split_by: str | None) -> Outcome:
    """A run whose training returned: finished, stopped (and why), early-stopped or failed, with what ``best/``
    holds when that needs saying."""
    status, message = RunStatus.FINISHED, ""
    if oom:
        status, message = RunStatus.FAILED, OOM_MESSAGE
    if end.error:
        status, message = RunStatus.FAILED, end.error
    elif end.stopped and _server_gone.is_set():
        status, message = RunStatus.INTERRUPTED, SHUT_DOWN_MESSAGE
    elif end.stopped:
        status, message = RunStatus.STOPPED, STOPPED_MESSAGE if end.best_epoch is not None else STOPPED_EMPTY_MESSAGE
    elif end.out_of_time:
        budget = (f"The time budget ({cfg.max_minutes:g} min) ran out after {end.epochs_done} of {cfg.epochs} "
                  "epochs")
        status, message = RunStatus.STOPPED, (
            f"{budget}; training stopped at that step, keeping the model of epoch {end.kept_epoch}."
            if end.kept_epoch is not None else
            f"{budget}, before the first epoch finished: there is no model to keep. Raise the budget, or use fewer "
            "rows or a smaller model.")
    elif end.out_of_room:
        status, message = RunStatus.STOPPED, (
            f"The runs folder passed its disk limit after epoch {end.epochs_done} of {cfg.epochs}; "
            f"training stopped there, keeping the model of epoch {end.kept_epoch}. Delete runs you no longer "
            "need before training more.")
    elif end.early_stopped:
        status, message = RunStatus.EARLY_STOPPED, f"No validation improvement for {cfg.patience} epoch(s)."
    if status is not RunStatus.FAILED:
        note = kept_model_note(end.best_epoch, end.epochs_done, end.kept_epoch, cfg, train_rows, split_by,
                               getattr(end, "kept_scores", None))
        message = " ".join(m for m in (message, note) if m)
    return Outcome(status, message)


def _score_words(scores) -> str:
    taught, unseen = scores if scores else (None, None)
    shown = [f"{name} {v:.3f}" for name, v in (("taught", taught), ("unseen", unseen)) if v is not None]
    return f" ({', '.join(shown)})" if shown else ""


def kept_model_note(best_epoch: int | None, epochs_done: int, kept_epoch: int | None, cfg: TrainConfig,
                    train_rows: int | None, split_by: str | None,
                    kept_scores: tuple[float | None, float | None] | None = None) -> str:
    """What the run summary says about the model ``best/`` holds, when it needs saying ("" otherwise): with
    ``keep=score``, which epoch scored best on the per-epoch sample and where validation loss was lowest; with
    ``keep=last``, that it is not the best epoch's; when validation was best at epoch 1 (or 2) of several and that
    model is kept, that the early model is kept, and the likely causes — unseen names in validation, the learning
    rate, too few rows."""
    if cfg.keep == "score" and kept_epoch is not None and epochs_done >= 1:
        note = (f"best/ holds epoch {kept_epoch} of {epochs_done}, the highest greedy score on the per-epoch sample "
                f"of taught and unseen rows{_score_words(kept_scores)} (keep=score)")
        if best_epoch is not None and best_epoch != kept_epoch:
            note += f"; validation loss was lowest at epoch {best_epoch}"
        return note + "."
    if best_epoch is None or epochs_done < 2:
        return ""
    parts = []
    if cfg.keep == "last" and kept_epoch is not None and kept_epoch != best_epoch:
        parts.append(f"best/ holds the last epoch's model (epoch {kept_epoch}) as asked (keep=last); validation "
                     f"loss was lowest at epoch {best_epoch}.")
    if best_epoch > 2 or epochs_done <= best_epoch:
        return " ".join(parts)
    if cfg.keep == "best":
        parts.append(f"Validation loss was lowest at epoch {best_epoch} of {epochs_done} and never improved after it, "
                     f"so the epoch-{best_epoch} model is kept.")
    causes = []
    if split_by in (None, "by-name"):  # runs from before the choice were split by name
        causes.append("validation names are unseen in training, so later epochs learn the training names' texts "
                      "rather than anything that carries over (split by row if names repeat)")
    if train_rows is not None and train_rows < 1000:
        causes.append(f"{train_rows} training rows are few enough to memorise in an epoch or two")
    causes.append(f"the learning rate ({cfg.learning_rate:g}) may be too high: try a lower one or a decaying schedule")
    parts.append("Likely causes: " + "; ".join(causes) + ".")
    return " ".join(parts)
