"""``EpochReporter``: the Trainer callback that turns each epoch into a validated, recorded ``EpochResult``.

After every optimizer step it reports ``Progress`` (with the mean training loss, learning rate and gradient norm
of the last few steps every ``step_window`` steps: the page's step curve) and honours the stop flag; after
every epoch it measures the validation loss per real token, keeps the best model,
appends the metrics row, applies early stopping and stops a run whose runs folder has
grown past its disk limit (``Settings.max_runs_bytes``).  Only the main process gets a
``run`` to write to.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Callable

import torch
from transformers import TrainerCallback

from . import runs as runs_mod
from .batching import Deferred, mean_token_loss
from .config import TrainConfig
from .events import EpochResult, Event, Progress
from .memory import process_rss
from .settings import world_size
from .store import RunStore

STEP_POINTS_PER_EPOCH = 25
"""About this many step-loss points per epoch (each the mean of the steps since the last one)."""
SCORES_PER_RUN = 10
"""About this many epochs of a run generate and score the per-epoch sample (``scored_epoch``): epoch 1, every
``ceil(epochs / SCORES_PER_RUN)``-th and the last.  Generating costs a distilgpt2-shaped model 4 s of a 27 s epoch on
2 cores: every epoch of a 30-epoch run, 15% of its time; a tenth of them, under 5% (bench/RESULTS.md, issue 25)."""
CHECKPOINT_COST_SHARE = 0.05
"""Most of the training time the Trainer's resumable checkpoints may take: an epoch's checkpoint is skipped while
less than ``1 / share`` times the last one's cost has passed since it (bench/RESULTS.md, issue 25).  Only a crash
reads a checkpoint so skipped (Stop, the time budget and the last epoch always save), and it then redoes at most
that much training."""


def scored_epoch(epoch: int, epochs: int) -> bool:
    """Whether ``epoch`` (1-based) of an ``epochs``-epoch run is scored: by number alone, so a resumed run and
    every machine score (and can keep) the same epochs."""
    return epoch == 1 or epoch >= epochs or epoch % max(1, math.ceil(epochs / SCORES_PER_RUN)) == 0


def training_precision(args, model) -> AbstractContextManager:
    """Validation and the epoch's score in the precision training computes in: bf16 autocast where the Trainer
    trains under it (a CPU with native bf16, or a bf16 GPU), else as the weights are."""
    if getattr(args, "bf16", False):
        return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)
    return nullcontext()


def step_window(steps_per_epoch: float) -> int:
    """Optimizer steps averaged into one point of the step curve: at least 1, ``STEP_POINTS_PER_EPOCH`` an epoch."""
    return max(1, int(steps_per_epoch // STEP_POINTS_PER_EPOCH))


class EpochReporter(TrainerCallback):
    """Turns Trainer hooks into records; validates, keeps the best model, honours stop.

    ``run`` is given on the main process only (None elsewhere): it alone writes the run folder.  ``val_rows`` and
    ``train_tokens`` may be ``Deferred``: the reporter starts them after the first step, reports no tokens seen
    until the count is in, and waits for both at the epoch's end.
    """

    def __init__(self, run: runs_mod.Run | None, tokenizer, val_rows: list[dict] | Deferred[list[dict]],
                 train_tokens: int | Deferred[int],
                 cfg: TrainConfig, emit: Callable[[Event], None], stop: threading.Event | None,
                 best_val: float = math.inf, best_epoch: int | None = None, bad_epochs: int = 0,
                 phase: Callable[[str], AbstractContextManager] = nullcontext,
                 clock: Callable[[], float] = time.monotonic, scorer=None, best_score: float | None = None):
        self.run, self.tokenizer, self.val_rows = run, tokenizer, val_rows
        # The time budget and the time-left estimate read ``clock`` once per step (and once at the start).
        self.clock, self.out_of_time, self.out_of_room = clock, False, False
        self._t0, self._first_step, self._deadline = 0.0, 0, None
        self.kept_epoch: int | None = best_epoch
        # keep=score: the per-epoch sample's scorer (``epochscore.EpochScorer``; None: not scored) and the best
        # mean score so far, with the taught and unseen scores of the kept epoch (for the summary's sentence).
        self.scorer, self.best_score = scorer, best_score
        self.kept_scores: tuple[float | None, float | None] | None = None
        self.train_tokens, self.cfg, self.emit, self.stop = train_tokens, cfg, emit, stop
        self.best_val, self.best_epoch = best_val, best_epoch
        self.bad_epochs, self.phase = bad_epochs, phase
        self.epochs_done = 0
        self.stopped = self.early_stopped = False
        self.error: str | None = None
        self._epoch_start = self._train_end = 0.0
        self._epoch_first_step = 0
        self._epoch_complete = False
        self._loss_sum, self._loss_steps, self._window = None, 0, 1
        self._log_end, self._last_save, self._save_cost = 0.0, None, 0.0  # checkpoint cadence (see on_save)
        self.wall: Callable[[], float] = time.monotonic  # its clock: ``clock`` is the budget's, read once a step
        # The window's gradient norms (tensors, summed on the device) and learning rates (Python floats).
        self._norm_sum, self._norm_steps, self._lr_sum, self._lr_steps = None, 0, 0.0, 0

    def add_step_loss(self, loss) -> None:
        """One micro-batch's loss as ``Trainer.training_step`` returns it (already divided for gradient
        accumulation, so one optimizer step's micro-batches add up to its loss); kept as a tensor: no sync here."""
        loss = loss.detach().float()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss

    def add_grad_norm(self, norm) -> None:
        """One optimizer step's gradient norm before clipping, as the Trainer's ``clip_grad_norm_`` returns it (a
        tensor: kept on its device, no sync here; a float under DeepSpeed; None when there is none)."""
        if norm is None:
            return
        norm = norm.detach().float() if isinstance(norm, torch.Tensor) else float(norm)
        self._norm_sum = norm if self._norm_sum is None else self._norm_sum + norm
        self._norm_steps += 1

    def on_optimizer_step(self, args, state, control, optimizer=None, **kw):
        # The rate this step used: read after the optimizer stepped, before the scheduler moves it (as the
        # Trainer's own log does).  A plain float in the optimizer's param group: no device sync.
        lr = optimizer.param_groups[0].get("lr") if optimizer is not None and optimizer.param_groups else None
        if isinstance(lr, (int, float)):
            self._lr_sum += float(lr)
            self._lr_steps += 1

    def _window_loss(self, state) -> tuple[float, float | None, float | None] | None:
        """(mean loss, mean learning rate, mean gradient norm) of the steps since the last point, when this step
        closes a window (or an epoch).  The loss and the norm come off the device in one transfer: the one sync
        per window the step curve always cost."""
        if self._loss_sum is None:
            return None
        self._loss_steps += 1
        at_epoch_end = abs(float(state.epoch or 0.0) - round(float(state.epoch or 0.0))) < 1e-9
        if self._loss_steps < self._window and not at_epoch_end:
            return None
        norm_sum, loss_sum = self._norm_sum, self._loss_sum
        if isinstance(norm_sum, torch.Tensor) and norm_sum.device == loss_sum.device:
            loss_total, norm_total = torch.stack([loss_sum, norm_sum]).tolist()
        else:
            loss_total = float(loss_sum.item())
            norm_total = float(norm_sum.item()) if isinstance(norm_sum, torch.Tensor) else norm_sum
        value = loss_total / self._loss_steps
        norm = norm_total / self._norm_steps if norm_total is not None and self._norm_steps else None
        lr = self._lr_sum / self._lr_steps if self._lr_steps else None
        self._loss_sum, self._loss_steps = None, 0
        self._norm_sum, self._norm_steps, self._lr_sum, self._lr_steps = None, 0, 0.0, 0
        if not math.isfinite(value):
            return None
        return value, lr, norm if norm is not None and math.isfinite(norm) else None

    def on_train_begin(self, args, state, control, **kw):
        self._t0, self._first_step = self.clock(), state.global_step
        self._deadline = self._t0 + 60 * self.cfg.max_minutes if self.cfg.max_minutes else None
        self._window = step_window(state.max_steps / max(args.num_train_epochs, 1))

    def on_epoch_begin(self, args, state, control, **kw):
        self._epoch_start = time.perf_counter()
        self._epoch_first_step = state.global_step
        self._epoch_complete = False

    def on_step_end(self, args, state, control, **kw):
        now = self.clock()
        elapsed = now - self._t0
        per_step = elapsed / max(1, state.global_step - self._first_step)
        left = per_step * max(0, state.max_steps - state.global_step)
        budget_left = max(0.0, self._deadline - now) if self._deadline is not None else None
        loss, lr, norm = self._window_loss(state) or (None, None, None)
        epoch = float(state.epoch or 0.0)
        tokens = self.train_tokens.peek() if isinstance(self.train_tokens, Deferred) else self.train_tokens
        self.emit(Progress(state.global_step, state.max_steps, epoch, elapsed, per_step, left, loss, budget_left,
                           tokens_seen=None if tokens is None else int(tokens * epoch),
                           memory_bytes=training_memory(), learning_rate=lr, grad_norm=norm))
        if loss is not None and self.run is not None:
            self.run.append_step(state.global_step, epoch, loss, lr, norm)
        if self.stop is not None and self.stop.is_set():
            self.stopped = True
            control.should_training_stop = True
        elif self._deadline is not None and now >= self._deadline:
            self.out_of_time = True  # the time budget is spent: end at this step, as Stop does
            control.should_training_stop = True
        for deferred in (self.train_tokens, self.val_rows):  # after the first step has been reported
            if isinstance(deferred, Deferred):
                deferred.start()

    def on_epoch_end(self, args, state, control, **kw):
        # A stop (or the time budget) mid-epoch also ends the epoch loop; such a partial epoch is not reported.
        # One that came at the epoch's last step ends a whole epoch (the Trainer's epoch is then a whole number).
        self._epoch_complete = abs(float(state.epoch or 0.0) - round(float(state.epoch or 0.0))) < 1e-9
        self._train_end = time.perf_counter()
        if self._epoch_complete:  # on_log needs them, before the scorer uses the tokenizer (its padding settings)
            if isinstance(self.train_tokens, Deferred):
                self.train_tokens = self.train_tokens.get()
            if isinstance(self.val_rows, Deferred):
                self.val_rows = self.val_rows.get()

    def on_log(self, args, state, control, logs=None, model=None, **kw):
        if not logs or "loss" not in logs or not self._epoch_complete:
            return
        self._epoch_complete = False
        epoch = int(round(state.epoch or 0))
        train_loss = float(logs["loss"])
        with self.phase("eval"), training_precision(args, model):
            val_loss = mean_token_loss(model, self.val_rows, self.tokenizer.pad_token_id, self.cfg.batch_size)
        model.train()
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            self.error = (f"Training diverged at epoch {epoch} (loss is not a number); try a lower learning "
                          "rate. The best earlier epoch is kept.")
            control.should_training_stop = True
            control.should_save = False
            return
        taught = unseen = None
        if self.scorer is not None and scored_epoch(epoch, self.cfg.epochs):
            with self.phase("score"), training_precision(args, model):
                taught, unseen = self.scorer.score(model, self.tokenizer)
            model.train()
        is_best = val_loss < self.best_val
        if is_best:
            self.best_val, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
        else:
            self.bad_epochs += 1
        scores = [s for s in (taught, unseen) if s is not None]
        score = sum(scores) / len(scores) if scores else None
        if self.cfg.keep == "score":
            # An epoch without a score (none fitted under the cap) is kept only while nothing else is.
            keep = (self.kept_epoch is None) if score is None else (self.best_score is None or score > self.best_score)
            if keep and score is not None:
                self.best_score = score
        else:
            keep = is_best or self.cfg.keep == "last"  # keep=last: best/ holds each epoch's model in turn
        if keep:
            self.kept_epoch, self.kept_scores = epoch, (taught, unseen)
            if self.run is not None:
                with self.phase("save_best"):
                    self.run.save_model(model, self.tokenizer, info=runs_mod.ModelInfo(epoch, val_loss))
        seconds = time.perf_counter() - self._epoch_start
        train_seconds = max(self._train_end - self._epoch_start, 1e-9)
        # A resumed epoch runs only its remaining steps: count only their share of the epoch's tokens.
        steps_per_epoch = state.max_steps / max(args.num_train_epochs, 1)
        share = min(1.0, (state.global_step - self._epoch_first_step) / steps_per_epoch) if steps_per_epoch else 1.0
        result = EpochResult(epoch=epoch, train_loss=train_loss, val_loss=val_loss, epoch_seconds=seconds,
                             tokens_per_sec=self.train_tokens * share / train_seconds,
                             learning_rate=float(logs.get("learning_rate", self.cfg.learning_rate)),
                             is_best=is_best, taught_score=taught, unseen_score=unseen,
                             constant_score=self.scorer.constant if self.scorer is not None else None,
                             is_kept=keep)
        self.epochs_done = epoch
        if self.run is not None:
            self.run.append_metrics({
                **result.to_dict(), "training_loss": train_loss, "validation_loss": val_loss,
                "epoch_duration_sec": round(seconds, 3), "transformer": self.cfg.model,
                "batch_size": self.cfg.batch_size, "gpu": device_name(),
                "tokens_per_sec": round(result.tokens_per_sec, 1),
                **{k: None if v is None else round(v, 4) for k, v in (
                    ("taught_score", taught), ("unseen_score", unseen), ("constant_score", result.constant_score))},
            })
            self.run.update(best_epoch=self.best_epoch, best_val_loss=self.best_val, epochs_done=epoch,
                            kept_epoch=self.kept_epoch)
        self.emit(result)
        if self.run is not None and RunStore(self.run.path.parent).over_limit():  # the store the run is in
            self.out_of_room = True  # the runs folder passed its disk limit: end now, keeping what is saved
            control.should_training_stop = True
        elif self.cfg.patience and self.bad_epochs >= self.cfg.patience:
            self.early_stopped = True
            control.should_training_stop = True
        self._skip_early_checkpoint(state, control)

    def _skip_early_checkpoint(self, state, control) -> None:
        """Leave out this epoch's checkpoint while the last one is recent for its cost (``CHECKPOINT_COST_SHARE``),
        unless the run ends or stops here, where a resume (or the run's record) reads it.  Every rank of a
        distributed run saves together, so there each epoch still saves (their clocks could disagree)."""
        now = self.wall()
        self._log_end = now
        ending = (world_size() > 1 or control.should_training_stop or state.global_step >= state.max_steps
                  or (self.stop is not None and self.stop.is_set()))
        if control.should_save and not ending and self._last_save is not None \
                and now - self._last_save < self._save_cost / CHECKPOINT_COST_SHARE:
            control.should_save = False

    def on_save(self, args, state, control, **kw):
        # Called right after the Trainer wrote a checkpoint, which it does just after the epoch's log.
        now = self.wall()
        if self._log_end:
            self._save_cost = max(0.0, now - self._log_end)
        self._last_save = now


def training_memory() -> int | None:
    """This process's memory now: GPU memory allocated on CUDA, else its resident RAM (``memory.process_rss``)."""
    import os

    if torch.cuda.is_available():
        return int(torch.cuda.memory_allocated())
    return process_rss(os.getpid())


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    mps = getattr(torch.backends, "mps", None)
    return "Apple MPS" if mps is not None and mps.is_available() else "cpu"
