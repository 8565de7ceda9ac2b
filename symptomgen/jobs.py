"""The server's training job: at most one at a time, owned by the server, not a browser tab.

``JobManager`` keeps the single training slot, the history of its recent jobs and their snapshots.
``start`` checks and reserves the slot under a lock (two simultaneous starts yield exactly one job), then runs
the checks (``preflight``: disk limits, model choice, offline fallback, data, GPU plan) in the caller's thread,
so bad input fails at once, with its message.  The training itself is launched by the one ``launchers.Launcher``
the manager picked when it was built: a spawned child process, or a ZeroGPU call.  Either way it reports
``RunStarted`` (the run folder, sent as soon as it exists), ``Progress``, ``EpochResult`` and ``RunSummary``
exactly as ``run_training`` reports them, or ``JobFailed`` with one sentence when an exception ends it; when it
ends without either, its launcher says how (``outcomes``) and the slot is free for the next Start.

Of the records the job keeps what a page draws: the latest ``Progress``, every ``EpochResult`` and the
``RunSummary`` (so memory and snapshot cost do not grow with the steps), plus a version that grows by one per
record.  A page that reconnects re-attaches: ``wait`` blocks on a condition variable until the version grows.
No gradio here: the UI renders snapshots, tests drive the manager directly (``train_fn`` must be picklable: a
module-level function, or an object of a module-level class).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import threading
import time
import weakref
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from . import launchers, outcomes
from .config import DataConfig, TrainConfig
from .errors import TrainingBusyError
from .events import EpochResult, Event, Progress, RunStarted, RunSummary
from .preflight import Ready, preflight, preflight_resume
from .store import RunStore
from .worker import JobFailed, run_training_in_child

_KEEP_JOBS = 8  # finished jobs remembered (for late followers); runs themselves live on disk
MAX_STEP_POINTS = 600  # step-curve points a job keeps: past this every other one is dropped (O(1) memory)


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
    run_id: str | None = None
    """The run's folder name, once the training process has made it."""
    steps: tuple[tuple[float, float, float | None, float | None], ...] = ()
    """The step curve: ``(epoch, loss, learning_rate, grad_norm)`` points (``Progress``'s; the last two None where
    not recorded, e.g. a run resumed from before they were), at most ``MAX_STEP_POINTS``."""
    prior_seconds: float = 0.0
    """A resumed run's seconds before this job (its summary's seconds already include them)."""

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def elapsed(self) -> float:
        """Seconds the run has trained, all its sessions together."""
        return (self.summary.seconds if self.summary else self.prior_seconds + time.time() - self.started)


