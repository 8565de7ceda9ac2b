"""Where a server job trains: in a spawned child process, or inside one ZeroGPU call; and how its end is recorded.

``JobManager`` asks ``pick()`` for one ``Launcher`` when it is built and never asks again.  For each job the
launcher makes a ``Launched``: the training's handle, which holds its stop flag (so Stop works from the moment the
job is registered), starts it, forwards its records to the job and, once the training is gone, says how it ended.

- ``ChildProcessLauncher`` (anywhere but ZeroGPU): ``run_training`` in a child process started with
  multiprocessing's *spawn* context (``worker.child_main``).  The child has its own memory, threads and torch
  random generator: a training that runs out of memory, crashes or is killed takes only itself down.  Records come
  back over a one-way pipe that a pump thread reads.  Stop sets an ``mp.Event`` the trainer checks after every
  optimizer step; a child still alive ``stop_grace_s`` later is terminated, then killed.
- ``GpuCallLauncher`` (a ZeroGPU Space): the training runs inside one ``spaces.GPU`` call sized beforehand
  (``zerogpu``), whose records a thread follows the same way.  Stop crosses into that process as a file.

When the records end without a summary, the launcher marks the run's record (still "running": its process could
not) with the failure it reported or, when it said nothing, how its process died (``outcomes.of_death``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

from . import outcomes, zerogpu
from .config import TrainConfig
from .errors import TrainingFailed, UserError
from .events import RunStarted, RunSummary
from .records import RunStatus
from .runs import Run
from .settings import current
from .store import RunStore
from .worker import CHILD_NAME, JobFailed, child_main

log = logging.getLogger(__name__)
_SPAWN = mp.get_context("spawn")  # a fresh interpreter: no copy of the server's threads, locks or RNG state
_KILL_AFTER_S = 5.0  # after terminate(), before kill()

Report = Callable[[Any], None]
"""Receives each record: ``RunStarted``, ``Progress``, ``EpochResult``, ``RunSummary`` or ``worker.JobFailed``."""
End = Callable[["str | None"], None]
"""Called once the training is gone, with the sentence saying how when no summary or failure record said it."""


class Launched(ABC):
    """One job's training as its job sees it: stop it, wait for it, end it when the server shuts down."""

    def __init__(self, job_id: int, stop_flag: Any, report: Report, end: End):
        self.job_id, self.stop_flag = job_id, stop_flag
        self._report, self._end = report, end
        self.stop_asked: float | None = None  # time.monotonic() of the Stop request
        self.thread: threading.Thread | None = None  # follows the training's records
        self.run_dir: Path | None = None
        self.summarised = False
        self.failure: str | None = None  # the reason a JobFailed record gave

    @abstractmethod
    def start(self, train_fn: Callable[..., Any], args: tuple, kwargs: dict, gpu_seconds: int | None) -> None:
        """Start ``train_fn(*args, report, stop_flag, **kwargs)``, or raise ``TrainingFailed`` (the job has ended)."""

    def stop(self) -> None:
        """Ask the training to stop after its current optimizer step."""
        self.stop_flag.set()
        if self.stop_asked is None:
            self.stop_asked = time.monotonic()

    def shutdown(self, timeout: float) -> None:
        """The server is shutting down (the default: let the training end with the server)."""

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the training's records to end; True when they have."""
        if self.thread is None:
            return True
        self.thread.join(timeout)
        return not self.thread.is_alive()

    @property
    def pid(self) -> int | None:
        """The training's own process id, where it has one."""
        return None

    @property
    def settled(self) -> bool:
        """A summary or a failure has arrived: the outcome is known, the training may still be tearing down."""
        return self.summarised or self.failure is not None

    def _follow(self, target: Callable[..., None], *args: Any) -> None:
        self.thread = threading.Thread(target=target, args=args, daemon=True, name=f"symptomgen-job-{self.job_id}")
        self.thread.start()

    def _forward(self, record: Any) -> None:
        if isinstance(record, RunStarted):
            self.run_dir = Path(record.run_dir)
        elif isinstance(record, RunSummary):
            self.summarised = True
        elif isinstance(record, JobFailed):
            self.failure = record.message
        self._report(record)

    @abstractmethod
    def _death(self) -> outcomes.Outcome:
        """How the training ended when it sent neither a summary nor a failure."""

    def _settle(self) -> None:
        """The training is gone: say how, mark its run if it could not, tell the job."""
        death = None
        if not self.settled:
            death = self._death()
            log.warning("training job %s: %s", self.job_id, death.message)
        if not self.summarised and self.run_dir is not None:
            outcome = death or outcomes.Outcome(RunStatus.FAILED, self.failure or "")
            try:
                run = Run(self.run_dir)
                if run.record().status is RunStatus.RUNNING:
                    run.update(status=outcome.status, message=outcome.message)
            except OSError:
                log.exception("could not record how training job %s ended", self.job_id)
        self._end(death.message if death else None)


class Launcher(ABC):
    """Makes each job's ``Launched``, and sizes what its training may take (where anything is sized)."""

    def plan(self, train: TrainConfig, rows: int, store: RunStore) -> int | None:
        """Seconds to ask of a GPU call for ``rows`` training rows (``preflight.GpuPlan``); None: not sized."""
        return None

    @abstractmethod
    def new(self, job_id: int, report: Report, end: End) -> Launched:
        """A job's training, not started yet (its stop flag already works)."""


