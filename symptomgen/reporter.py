"""``EpochReporter``: the Trainer callback that turns each epoch into a validated, recorded ``EpochResult``.

After every optimizer step it reports ``Progress`` and honours the stop flag; after
every epoch it measures the validation loss per real token, keeps the best model,
appends the metrics row and applies early stopping.  Only the main process gets a
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
from .batching import mean_token_loss
from .config import TrainConfig
from .events import EpochResult, Event, Progress


class EpochReporter(TrainerCallback):
    """Turns Trainer hooks into records; validates, keeps the best model, honours stop.

    ``run`` is given on the main process only (None elsewhere): it alone writes the run folder.
    """

    def __init__(self, run: runs_mod.Run | None, tokenizer, val_rows: list[dict], train_tokens: int,
                 cfg: TrainConfig, emit: Callable[[Event], None], stop: threading.Event | None,
                 best_val: float = math.inf, best_epoch: int | None = None, bad_epochs: int = 0,
                 phase: Callable[[str], AbstractContextManager] = nullcontext):
        self.run, self.tokenizer, self.val_rows = run, tokenizer, val_rows
        self.train_tokens, self.cfg, self.emit, self.stop = train_tokens, cfg, emit, stop
        self.best_val, self.best_epoch = best_val, best_epoch
        self.bad_epochs, self.phase = bad_epochs, phase
        self.epochs_done = 0
        self.stopped = self.early_stopped = False
        self.error: str | None = None
        self._epoch_start = self._train_end = 0.0
        self._epoch_first_step = 0
        self._epoch_complete = False

    def on_epoch_begin(self, args, state, control, **kw):
        self._epoch_start = time.perf_counter()
        self._epoch_first_step = state.global_step
        self._epoch_complete = False

    def on_step_end(self, args, state, control, **kw):
        self.emit(Progress(state.global_step, state.max_steps, float(state.epoch or 0.0)))
        if self.stop is not None and self.stop.is_set():
            self.stopped = True
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kw):
        # A stop mid-epoch also ends the epoch loop; such a partial epoch is not reported.
        self._epoch_complete = not self.stopped
        self._train_end = time.perf_counter()

    def on_log(self, args, state, control, logs=None, model=None, **kw):
        if not logs or "loss" not in logs or not self._epoch_complete:
            return
        self._epoch_complete = False
        epoch = int(round(state.epoch or 0))
        train_loss = float(logs["loss"])
        with self.phase("eval"):
            val_loss = mean_token_loss(model, self.val_rows, self.tokenizer.pad_token_id, self.cfg.batch_size)
        model.train()
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            self.error = (f"Training diverged at epoch {epoch} (loss is not a number); try a lower learning "
                          "rate. The best earlier epoch is kept.")
            control.should_training_stop = True
            control.should_save = False
            return
        is_best = val_loss < self.best_val
        if is_best:
            self.best_val, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            if self.run is not None:
                with self.phase("save_best"):
                    self.run.save_model(model, self.tokenizer)
        else:
            self.bad_epochs += 1
        seconds = time.perf_counter() - self._epoch_start
        train_seconds = max(self._train_end - self._epoch_start, 1e-9)
        # A resumed epoch runs only its remaining steps: count only their share of the epoch's tokens.
        steps_per_epoch = state.max_steps / max(args.num_train_epochs, 1)
        share = min(1.0, (state.global_step - self._epoch_first_step) / steps_per_epoch) if steps_per_epoch else 1.0
        result = EpochResult(epoch=epoch, train_loss=train_loss, val_loss=val_loss, epoch_seconds=seconds,
                             tokens_per_sec=self.train_tokens * share / train_seconds,
                             learning_rate=float(logs.get("learning_rate", self.cfg.learning_rate)),
                             is_best=is_best)
        self.epochs_done = epoch
        if self.run is not None:
            self.run.append_metrics({
                **result.to_dict(), "training_loss": train_loss, "validation_loss": val_loss,
                "epoch_duration_sec": round(seconds, 3), "transformer": self.cfg.model,
                "batch_size": self.cfg.batch_size, "gpu": device_name(),
                "tokens_per_sec": round(result.tokens_per_sec, 1),
            })
            self.run.update(best_epoch=self.best_epoch, best_val_loss=self.best_val, epochs_done=epoch)
        self.emit(result)
        if self.cfg.patience and self.bad_epochs >= self.cfg.patience:
            self.early_stopped = True
            control.should_training_stop = True


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    mps = getattr(torch.backends, "mps", None)
    return "Apple MPS" if mps is not None and mps.is_available() else "cpu"
