"""The checks before a run trains, in the caller's thread, so bad input fails at once with its message.

``preflight`` takes a new run's settings through the runs folder's disk limits, the model choice (a run name
becomes its ``best/`` folder), the offline fallback (with its notices), data preparation (the data's own errors),
the memory the run will need against what this machine has free (``memory``), and, where training runs in a sized
GPU call, the plan for that call (each refused in one sentence when it cannot fit).
``preflight_resume`` does the same for continuing a run.  ``JobManager.start``/``resume`` train what they return;
the Train tab's time estimate runs the same steps (without the disk limits and the GPU plan) and times the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .catalog import ModelSpec
from .config import DataConfig, TrainConfig
from .data import PreparedData, prepare
from .errors import TrainingFailed
from .memory import check_fits, estimate_for, mean_row_tokens
from .offline import with_offline_fallback
from .store import RunStore

GpuPlan = Callable[[TrainConfig, int, RunStore], "int | None"]
"""``(train, training rows, store) -> seconds`` to ask of a GPU call (None where no call is sized), raising
``TrainingFailed`` when the training cannot fit one (``launchers.Launcher.plan``)."""


@dataclass(frozen=True)
class Ready:
    """A run that passed its checks: what to train, what its job shows before the first record, and what the
    training function gets besides ``(data, train, store)``."""

    data: DataConfig
    train: TrainConfig
    notices: tuple[str, ...]
    summary: str
    """One line about the data (rows, split), shown while the run starts."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """``prepared=`` (a new run's data, prepared once) or ``resume=`` (the run to continue)."""
    gpu_seconds: int | None = None
    """The GPU call's planned duration, where training runs in one."""

    @property
    def prepared(self) -> PreparedData | None:
        return self.kwargs.get("prepared")


def preflight(data: DataConfig, train: TrainConfig, store: RunStore, *, fallback: bool = True,
              check_quota: bool = True, plan: GpuPlan | None = None) -> Ready:
    """A new run's checks, in order: disk limits (``QuotaExceeded``), the model choice, the offline fallback,
    the data (its ``ValueError``), the GPU plan (``TrainingFailed``)."""
    if check_quota:
        store.check_room()
    notices: list[str] = []
    train = train.with_(model=ModelSpec.parse(train.model, store).target)
    if fallback:
        data, train, notices = with_offline_fallback(data, train)
    prepared = prepare(data)
    if check_quota:  # Start, not the estimate: a run that cannot fit in this machine's free memory is refused
        check_fits(estimate_for(train, mean_row_tokens(prepared.train, train.max_length)))
    seconds = plan(train, len(prepared.train), store) if plan is not None else None
    return Ready(data, train, tuple(notices), prepared.summary(), {"prepared": prepared}, seconds)


def preflight_resume(run_id: str, store: RunStore, *, plan: GpuPlan | None = None) -> Ready:
    """Continuing ``run_id`` from its last checkpoint (as ``train --resume``): the run must be resumable; its
    saved settings and split are trained, under a GPU plan where one is sized."""
    run = store.get(run_id)
    problem = run.resume_problem()
    if problem:
        raise TrainingFailed(problem)
    rec = run.record()
    seconds = plan(rec.train, rec.train_rows or 0, store) if plan is not None else None
    rows = f"{rec.train_rows} training and {rec.val_rows} validation rows" if rec.train_rows else "its own split"
    return Ready(rec.data, rec.train, (), f"Resuming run {run.run_id} from its last checkpoint ({rows}).",
                 {"resume": run.run_id}, seconds)
