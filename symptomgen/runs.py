"""Run folders: ``runs/<run_id>/`` with config, metrics, data split and best model.

Every write is atomic (temporary name, then rename), so a run killed at any
moment leaves the files of its completed epochs intact and loadable.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from . import layout as L
from .errors import RunNotReady
from .layout import MODEL_INFO, RUN_STAMP_RE
from .records import RunRecord, RunStatus

METRIC_COLUMNS = ["epoch", "transformer", "batch_size", "gpu", "training_loss", "validation_loss",
                  "epoch_duration_sec", "perplexity", "tokens_per_sec", "learning_rate", "is_best",
                  "taught_score", "unseen_score", "constant_score", "is_kept"]
"""metrics.csv's columns; files written before the last four were added read with them empty (``Run.metrics``)."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(L.temp_file(path.name, os.getpid()))
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit].strip("-")


def dataset_slug(source: str | None) -> str:
    """A short name for a run's data, for its id: ``sample``, a Hub dataset's name (``symptom2disease``), an
    uploaded file's stem (Gradio keeps the visitor's file name); lower case, at most 32 characters."""
    text = str(source or "").strip()
    if not text:
        return ""
    name = Path(text).stem if Path(text).suffix else text.rstrip("/").split("/")[-1]
    return _slug(name.lower(), 32)


