"""The server's training job: at most one at a time, in its own process, owned by the server, not a browser tab.

``JobManager.start`` checks and reserves the single training slot under a lock (two simultaneous starts yield
exactly one job), checks the disk limits and prepares the data in the caller's thread (so bad input fails at once,
with its message), then runs ``trainer.run_training`` in a child process started with multiprocessing's *spawn*
context.  The child has its own memory, threads and torch random generator: a training that runs out of memory,
crashes or is killed takes only itself down, and the server's seeded generations never share a random state
with training.  The child runs at a lower priority (``nice``), so the page stays responsive while it trains.

Records flow back over a one-way pipe: ``RunStarted`` (the run folder, sent as soon as it exists), ``Progress``,
``EpochResult`` and ``RunSummary`` exactly as ``run_training`` reports them, or ``JobFailed`` with one sentence
when an exception ends it.  A pump thread in the server receives them.  When the pipe ends (the child exited, for
whatever reason) without a summary or a failure, the child died: the pump marks the run interrupted (killed by a
signal) or failed (any other exit) with one sentence, and the slot is free for the next Start.  Stop sets an
``mp.Event`` that the trainer checks after every optimizer step; a child still alive ``stop_grace_s`` later is
terminated, then killed.  A child whose server dies stops by itself (it watches its parent).

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
import logging
import multiprocessing as mp
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .catalog import ModelSpec
from .config import DataConfig, TrainConfig
from .data import prepare
from .errors import TrainingBusyError, TrainingFailed, UserError, failure_reason
from .events import EpochResult, Event, Progress, RunStarted, RunSummary
from .offline import with_offline_fallback
from .records import RunStatus
from .runs import Run, resolve_run
from .settings import current
from .storage import check_room
from .worker import CHILD_NAME, JobFailed, child_main, death_reason, run_training_in_child
from . import zerogpu

log = logging.getLogger(__name__)
_KEEP_JOBS = 8  # finished jobs remembered (for late followers); runs themselves live on disk
_SPAWN = mp.get_context("spawn")  # a fresh interpreter: no copy of the server's threads, locks or RNG state
_KILL_AFTER_S = 5.0  # after terminate(), before kill()


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

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def elapsed(self) -> float:
        return (self.summary.seconds if self.summary else time.time() - self.started)


@dataclass
class _Job:
    """One job's state, changed only under the manager's lock (the process handle by the pump thread)."""

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
    stop: Any = field(default_factory=_SPAWN.Event)
    error: str | None = None
    done: bool = False
    run_dir: Path | None = None
    process: Any = None  # multiprocessing.Process
    pump: threading.Thread | None = None
    stop_asked: float | None = None  # time.monotonic() of the Stop request
    terminated: float | None = None  # time.monotonic() of terminate()
    shutting_down: bool = False  # ended because the server is shutting down

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
        elif isinstance(event, EpochResult):
            self.epochs += (event,)  # one per epoch: tens, not one per step
        elif isinstance(event, RunSummary):
            self.summary = event
        elif isinstance(event, RunStarted):
            self.run_dir = Path(event.run_dir)
        self.recorded += 1

    def snapshot(self) -> JobSnapshot:
        return JobSnapshot(self.job_id, self.version, "done" if self.settled else "running", self.data, self.train,
                           self.notices, self.data_summary, self.started, self.epochs, self.progress,
                           self.summary, self.error, self.run_dir.name if self.run_dir else None)


_managers: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _shut_all_down() -> None:  # before multiprocessing's own exit handler kills daemonic children
    for manager in list(_managers):
        with contextlib.suppress(Exception):
            manager.shutdown(timeout=5.0)


class JobManager:
    """One training slot per server, with the history of its recent jobs."""

    def __init__(self, runs_dir: Path | str, train_fn: Callable[..., RunSummary] | None = None):
        """``train_fn`` defaults to ``trainer.run_training`` (tests may pass a picklable fake with its
        signature: ``(data, train, runs_dir, on_event, stop, prepared=None[, resume=...])``)."""
        self.runs_dir = Path(runs_dir)
        self._train_fn = train_fn or run_training_in_child
        # ZeroGPU: training runs inside a spaces.GPU call (its own process already), decorated with the page.
        self._gpu_training = zerogpu.gpu_training() if zerogpu.active() else None
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

    def _reserve(self) -> None:
        with self._cond:
            if self._reserved or (self._latest is not None and not self._latest.settled):
                raise TrainingBusyError(self._busy_message())
            self._reserved = True

    def _release(self) -> None:
        with self._cond:
            self._reserved = False

    def start(self, data: DataConfig, train: TrainConfig, fallback: bool = True) -> JobSnapshot:
        """Start training in a child process, or raise ``TrainingBusyError``, ``QuotaExceeded`` or the data's
        ``ValueError``."""
        self._reserve()
        try:
            check_room(self.runs_dir)
            notices: list[str] = []
            train = train.with_(model=ModelSpec.parse(train.model, self.runs_dir).target)
            if fallback:
                data, train, notices = with_offline_fallback(data, train)
            prepared = prepare(data)
            if self._gpu_training is not None:  # refused now, in one sentence, when the GPU budget is too small
                gpu_plan = zerogpu.plan(train, len(prepared.train), self.runs_dir)
        except BaseException:
            self._release()
            raise
        job = _Job(next(self._ids), data, train, tuple(notices), prepared.summary())
        if self._gpu_training is not None:
            return self._launch_in_gpu_call(job, (data, train, self.runs_dir), {"prepared": prepared}, gpu_plan)
        return self._launch(job, (data, train, self.runs_dir), {"prepared": prepared})

    def resume(self, run_id: str) -> JobSnapshot:
        """Continue a stopped, failed or interrupted run from its last checkpoint (as ``train --resume``), or raise
        saying why it cannot be."""
        self._reserve()
        try:
            run = resolve_run(self.runs_dir, run_id)
            problem = run.resume_problem()
            if problem:
                raise TrainingFailed(problem)
            rec = run.record()
            if self._gpu_training is not None:
                gpu_plan = zerogpu.plan(rec.train, rec.train_rows or 0, self.runs_dir)
        except BaseException:
            self._release()
            raise
        rows = f"{rec.train_rows} training and {rec.val_rows} validation rows" if rec.train_rows else "its own split"
        job = _Job(next(self._ids), rec.data, rec.train, (),
                   f"Resuming run {run.run_id} from its last checkpoint ({rows}).")
        if self._gpu_training is not None:
            return self._launch_in_gpu_call(job, (rec.data, rec.train, self.runs_dir), {"resume": run.run_id},
                                            gpu_plan)
        return self._launch(job, (rec.data, rec.train, self.runs_dir), {"resume": run.run_id})

    def _register(self, job: _Job) -> None:
        """Make ``job`` the latest (the slot passes from the reservation to it), forgetting the oldest."""
        with self._cond:
            self._jobs[job.job_id] = job
            for old in sorted(self._jobs)[:-_KEEP_JOBS]:
                self._jobs.pop(old)
            self._latest, self._reserved = job, False

    def _launch_in_gpu_call(self, job: _Job, args: tuple, kwargs: dict, gpu_plan) -> JobSnapshot:
        """ZeroGPU: the job follows one ``spaces.GPU`` call (``zerogpu``) instead of a child process of its own."""
        job.stop = zerogpu.FileStop.new()  # crosses into ZeroGPU's process; set() by stop() as the event would be
        self._register(job)

        def follow() -> None:
            try:
                for record in self._gpu_training(self._train_fn, args, kwargs, job.stop, gpu_plan.seconds):
                    self._receive(job, record)
            except BaseException as exc:  # noqa: BLE001 (a failure of the call, e.g. its time ran out)
                if not isinstance(exc, UserError):
                    log.exception("training job %s failed in its ZeroGPU call", job.job_id)
                self._receive(job, JobFailed(failure_reason(exc)))
            finally:
                job.stop.clear()
                self._end(job, 0)

        job.pump = threading.Thread(target=follow, daemon=True, name=f"symptomgen-job-{job.job_id}")
        job.pump.start()
        return self.snapshot(job.job_id)

    def _launch(self, job: _Job, args: tuple, kwargs: dict) -> JobSnapshot:
        """Register ``job`` (the slot passes from the reservation to it) and start its process and pump."""
        self._register(job)
        reader, writer = _SPAWN.Pipe(duplex=False)
        # Started outside the lock: spawning writes the prepared data to the child, which takes a moment.
        try:
            job.process = _SPAWN.Process(target=child_main, args=(self._train_fn, args, kwargs, writer, job.stop),
                                         name=f"{CHILD_NAME}-{job.job_id}", daemon=True)
            job.process.start()
        except BaseException as exc:
            reader.close()
            log.exception("could not start the training process")
            with self._cond:
                job.error, job.done = f"Training could not start: {failure_reason(exc)}", True
                self._cond.notify_all()
            raise TrainingFailed(job.error) from None
        finally:
            writer.close()  # the child holds its own copy: the pipe ends when the child does
        job.pump = threading.Thread(target=self._pump, args=(job, reader), daemon=True,
                                    name=f"symptomgen-job-{job.job_id}")
        job.pump.start()
        return self.snapshot(job.job_id)

    def _pump(self, job: _Job, reader) -> None:
        """Receive the child's records until its pipe ends, enforcing Stop's grace period meanwhile."""
        proc = job.process
        try:
            while True:
                if reader.poll(0.25):
                    try:
                        record = reader.recv()
                    except (EOFError, OSError):
                        break  # the child has exited (or closed its end)
                    except Exception:  # a record that does not unpickle: skip it, keep following
                        log.exception("unreadable record from the training process")
                        continue
                    self._receive(job, record)
                elif not proc.is_alive():
                    if not reader.poll(0.1):  # nothing left (a grandchild may hold the pipe open)
                        break
                else:
                    self._enforce_stop(job)
        finally:
            reader.close()
            proc.join(_KILL_AFTER_S)
            if proc.is_alive():  # its pipe is closed but it does not exit (stuck in teardown): free its memory
                log.warning("training job %s did not exit after closing its pipe: killing it", job.job_id)
                proc.kill()
                proc.join(_KILL_AFTER_S)
            self._end(job, proc.exitcode)

    def _receive(self, job: _Job, record) -> None:
        with self._cond:
            if isinstance(record, JobFailed):
                msg = record.message
                job.error = msg if msg.startswith("Training failed") else f"Training failed: {msg}"
                job.recorded += 1
            else:
                job.record(record)
            self._cond.notify_all()

    def _enforce_stop(self, job: _Job) -> None:
        now = time.monotonic()
        if job.stop_asked is None:
            return
        if job.terminated is None and now - job.stop_asked > current().stop_grace_s:
            log.warning("training job %s ignored Stop for %.0f s: terminating it", job.job_id, now - job.stop_asked)
            job.terminated = now
            job.process.terminate()
        elif job.terminated is not None and now - job.terminated > _KILL_AFTER_S:
            job.process.kill()

    def _end(self, job: _Job, exitcode: int | None) -> None:
        """The child is gone: say how, mark its run if it could not, free the slot."""
        status, message = RunStatus.FAILED, job.error
        if job.summary is None and job.error is None:
            status, message = death_reason(exitcode, shutting_down=job.shutting_down,
                                           terminated=job.terminated is not None)
            log.warning("training job %s: %s", job.job_id, message)
        if job.summary is None and job.run_dir is not None:
            try:
                run = Run(job.run_dir)
                if run.record().status is RunStatus.RUNNING:
                    run.update(status=status, message=(message or "").removeprefix("Training failed: "))
            except OSError:
                log.exception("could not record how training job %s ended", job.job_id)
        with self._cond:
            if job.summary is None and job.error is None:
                job.error = message
            job.done = True
            self._cond.notify_all()

    def stop(self) -> str:
        """Ask the running job to stop after its current optimizer step (ended after ``stop_grace_s`` if not)."""
        with self._cond:
            job = self._latest
            if job is None or job.settled:
                return "No training is running."
            job.stop.set()
            if job.stop_asked is None:
                job.stop_asked = time.monotonic()
            return "Stopping after the current step; the best finished epoch is kept."

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the running job, wait up to ``timeout`` for it, then end its process (server shutdown)."""
        job = self._latest
        if job is None or job.done or job.process is None:
            return
        self.stop()
        if not self.join(timeout):
            job.shutting_down = True
            job.terminated = job.terminated or time.monotonic()
            job.process.terminate()
            self.join(_KILL_AFTER_S)

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
        if job is None or job.pump is None:
            return True
        job.pump.join(timeout)
        return not job.pump.is_alive()

    def child_pid(self) -> int | None:
        """The running job's process id (tests and benchmarks), or None."""
        job = self._latest
        return job.process.pid if job is not None and not job.done and job.process is not None else None
