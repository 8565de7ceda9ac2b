"""What training reports as it goes: ``RunStarted`` once its folder exists, ``Progress`` per optimizer step,
``EpochResult`` per epoch, then ``RunSummary``.

Plain records without torch, so followers (``jobs``, the UI) can import them before a job starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .records import RunStatus

PERPLEXITY_CAP_LOSS = 50.0
"""The loss where perplexity stops growing (e**50): a diverged run shows a large finite number, not an overflow."""


def perplexity(mean_loss: float) -> float:
    """Perplexity of a mean per-token loss (natural log): ``e ** loss``, capped at ``PERPLEXITY_CAP_LOSS``."""
    return math.exp(min(mean_loss, PERPLEXITY_CAP_LOSS))


@dataclass(frozen=True)
class RunStarted:
    """The run's folder exists and is marked running: sent first, so whoever follows a training process can mark
    the run if that process dies before it reports how the run ended."""

    run_dir: Path


@dataclass(frozen=True)
class Progress:
    """Position within training, sent after every optimizer step, with what a page needs to show time left."""

    step: int
    total_steps: int
    epoch: float
    elapsed: float | None = None
    """Seconds since this training session's first step began (validation passes and saves included)."""
    seconds_per_step: float | None = None
    """``elapsed`` over the steps this session has done: validation and saves are spread over the steps."""
    seconds_left: float | None = None
    """Estimated seconds to the end of the requested epochs: the steps left × ``seconds_per_step``."""
    loss: float | None = None
    """The mean training loss per token of the optimizer steps since the last ``Progress`` that carried one (sent
    every ``step_window`` steps: a smoothed step curve); None on the steps in between."""
    budget_left: float | None = None
    """Seconds until the time budget (``max_minutes``) stops the run; None without a budget."""
    tokens_seen: int | None = None
    """Real (non-padding) tokens trained on so far: the epochs done, fractional, × the training split's tokens."""
    memory_bytes: int | None = None
    """The training process's memory now: resident RAM, or GPU memory allocated when it trains on CUDA."""
    learning_rate: float | None = None
    """The mean learning rate of the optimizer steps in ``loss``'s window (what the optimizer stepped with); None
    when ``loss`` is."""
    grad_norm: float | None = None
    """The mean gradient norm, before clipping, of the optimizer steps in ``loss``'s window (the Trainer's own
    ``grad_norm``); None when ``loss`` is, or when it was not finite."""


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
    taught_score: float | None = None
    """Greedy score (phrase F1 for lists, ROUGE-L for free text) on the per-epoch sample of training rows
    (``epochscore``); None when not scored (``score_rows`` 0, or no time left under the cap)."""
    unseen_score: float | None = None
    """The same on the per-epoch sample of validation rows."""
    constant_score: float | None = None
    """The constant answer (``baselines``) scored on the same unseen sample rows: the line to beat."""
    is_kept: bool = False
    """This epoch's model went to ``best/`` (by the run's ``keep``: score, validation loss or last)."""

    @property
    def perplexity(self) -> float:
        return perplexity(self.val_loss)

    @property
    def score(self) -> float | None:
        """What ``keep=score`` ranks epochs by: the mean of the taught and unseen sample scores (either alone when
        only one was scored)."""
        found = [s for s in (self.taught_score, self.unseen_score) if s is not None]
        return sum(found) / len(found) if found else None

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
    kept_epoch: int | None = None
    """The epoch whose model ``best/`` holds (``best_epoch``; with ``keep=score`` the best-scoring one; with
    ``keep=last`` the last finished one)."""


Event = RunStarted | Progress | EpochResult | RunSummary