@dataclass
class _Job:
    """One job's state, changed only under the manager's lock (its training's handle by the launcher's thread)."""

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
    error: str | None = None
    done: bool = False
    run_dir: Path | None = None
    launched: launchers.Launched | None = None
    steps: tuple[tuple[float, float, float | None, float | None], ...] = ()
    prior_seconds: float = 0.0
    held_run: str | None = None  # a resumed run, marked in use ("training") from Resume until the job ends

    @property
    def version(self) -> int:
        return self.recorded + int(self.done)

    @property
    def settled(self) -> bool:
        """The outcome is known (a summary or a failure arrived, or the process is gone): the page shows it and
        the slot is free, while the process may still be tearing down (seconds, for torch)."""
        return self.done or self.summary is not None or self.error is not None

    def record(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.progress = event
            if event.loss is not None:
                self.steps += ((event.epoch, event.loss, event.learning_rate, event.grad_norm),)
                if len(self.steps) > MAX_STEP_POINTS:
                    self.steps = self.steps[::2]
        elif isinstance(event, EpochResult):
            self.epochs = tuple(e for e in self.epochs if e.epoch < event.epoch) + (event,)  # one per epoch
        elif isinstance(event, RunSummary):
            self.summary = event
        elif isinstance(event, RunStarted):
            self.run_dir = Path(event.run_dir)
        self.recorded += 1

    def snapshot(self) -> JobSnapshot:
        return JobSnapshot(self.job_id, self.version, "done" if self.settled else "running", self.data, self.train,
                           self.notices, self.data_summary, self.started, self.epochs, self.progress,
                           self.summary, self.error, self.run_dir.name if self.run_dir else None, self.steps,
                           self.prior_seconds)


_managers: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _shut_all_down() -> None:  # before multiprocessing's own exit handler kills daemonic children
    for manager in list(_managers):
        with contextlib.suppress(Exception):
            manager.shutdown(timeout=5.0)


class JobManager:
    """One training slot per server, with the history of its recent jobs."""

    def __init__(self, store: RunStore | Path | str, train_fn: Callable[..., RunSummary] | None = None):
        """``train_fn`` defaults to ``trainer.run_training`` (tests may pass a picklable fake with its
        signature: ``(data, train, store, on_event, stop, prepared=None[, resume=...])``)."""
        self.store = RunStore.at(store)
        self._train_fn = train_fn or run_training_in_child
        self.launcher = launchers.pick()  # once: a child process, or a ZeroGPU call decorated with the page
        self._cond = threading.Condition()
        self._jobs: dict[int, _Job] = {}
        self._latest: _Job | None = None
        self._reserved = False  # a start is preparing its data: the slot is taken
        self._ids = itertools.count(1)
        _managers.add(self)

    # -- starting and stopping -------------------------------------------------------------
    def _busy_message(self) -> str:
        job = self._latest
        if self._reserved or job is None or job.settled:
            return "A training run is already starting; wait for it to finish or press Stop."
        age = time.time() - job.started
        return (f"A training run is already in progress (started {age:.0f} s ago, possibly from another "
                "tab or user); wait for it to finish or press Stop.")

    def busy(self) -> bool:
        with self._cond:
            return self._reserved or (self._latest is not None and not self._latest.settled)

    def refuse_if_busy(self) -> None:
        """Raise ``TrainingBusyError`` when the slot is taken: a door calls it before building any config or
        reading any data, so forty simultaneous Starts cost one job and thirty-nine sentences."""
        with self._cond:
            if self._reserved or (self._latest is not None and not self._latest.settled):
                raise TrainingBusyError(self._busy_message())

    def _reserve(self) -> None:
        with self._cond:
            if self._reserved or (self._latest is not None and not self._latest.settled):
                raise TrainingBusyError(self._busy_message())
            self._reserved = True

    def _release(self) -> None:
        with self._cond:
            self._reserved = False

    def start(self, data: DataConfig, train: TrainConfig, fallback: bool = True) -> JobSnapshot:
        """Start training, or raise ``TrainingBusyError``, ``QuotaExceeded``, the data's ``ValueError`` or, where
        the training must fit a GPU call, ``TrainingFailed`` saying what would fit."""
        self._reserve()
        try:
            ready = preflight(data, train, self.store, fallback=fallback, plan=self.launcher.plan)
        except BaseException:
            self._release()
            raise
        return self._launch(ready)

    def resume(self, run_id: str) -> JobSnapshot:
        """Continue a stopped, failed or interrupted run from its last checkpoint (as ``train --resume``), or raise
        saying why it cannot be."""
        self._reserve()
        held = str(run_id or "").strip()
        # In use from now: a delete between this Resume and the child marking the run "running" is refused.
        self.store.reserve(held, "training")
        try:
            ready = preflight_resume(held, self.store, plan=self.launcher.plan)
            # The page goes on drawing the run from where it stopped: its epochs and step curve up to the
            # checkpoint it resumes from, and the time they took.
            run = self.store.get(held)
            rec, done = run.record(), run.checkpoint_epoch()
            epochs, steps = run.history(done)
            prior = rec.seconds or sum(e.epoch_seconds for e in epochs)
        except BaseException:
            self.store.release(held, "training")
            self._release()
            raise
        return self._launch(ready, epochs, steps, float(prior or 0.0), held_run=held)

    def _register(self, job: _Job) -> None:
        """Make ``job`` the latest (the slot passes from the reservation to it), forgetting the oldest."""
        with self._cond:
            self._jobs[job.job_id] = job
            for old in sorted(self._jobs)[:-_KEEP_JOBS]:
                self._jobs.pop(old)
            self._latest, self._reserved = job, False

    def _launch(self, ready: Ready, epochs: tuple = (), steps: tuple = (), prior_seconds: float = 0.0,
                held_run: str | None = None) -> JobSnapshot:
        """Register a job for ``ready`` (its stop flag works from now on) and start its training; a resumed run's
        ``epochs``, ``steps`` and ``prior_seconds`` from before are its history, and ``held_run`` (in use since
        Resume) is released when the job ends."""
        job = _Job(next(self._ids), ready.data, ready.train, ready.notices, ready.summary, epochs=tuple(epochs),
                   steps=tuple(steps)[-MAX_STEP_POINTS:], prior_seconds=prior_seconds, held_run=held_run)
        job.launched = self.launcher.new(job.job_id, partial(self._receive, job), partial(self._end, job))
        self._register(job)
        # Started outside the lock: spawning writes the prepared data to the child, which takes a moment.
        job.launched.start(self._train_fn, (ready.data, ready.train, self.store), ready.kwargs, ready.gpu_seconds)
        return self.snapshot(job.job_id)

    def _receive(self, job: _Job, record) -> None:
        with self._cond:
            if isinstance(record, JobFailed):
                job.error = outcomes.failed_line(record.message)
                job.recorded += 1
            else:
                job.record(record)
            self._cond.notify_all()

    def _end(self, job: _Job, message: str | None) -> None:
        """The training is gone (``message`` says how, when no record did): the slot is free."""
        with self._cond:
            if job.summary is None and job.error is None:
                job.error = message
            job.done = True
            if job.held_run is not None:
                self.store.release(job.held_run, "training")
                job.held_run = None
            self._cond.notify_all()

    def stop(self) -> str:
        """Ask the running job to stop after its current optimizer step (ended after ``stop_grace_s`` if not)."""
        with self._cond:
            job = self._latest
            if job is None or job.settled:
                return "No training is running."
            job.launched.stop()
            return "Stopping after the current step; the best finished epoch is kept."

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the running job, wait up to ``timeout`` for it, then end it (server shutdown; its launcher's way)."""
        job = self._latest
        if job is None or job.done or job.launched is None:
            return
        job.launched.shutdown(timeout)

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
        """Wait for the latest job to end (tests, shutdown); True when it has."""
        job = self._latest
        return job is None or job.launched is None or job.launched.join(timeout)

    def child_pid(self) -> int | None:
        """The running job's process id (tests and benchmarks), or None."""
        job = self._latest
        return job.launched.pid if job is not None and not job.done and job.launched is not None else None