def new_run_id(model: str, data: str | None = None) -> str:
    """``<date>-<time>-<data>-<model>`` (``20261207-001300-symptom2disease-scratch``; without ``data``,
    ``<date>-<time>-<model>`` as before).  ``RunStore.new_id`` adds ``-2``, ``-3``… while that name is taken."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    short = _slug(model.split("/")[-1], 40) or "model"
    data_part = dataset_slug(data)
    return f"{stamp}-{data_part}-{short}" if data_part and data_part != short else f"{stamp}-{short}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ModelInfo:
    """What a saved model folder is: the epoch its weights come from and their validation loss (None: unknown)."""

    epoch: int | None = None
    val_loss: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "val_loss": self.val_loss}

    @classmethod
    def from_json(cls, raw: Any) -> ModelInfo:
        """Typed from anything (an imported file too): a positive whole epoch and a finite loss, or None."""
        raw = raw if isinstance(raw, dict) else {}
        epoch, loss = raw.get("epoch"), raw.get("val_loss")
        epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > 0 else None
        loss = float(loss) if isinstance(loss, (int, float)) and not isinstance(loss, bool) else None
        return cls(epoch, loss if loss is not None and math.isfinite(loss) else None)


@dataclass(frozen=True)
class Run:
    """One run folder and the files in it (a ``RunStore`` finds, makes and removes them)."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / L.RECORD

    @property
    def metrics_path(self) -> Path:
        return self.path / L.METRICS

    @property
    def best_dir(self) -> Path:
        return self.path / L.BEST

    @property
    def base_dir(self) -> Path:
        return self.path / L.BASE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / L.CHECKPOINTS

    def record(self) -> RunRecord:
        """What config.json says, typed; a missing or damaged file reads as an empty record (status unknown)."""
        try:
            raw = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = {}
        return RunRecord.from_json(raw)

    def update(self, **changes: Any) -> RunRecord:
        """Change fields of the record and write it atomically; returns the new record."""
        rec = self.record().with_(**changes)
        atomic_write_json(self.config_path, rec.to_json())
        return rec

    @staticmethod
    def _on_this_host_dead(rec: RunRecord) -> bool:
        return rec.host == socket.gethostname() and (rec.pid is None or rec.pid <= 0 or not _pid_alive(rec.pid))

    def status(self) -> RunStatus:
        """The recorded status, except that a "running" run whose process is gone (on this host) is INTERRUPTED."""
        rec = self.record()
        if rec.status is RunStatus.RUNNING and self._on_this_host_dead(rec):
            return RunStatus.INTERRUPTED
        return rec.status

    def is_live(self) -> bool:
        """Known to be training right now: "running", recorded on this host, and its process alive.  (A run
        recorded on another host — a restarted container, a cluster node — cannot be checked: not live.)"""
        rec = self.record()
        return rec.status is RunStatus.RUNNING and rec.host == socket.gethostname() \
            and not self._on_this_host_dead(rec)

    def require_model(self) -> Run:
        """This run, if it can serve its model now; else ``RunNotReady`` saying why (the one place that asks)."""
        if self.status() is RunStatus.RUNNING:
            raise RunNotReady(f"Run {self.run_id} is still training; pick a finished run.")
        if not self.has_best():
            raise RunNotReady(f"Run {self.run_id} has no saved model yet (no epoch finished).")
        return self

    def metrics(self) -> pd.DataFrame:
        """The per-epoch rows; a column an older version did not write (the per-epoch scores) reads as empty."""
        if not self.metrics_path.is_file():
            return pd.DataFrame(columns=METRIC_COLUMNS)
        df = pd.read_csv(self.metrics_path)
        for column in METRIC_COLUMNS:
            if column not in df.columns:
                df[column] = float("nan")
        return df

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Rewrite the whole (small) CSV atomically with one more row (an older file gets today's header)."""
        old = self.metrics_path.read_text(encoding="utf-8") if self.metrics_path.is_file() else ""
        if old and old.split("\n", 1)[0].strip() != ",".join(METRIC_COLUMNS):  # e.g. resuming an older run
            df = self.metrics()
            old = df[METRIC_COLUMNS].to_csv(index=False)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
        if not old:
            writer.writeheader()
        writer.writerow(row)
        atomic_write_text(self.metrics_path, old + buf.getvalue())

    def truncate_metrics(self, last_epoch: int) -> None:
        """Keep only rows up to ``last_epoch`` (used when resuming from a checkpoint)."""
        df = self.metrics()
        if len(df):
            atomic_write_text(self.metrics_path, df[df["epoch"] <= last_epoch].to_csv(index=False))

    @property
    def steps_path(self) -> Path:
        return self.path / L.STEPS

    STEP_COLUMNS = ("step", "epoch", "loss", "learning_rate", "grad_norm")
    """steps.csv's columns (files from before the learning rate and the gradient norm have the first three)."""

    def append_step(self, step: int, epoch: float, loss: float, learning_rate: float | None = None,
                    grad_norm: float | None = None) -> None:
        """One point of the step curve (appended: a few bytes every few steps; a line a kill cut short is
        skipped when read).  A file with an older header is rewritten once with today's (empty where unknown)."""
        header = ",".join(self.STEP_COLUMNS)
        new = not self.steps_path.is_file()
        if not new:
            with open(self.steps_path, encoding="utf-8") as fh:
                if fh.readline().strip() != header:
                    atomic_write_text(self.steps_path, self.steps().to_csv(index=False))
        extra = ",".join("" if v is None else f"{v:.6g}" for v in (learning_rate, grad_norm))
        with open(self.steps_path, "a", encoding="utf-8", newline="") as fh:
            fh.write((header + "\n" if new else "") + f"{int(step)},{epoch:.6f},{loss:.6g},{extra}\n")

    def steps(self, last_epoch: float | None = None) -> pd.DataFrame:
        """The step curve's points (``STEP_COLUMNS``; learning rate and gradient norm NaN where not recorded), up to
        ``last_epoch`` when given."""
        columns = list(self.STEP_COLUMNS)
        if not self.steps_path.is_file():
            return pd.DataFrame(columns=columns)
        try:
            df = pd.read_csv(self.steps_path, on_bad_lines="skip")
        except (ValueError, OSError):
            return pd.DataFrame(columns=columns)
        for column in columns:
            if column not in df.columns:
                df[column] = float("nan")
        df = df[columns].apply(pd.to_numeric, errors="coerce").dropna(subset=columns[:3])
        return df[df["epoch"] <= last_epoch + 1e-9] if last_epoch is not None else df

    def truncate_steps(self, last_epoch: float) -> None:
        """Keep only the points up to ``last_epoch`` (resuming from that epoch's checkpoint)."""
        if self.steps_path.is_file():
            atomic_write_text(self.steps_path, self.steps(last_epoch).to_csv(index=False))

    def history(self, last_epoch: int | None = None):
        """(``EpochResult`` per finished epoch, step-curve points as ``(epoch, loss, learning_rate, grad_norm)``,
        the last two None where not recorded), up to ``last_epoch``: what a resumed run's page shows from before
        the stop."""
        from .events import EpochResult

        m = self.metrics()
        if last_epoch is not None and len(m):
            m = m[m["epoch"] <= last_epoch]
        epochs = tuple(EpochResult(epoch=int(r.epoch), train_loss=float(r.training_loss),
                                   val_loss=float(r.validation_loss), epoch_seconds=float(r.epoch_duration_sec),
                                   tokens_per_sec=float(r.tokens_per_sec), learning_rate=float(r.learning_rate),
                                   is_best=bool(r.is_best)) for r in m.itertuples(index=False))
        points = self.steps(last_epoch)
        known = lambda v: float(v) if pd.notna(v) and math.isfinite(float(v)) else None  # noqa: E731
        return epochs, tuple((float(e), float(v), known(lr), known(g)) for e, v, lr, g in zip(
            points["epoch"], points["loss"], points["learning_rate"], points["grad_norm"]))

    def checkpoint_epoch(self) -> int:
        """The whole epochs the last complete checkpoint holds (0 without one): where a resume starts."""
        ck = self.last_checkpoint()
        if ck is None:
            return 0
        try:
            state = json.loads((ck / L.TRAINER_STATE).read_text(encoding="utf-8"))
            return int(round(float(state.get("epoch", 0.0))))
        except (OSError, ValueError, TypeError):
            return 0

    def has_best(self) -> bool:
        """Whether ``best/`` holds a model now.  A pure question: a swap a kill interrupted is put back by
        ``RunStore.repair``, called where a run is opened for use or resumed."""
        return is_model_folder(self.best_dir)

    def drop_resume_state(self) -> int:
        """Delete what only a resume reads (optimizer, scheduler, scaler and RNG states) from the run's checkpoints;
        the bytes freed.  For a completed run, which can never resume: the optimizer's moments are twice the
        weights' size, most of what a finished run would otherwise keep.  The weights and the trainer state stay."""
        freed = 0
        for pattern in L.RESUME_ONLY:
            for path in self.checkpoints_dir.glob(f"{L.CHECKPOINT_PREFIX}*/{pattern}"):
                try:
                    size = path.stat().st_size
                    path.unlink()
                    freed += size
                except OSError:
                    continue  # already gone, or not ours to delete: the run stays readable either way
        return freed

    def save_model(self, model, tokenizer, folder: str = L.BEST, info: ModelInfo | None = None) -> None:
        """Write to ``.<folder>.tmp`` then swap it in, so the old copy survives a crash.  ``info`` (which epoch
        these weights are, their validation loss) is written inside the folder: it is swapped in with them, so a
        kill between the swap and the metrics row cannot leave the record describing other weights."""
        final = self.path / folder
        tmp = self.path / L.staging(folder)
        old = self.path / L.previous(folder)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if info is not None:
                atomic_write_json(tmp / MODEL_INFO, info.to_json())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a full disk must not leave half a model behind
            raise
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def best_info(self) -> ModelInfo:
        """The epoch and validation loss of the weights in ``best/``: from ``best/symptomgen.json`` (written with
        them), else (runs saved before that file existed) from the record."""
        try:
            raw = json.loads((self.best_dir / MODEL_INFO).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = None
        info = ModelInfo.from_json(raw)
        if info.epoch is None:
            rec = self.record()
            return ModelInfo(rec.best_epoch, rec.best_val_loss)
        return info

    def served_best(self) -> tuple[int | None, float | None]:
        """(epoch, validation loss) of the best model as served: ``best/``'s own file, written with the weights,
        unless keep=last made them another epoch's (then the record's best).  After a kill between the weights'
        swap and the record's update the record lags; every door that shows "best epoch" asks here."""
        rec, info = self.record(), self.best_info()
        if info.epoch and rec.kept_epoch in (None, rec.best_epoch):
            return info.epoch, info.val_loss
        return rec.best_epoch, rec.best_val_loss

    def resume_problem(self, check_live: bool = True) -> str | None:
        """Why this run cannot be resumed now (one sentence), or None.  ``check_live``: refuse a run whose
        trainer is alive on this host (under torchrun only rank 0 asks, before it marks the run itself)."""
        saved = self.record()
        if check_live and self.is_live():
            return f"Run {self.run_id} is still training (process {saved.pid}); stop it first, or wait for it to end."
        status = self.status()
        if status.completed:
            return (f"Run {self.run_id} has already {status.value.replace('-', ' ')}; nothing to resume (start a new "
                    "run to train longer).")
        if saved.data is None or saved.train is None:
            return (f"Run {self.run_id} has no usable saved settings to resume from (its config.json is missing or "
                    "damaged).")
        if self.last_checkpoint() is None:
            return f"Run {self.run_id} has no checkpoint to resume from."
        return None

    def last_checkpoint(self) -> Path | None:
        """The newest complete Trainer checkpoint (its trainer_state.json, written last, parses)."""
        cks = sorted(self.checkpoints_dir.glob(f"{L.CHECKPOINT_PREFIX}*"),
                     key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
        for ck in reversed(cks):
            try:
                json.loads((ck / L.TRAINER_STATE).read_text(encoding="utf-8"))
                return ck
            except (OSError, ValueError):
                continue  # killed while this checkpoint was being written
        return None

    def split_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        read = lambda name: pd.read_csv(self.path / name, dtype=str, keep_default_na=False)  # noqa: E731
        return read(L.TRAIN_SPLIT), read(L.VAL_SPLIT)

    def training_names(self, count: int = 6) -> list[str]:
        """The first ``count`` distinct names of the run's own training rows (what it learned: for examples and the
        model card's snippet), spacing squashed; ``[]`` when its split is missing or unreadable."""
        try:
            names = pd.read_csv(self.path / L.TRAIN_SPLIT, dtype=str, keep_default_na=False, usecols=["prompt"],
                                nrows=10_000)["prompt"]
        except (OSError, KeyError, ValueError):
            return []
        squashed = (" ".join(n.split()) for n in names)
        return list(dict.fromkeys(n for n in squashed if n))[:count]


def is_model_folder(path: Path | str) -> bool:
    """A ``save_pretrained`` folder: a whole model (``config.json``) or a LoRA adapter (``adapter_config.json``)."""
    path = Path(path)
    return (path / L.MODEL_CONFIG).is_file() or (path / L.ADAPTER_CONFIG).is_file()


def is_run_folder(path: Path | str) -> bool:
    """A folder laid out as a run (its record and split), as opposed to a model folder (whose config.json is a
    model's)."""
    path = Path(path)
    return (path / L.RECORD).is_file() and ((path / L.VAL_SPLIT).is_file() or (path / L.METRICS).is_file())


def looks_like_run_id(text: str) -> bool:
    """A name in the shape ``new_run_id`` gives (``20261126-081847-scratch``)."""
    return bool(RUN_STAMP_RE.match(str(text).strip()))


def run_label(run: Run) -> str:
    best = run.best_info().val_loss
    best_txt = f", best val {best:.3f}" if best is not None else ""
    return f"{run.run_id} ({run.status()}{best_txt})"


def parent_run_id(model: str) -> str | None:
    """The run's name when ``model`` is a run folder's ``best/`` (training continues from that run), else None."""
    path = Path(str(model)).expanduser()
    if path.name != L.BEST or not is_model_folder(path):
        return None
    rec = Run(path.parent).record()
    return path.parent.name if rec.run_id and rec.train is not None else None
