"""Settings that fit the data: does the time budget finish the epochs asked for, and the one-click fixes.

``EpochTimer`` times an epoch of these settings on this data (``timing.estimate_epoch_seconds``, through the same
checks as Start: ``preflight``), remembering the answer per data and model shape, so the estimate shown while the
form changes and the check at Start cost one probe between them.  ``fit_of`` compares that with the budget: a
budget that cannot finish one epoch refuses Start (the number, and the budget that fits, or the epochs that do).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from .. import config as C
from ..errors import InvalidInput

SAFETY = 1.25
"""The estimate leaves out loading the model, training the scratch tokenizer and saves: a fix asks this much more
time per epoch than the estimate, and a budget counts as fitting an epoch only with this margin."""


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 20 min``: a length of time as people read it."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s" if seconds < 600 else f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@dataclass(frozen=True)
class Fit:
    """How the settings' epochs and time budget fit one epoch's estimated seconds."""

    epoch_seconds: float
    epochs: int
    budget_minutes: float  # 0: no budget

    @property
    def needed_minutes(self) -> float:
        """The budget that fits every epoch asked for (with ``SAFETY``), rounded up to a whole minute."""
        limit = C.setting(C.TrainConfig, "max_minutes").max
        return float(min(limit, max(1, math.ceil(self.epochs * self.epoch_seconds * SAFETY / 60))))

    @property
    def epochs_that_fit(self) -> int:
        """Whole epochs the budget finishes (0 when not one)."""
        if not self.budget_minutes:
            return self.epochs
        return min(self.epochs, int(60 * self.budget_minutes // (self.epoch_seconds * SAFETY)))

    @property
    def refused(self) -> bool:
        """The budget cannot finish one epoch: Start would train and keep nothing."""
        return bool(self.budget_minutes) and self.epochs_that_fit == 0

    @property
    def cut_short(self) -> bool:
        return bool(self.budget_minutes) and self.epochs_that_fit < self.epochs

    def sentence(self) -> str:
        """What the budget does to this run, in words ("" when it finishes every epoch)."""
        per = duration(self.epoch_seconds)
        if self.refused:
            return (f"⛔ One epoch of this data takes about **{per}**, but the time budget is "
                    f"**{C.fmt_number(self.budget_minutes)} min**: not one epoch would finish, so nothing would be "
                    f"saved. Raise the budget to {C.fmt_number(self.needed_minutes)} min for {self.epochs} "
                    "epoch(s), or set it to 0 (no budget).")
        if self.cut_short:
            return (f"⚠️ One epoch takes about **{per}**: the {C.fmt_number(self.budget_minutes)}-min budget "
                    f"stops the run after about **{self.epochs_that_fit} of {self.epochs} epochs** (the best "
                    "finished epoch is kept).")
        return ""


def fix_updates(fit: Fit | None):
    """The two fix buttons: "set the budget that fits the epochs", "set the epochs that fit the budget"."""
    import gradio as gr

    if fit is None or not fit.cut_short:
        return gr.update(visible=False), gr.update(visible=False)
    budget = gr.update(visible=True, value=f"Set the time budget to {C.fmt_number(fit.needed_minutes)} min "
                                           f"(fits {fit.epochs} epochs)")
    epochs = (gr.update(visible=True, value=f"Set epochs to {fit.epochs_that_fit} (fits "
                                            f"{C.fmt_number(fit.budget_minutes)} min)")
              if fit.epochs_that_fit >= 1 else gr.update(visible=False))
    return budget, epochs


def fix_values(fit: Fit | None) -> dict:
    """What the fix buttons set: ``{"max_minutes": …, "epochs": …}``."""
    if fit is None:
        return {}
    return {"max_minutes": fit.needed_minutes, "epochs": max(1, fit.epochs_that_fit)}


class EpochTimer:
    """Seconds per epoch of a form's data and model shape, probed once per shape (a handful remembered)."""

    def __init__(self, store, size: int = 16):
        self.store, self.size = store, size
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(dcfg: C.DataConfig, tcfg: C.TrainConfig) -> tuple:
        shape = (tcfg.model, tcfg.batch_size, tcfg.max_length, tcfg.grad_accum, tcfg.lora_rank, tcfg.scratch_layers,
                 tcfg.scratch_width, tcfg.scratch_vocab, tcfg.loss_on)
        return (repr(dcfg), shape)

    def check(self, dcfg: C.DataConfig, tcfg: C.TrainConfig):
        """(``Ready`` of Start's checks, seconds per epoch) — raises what Start would (bad data, a model that cannot
        load offline), less the disk limits and the GPU plan."""
        from ..preflight import preflight
        from ..timing import estimate_epoch_seconds

        ready = preflight(dcfg, tcfg, self.store, check_quota=False)
        key = self._key(ready.data, ready.train)
        with self._lock:
            seconds = self._cache.get(key)
        if seconds is None:
            seconds = estimate_epoch_seconds(ready.prepared, ready.train)
            with self._lock:
                self._cache[key] = seconds
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return ready, seconds

    def fit(self, dcfg: C.DataConfig, tcfg: C.TrainConfig) -> Fit:
        ready, seconds = self.check(dcfg, tcfg)
        return Fit(seconds, ready.train.epochs, ready.train.max_minutes or 0.0)

    def refuse_unless_fits(self, dcfg: C.DataConfig, tcfg: C.TrainConfig) -> None:
        """Raise ``InvalidInput`` (the number and the fix) when the budget cannot finish one epoch.  Only with a
        budget: without one every epoch finishes, and no probe is run."""
        if not tcfg.max_minutes:
            return
        try:
            fit = self.fit(dcfg, tcfg)
        except (MemoryError, RuntimeError, OSError):
            return  # the probe itself did not fit here (a huge model): the training says why, in its own process
        if fit.refused:
            raise InvalidInput(fit.sentence().replace("⛔ ", "Start refused: ").replace("**", ""))