class _ChildProcess(Launched):
    def __init__(self, job_id: int, report: Report, end: End):
        super().__init__(job_id, _SPAWN.Event(), report, end)
        self.process: Any = None  # multiprocessing.Process
        self.terminated: float | None = None  # time.monotonic() of terminate()
        self.shutting_down = False  # ended because the server is shutting down

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, train_fn: Callable[..., Any], args: tuple, kwargs: dict, gpu_seconds: int | None) -> None:
        reader, writer = _SPAWN.Pipe(duplex=False)
        try:
            self.process = _SPAWN.Process(target=child_main, args=(train_fn, args, kwargs, writer, self.stop_flag),
                                          name=f"{CHILD_NAME}-{self.job_id}", daemon=True)
            self.process.start()
        except BaseException as exc:
            reader.close()
            log.exception("could not start the training process")
            message = outcomes.could_not_start(exc)
            self._end(message)
            raise TrainingFailed(message) from None
        finally:
            writer.close()  # the child holds its own copy: the pipe ends when the child does
        self._follow(self._pump, reader)

    def _pump(self, reader) -> None:
        """Receive the child's records until its pipe ends, enforcing Stop's grace period meanwhile."""
        proc = self.process
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
                    self._forward(record)
                elif not proc.is_alive():
                    if not reader.poll(0.1):  # nothing left (a grandchild may hold the pipe open)
                        break
                else:
                    self._enforce_stop()
        finally:
            reader.close()
            proc.join(_KILL_AFTER_S)
            if proc.is_alive():  # its pipe is closed but it does not exit (stuck in teardown): free its memory
                log.warning("training job %s did not exit after closing its pipe: killing it", self.job_id)
                proc.kill()
                proc.join(_KILL_AFTER_S)
            self._settle()

    def _enforce_stop(self) -> None:
        now = time.monotonic()
        if self.stop_asked is None:
            return
        if self.terminated is None and now - self.stop_asked > current().stop_grace_s:
            # Killed, not terminated: the child reads SIGTERM as the server going (worker.child_main), and a
            # training that ignored its stop flag this long would ignore that too.
            log.warning("training job %s ignored Stop for %.0f s: killing it", self.job_id, now - self.stop_asked)
            self.terminated = now
            self.process.kill()

    def _death(self) -> outcomes.Outcome:
        return outcomes.of_death(self.process.exitcode, shutting_down=self.shutting_down,
                                 terminated=self.terminated is not None)

    def shutdown(self, timeout: float) -> None:
        """Stop, wait up to ``timeout``, then end the process (its run reads "interrupted")."""
        if self.process is None:
            return
        if not self.settled:
            self.shutting_down = True
            with contextlib.suppress(OSError, AttributeError):
                self.process.terminate()  # the child stops at its next step, recording "interrupted" (not Stop)
            self.stop_asked = self.stop_asked or time.monotonic()
        if not self.join(timeout):
            self.shutting_down = True
            self.terminated = self.terminated or time.monotonic()
            self.process.terminate()
            self.join(_KILL_AFTER_S)


class ChildProcessLauncher(Launcher):
    """Each training in a spawned child process of the server's (at a lower priority)."""

    def new(self, job_id: int, report: Report, end: End) -> Launched:
        return _ChildProcess(job_id, report, end)


class _GpuCall(Launched):
    def __init__(self, job_id: int, report: Report, end: End, call: Callable[..., Any]):
        # The stop flag crosses into ZeroGPU's process; set() by Stop as the event would be.
        super().__init__(job_id, zerogpu.FileStop.new(), report, end)
        self._call = call

    def start(self, train_fn: Callable[..., Any], args: tuple, kwargs: dict, gpu_seconds: int | None) -> None:
        def follow() -> None:
            try:
                for record in self._call(train_fn, args, kwargs, self.stop_flag, gpu_seconds):
                    self._forward(record)
            except BaseException as exc:
                if not isinstance(exc, UserError):
                    log.exception("training job %s failed in its ZeroGPU call", self.job_id)
                self._forward(JobFailed(outcomes.failure(exc)))
            finally:
                self.stop_flag.clear()
                self._settle()

        self._follow(follow)

    def _death(self) -> outcomes.Outcome:
        return outcomes.of_death(0, shutting_down=False, terminated=False)  # the call returned without a summary


class GpuCallLauncher(Launcher):
    """Each training inside one ``spaces.GPU`` call, asking for the duration its plan sized (``zerogpu``)."""

    def __init__(self):
        self._call = zerogpu.gpu_training()  # decorated once, when the server's job manager is built

    def plan(self, train: TrainConfig, rows: int, store: RunStore) -> int | None:
        return zerogpu.plan(train, rows, store).seconds

    def new(self, job_id: int, report: Report, end: End) -> Launched:
        return _GpuCall(job_id, report, end, self._call)


def pick() -> Launcher:
    """The launcher for this machine: a ZeroGPU call on a ZeroGPU Space, a child process anywhere else."""
    return GpuCallLauncher() if zerogpu.active() else ChildProcessLauncher()
