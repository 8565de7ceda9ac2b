"""Training on a ZeroGPU Space: the job runs inside one ``spaces.GPU`` call, sized before it starts.

On ZeroGPU a GPU exists only while a function decorated with ``spaces.GPU`` runs, in a process ZeroGPU starts
for that call, for at most the duration the call asked for.  So there a Start does not spawn a training process
of its own (``launchers.GpuCallLauncher``): it calls ``gpu_training``'s function, which runs ``run_training`` in that
GPU
process and streams its records back as a generator (ZeroGPU forwards a generator's items as they come), and the
job follows them exactly as it follows its own child.  Stop crosses the process boundary as a file
(``FileStop``): the trainer checks it after every optimizer step.

The duration is sized before the call: optimizer steps (rows, batch, accumulation, epochs) times a step time
*measured* by the newest run on this server with the same model, batch and length that trained on a GPU (its
``metrics.csv``: epoch seconds over steps, so validation and saves are included), else ``timing``'s estimate;
plus a fixed allowance for loading the model.  When that exceeds what a ZeroGPU call may take
(``SYMPTOMGEN_ZEROGPU_MAX_S``), the Start is refused with the number of epochs that would fit.
"""

from __future__ import annotations

import math
import queue
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .config import TrainConfig
from .errors import TrainingFailed
from .gpu import gpu, on_zero_gpu
from .settings import current
from .store import RunStore
from .timing import estimated_step_seconds

LOAD_SECONDS = 30
"""Allowance for moving the model to the GPU, building the Trainer and the final save."""
SAFETY = 1.3
"""Margin on the step time: a call that runs out of time loses the epoch in progress."""
_PROGRESS_EVERY_S = 0.25  # step records sent back at most this often (every epoch record is sent)


def active() -> bool:
    """Whether training should run inside a ZeroGPU call (a ZeroGPU Space with ``spaces`` importable)."""
    return on_zero_gpu()


@dataclass(frozen=True)
class FileStop:
    """A stop flag that crosses into ZeroGPU's process: set = the file exists (``threading.Event``'s two methods)."""

    path: Path

    @classmethod
    def new(cls) -> FileStop:
        return cls(Path(tempfile.gettempdir()) / f"symptomgen-stop-{uuid.uuid4().hex}")

    def set(self) -> None:
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def steps_per_epoch(train: TrainConfig, rows: int) -> int:
    return max(1, math.ceil(rows / (train.batch_size * train.grad_accum)))


def measured_step_seconds(train: TrainConfig, store: RunStore) -> float | None:
    """Seconds per optimizer step (validation and saves included) of the newest run here with the same model,
    batch and length that trained on a GPU; None when there is none."""

    for run in store.list():
        rec = run.record()
        t = rec.train
        if (t is None or not rec.train_rows or rec.device in ("", "cpu") or t.model != train.model
                or (t.batch_size, t.grad_accum, t.max_length)
                != (train.batch_size, train.grad_accum, train.max_length)):
            continue
        metrics = run.metrics()
        if len(metrics) and metrics["epoch_duration_sec"].notna().any():
            return float(metrics["epoch_duration_sec"].median()) / steps_per_epoch(t, rec.train_rows)
    return None


@dataclass(frozen=True)
class Plan:
    seconds: int
    steps: int
    step_seconds: float
    measured: bool


def plan(train: TrainConfig, rows: int, store: RunStore) -> Plan:
    """The GPU seconds to ask for, or ``TrainingFailed`` saying what would fit when it is more than a call gets."""
    measured = measured_step_seconds(train, store)
    step = measured if measured is not None else estimated_step_seconds(train)
    per_epoch = steps_per_epoch(train, rows)
    steps = per_epoch * train.epochs
    seconds = math.ceil(LOAD_SECONDS + steps * step * SAFETY)
    limit = current().zero_gpu_max_s
    if seconds > limit:
        fit = int((limit - LOAD_SECONDS) // (per_epoch * step * SAFETY))
        how = "measured by an earlier run here" if measured is not None else "estimated"
        advice = (f"at most {fit} epoch(s) fit" if fit >= 1 else "not even one epoch fits: fewer rows or a smaller "
                  "model")
        raise TrainingFailed(f"This training needs about {seconds} s of ZeroGPU time ({steps} steps at "
                             f"{step:.2f} s, {how}), more than the {limit} s one ZeroGPU call may take: {advice}, "
                             "or use T4 hardware.")
    return Plan(seconds, steps, step, measured is not None)


def _records(train_fn: Callable[..., Any], args: tuple, kwargs: dict, stop: FileStop,
             seconds: int) -> Iterator[Any]:
    """Inside the GPU call: ``train_fn`` in a thread, its records yielded as they come (``seconds`` sizes the
    call: see ``gpu_training``).  An exception ends the generator with it, after the records before it."""
    del seconds
    records: queue.Queue = queue.Queue()
    end = object()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            train_fn(*args, records.put, stop, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (raised again below, in the caller's thread)
            failure.append(exc)
        finally:
            records.put(end)

    threading.Thread(target=work, daemon=True, name="symptomgen-zerogpu-training").start()
    last = 0.0
    while (record := records.get()) is not end:
        if type(record).__name__ == "Progress":
            if time.monotonic() - last < _PROGRESS_EVERY_S:
                continue  # the job keeps only the latest step anyway
            last = time.monotonic()
        yield record
    if failure:
        raise failure[0]


def _requested(train_fn, args, kwargs, stop, seconds) -> int:
    return seconds


def gpu_training() -> Callable[..., Iterator[Any]]:
    """The training generator under ``spaces.GPU`` with the planned duration (a plain generator off ZeroGPU).

    Call it when the server's job launcher is built, as the page's other GPU handlers are decorated."""
    return gpu(_requested)(_records)
