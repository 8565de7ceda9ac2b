"""The server's training job: at most one at a time, owned by the server, not a browser tab.

``JobManager.start`` checks and reserves the single training slot under a lock
(two simultaneous starts yield exactly one job), prepares the data in the
caller's thread (so bad input fails at once, with its message), then runs
``trainer.run_training`` in a background thread with a ``threading.Event`` as
the stop flag.  Of the records the trainer reports the job keeps what a page
draws: the latest ``Progress``, every ``EpochResult`` and the ``RunSummary`` (so
memory and snapshot cost do not grow with the steps), plus a version that grows
by one per record.  A page that reconnects re-attaches: ``wait`` blocks on a
condition variable until the version grows and returns a ``JobSnapshot``.
No gradio here: the UI renders snapshots, tests drive the manager directly.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .catalog import ModelSpec
from .config import DataConfig, TrainConfig
from .data import prepare
from .errors import TrainingBusyError, first_line as _one_line
from .events import EpochResult, Event, Progress, RunSummary
from .offline import with_offline_fallback

log = logging.getLogger(__name__)
_KEEP_JOBS = 8  # finished jobs remembered (for late followers); runs themselves live on disk


@dataclass(frozen=True)
class JobSnapshot:
    """What a job has done so far: enough to draw the Train tab from scratch."""

    job_id: int
    version: int
    """Grows by one per recorded event; ``wait(after=version)`` returns when it grows."""
    state: str  # running | done
    data: DataConfig
    train: TrainConfig
    notices: tuple[str, ...]
    data_summary: str
    started: float
    epochs: tuple[EpochResult, ...]
    progress: Progress | None
    summary: RunSummary | None
    error: str | None

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def elapsed(self) -> float:
        return (self.summary.seconds if self.summary else time.time() - self.started)


@dataclass
class _Job:
    """One job's state, changed only under the manager's lock."""

    job_id: int
    data: DataConfig
    train: TrainConfig
    notices: tuple[str, ...]
    data_summary: str
    started: float = field(default_factory=time.time)
    recorded: int = 0  # records received (a Progress replaces the previous one but still counts)
    progress: Progress | None = None
    epochs: tuple[EpochResult, ...] = ()  # a tuple: a snapshot shares it instead of copying
    summary: RunSummary | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    done: bool = False
    thread: threading.Thread | None = None

    @property
    def version(self) -> int:
        return self.recorded + int(self.done)

    def record(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.progress = event
        elif isinstance(event, EpochResult):
            self.epochs += (event,)  # one per epoch: tens, not one per step
        elif isinstance(event, RunSummary):
            self.summary = event
        self.recorded += 1

    def snapshot(self) -> JobSnapshot:
        return JobSnapshot(self.job_id, self.version, "done" if self.done else "running", self.data, self.train,
                           self.notices, self.data_summary, self.started, self.epochs, self.progress,
                           self.summary, self.error)


class JobManager:
    """One training slot per server, with the history of its recent jobs."""

    def __init__(self, runs_dir: Path | str, train_fn: Callable[..., RunSummary] | None = None):
        """``train_fn`` defaults to ``trainer.run_training`` (tests may pass a fake with its signature)."""
        self.runs_dir = Path(runs_dir)
        self._train_fn = train_fn
        self._cond = threading.Condition()
        self._jobs: dict[int, _Job] = {}
        self._latest: _Job | None = None
        self._reserved = False  # a start is preparing its data: the slot is taken
        self._ids = itertools.count(1)

    # -- starting and stopping -------------------------------------------------------------
    def _busy_message(self) -> str:
        job = self._latest
        if self._reserved or job is None or job.done:
            return "A training run is already starting; wait for it to finish or press Stop."
        age = time.time() - job.started
        return (f"A training run is already in progress (started {age:.0f} s ago, possibly from another "
                "tab or user); wait for it to finish or press Stop.")

    def busy(self) -> bool:
        with self._cond:
            return self._reserved or (self._latest is not None and not self._latest.done)

    def start(self, data: DataConfig, train: TrainConfig, fallback: bool = True) -> JobSnapshot:
        """Start training in the background, or raise ``TrainingBusyError`` / the data's ``ValueError``."""
        with self._cond:
            if self._reserved or (self._latest is not None and not self._latest.done):
                raise TrainingBusyError(self._busy_message())
            self._reserved = True
        try:
            notices: list[str] = []
            train = train.with_(model=ModelSpec.parse(train.model, self.runs_dir).target)
            if fallback:
                data, train, notices = with_offline_fallback(data, train)
            prepared = prepare(data)
        except BaseException:
            with self._cond:
                self._reserved = False
            raise
        with self._cond:
            job = _Job(next(self._ids), data, train, tuple(notices), prepared.summary())
            self._jobs[job.job_id] = job
            for old in sorted(self._jobs)[:-_KEEP_JOBS]:
                self._jobs.pop(old)
            self._latest, self._reserved = job, False
            job.thread = threading.Thread(target=self._work, args=(job, prepared), daemon=True,
                                          name=f"symptomgen-job-{job.job_id}")
            job.thread.start()
            return job.snapshot()

    def _record(self, job: _Job, event: Event) -> None:
        with self._cond:
            job.record(event)
            self._cond.notify_all()

    def _work(self, job: _Job, prepared) -> None:
        if self._train_fn is None:
            from .trainer import run_training

            self._train_fn = run_training
        try:
            self._train_fn(job.data, job.train, self.runs_dir, lambda e: self._record(job, e), job.stop,
                           prepared=prepared)
        except BaseException as exc:  # reported to followers; the server keeps running
            log.exception("training job %s failed", job.job_id)
            with self._cond:
                job.error = f"Training failed: {_one_line(exc)}"
        finally:
            with self._cond:
                job.done = True
                self._cond.notify_all()

    def stop(self) -> str:
        """Ask the running job to stop after its current optimizer step."""
        with self._cond:
            job = self._latest
            if job is None or job.done:
                return "No training is running."
            job.stop.set()
            return "Stopping after the current step; the best finished epoch is kept."

    # -- following -------------------------------------------------------------------------
    def snapshot(self, job_id: int | None = None) -> JobSnapshot | None:
        """The given job's snapshot, or the latest job's; None when there is none."""
        with self._cond:
            job = self._latest if job_id is None else self._jobs.get(job_id)
            return None if job is None else job.snapshot()

    def wait(self, job_id: int, after: int, timeout: float = 1.0) -> JobSnapshot | None:
        """Block until the job's version exceeds ``after`` (or ``timeout``); return its snapshot."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            self._cond.wait_for(lambda: job.version > after, timeout)
            return job.snapshot()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the latest job's thread (tests, shutdown); True when it has ended."""
        job = self._latest
        if job is None or job.thread is None:
            return True
        job.thread.join(timeout)
        return not job.thread.is_alive()
