"""What training reports as it goes: ``Progress`` per optimizer step, ``EpochResult`` per epoch, then ``RunSummary``.

Plain records without torch, so followers (``jobs``, the UI) can import them before a job starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .records import RunStatus


@dataclass(frozen=True)
class Progress:
    """Position within training, sent after every optimizer step."""

    step: int
    total_steps: int
    epoch: float


@dataclass(frozen=True)
class EpochResult:
    """What one finished epoch achieved (losses are per real token)."""

    epoch: int
    train_loss: float
    val_loss: float
    epoch_seconds: float
    tokens_per_sec: float
    learning_rate: float
    is_best: bool

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.val_loss, 50.0))

    def to_dict(self) -> dict:
        return {**asdict(self), "perplexity": self.perplexity}


@dataclass(frozen=True)
class RunSummary:
    """How a run ended."""

    run_dir: Path
    status: RunStatus  # FINISHED | STOPPED | EARLY_STOPPED | FAILED (equal to its string value)
    epochs_done: int
    best_epoch: int | None
    best_val_loss: float | None
    seconds: float
    message: str = ""


Event = Progress | EpochResult | RunSummary
