"""Run folders: ``runs/<run_id>/`` with config, metrics, data split and best model.

Every write is atomic (temporary name, then rename), so a run killed at any
moment leaves the files of its completed epochs intact and loadable.
"""

from __future__ import annotations

from .errors import InvalidInput, RunNotFoundError

import csv
import io
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

METRIC_COLUMNS = ["epoch", "transformer", "batch_size", "gpu", "training_loss", "validation_loss",
                  "epoch_duration_sec", "perplexity", "tokens_per_sec", "learning_rate", "is_best"]
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RUN_STAMP_RE = re.compile(r"^\d{8}-\d{6}(-|$)")  # how new_run_id names runs
DEFAULT_RUNS_DIR = Path(os.environ.get("SYMPTOMGEN_RUNS_DIR", "runs"))



def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def new_run_id(model: str, runs_dir: Path | str | None = None) -> str:
    """``<date>-<time>-<model>``; with ``runs_dir``, ``-2``, ``-3``… added while that name is taken."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    short = re.sub(r"[^A-Za-z0-9]+", "-", model.split("/")[-1]).strip("-")[:40] or "model"
    run_id = f"{stamp}-{short}"
    if runs_dir is not None:
        n = 2
        while (Path(runs_dir) / run_id).exists():
            run_id, n = f"{stamp}-{short}-{n}", n + 1
    return run_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Run:
    """One run folder and the files in it."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def best_dir(self) -> Path:
        return self.path / "best"

    @property
    def base_dir(self) -> Path:
        return self.path / "base"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def read_config(self) -> dict[str, Any]:
        try:
            cfg = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return cfg if isinstance(cfg, dict) else {}  # a damaged file reads as "unknown", never a crash

    def update_config(self, **changes: Any) -> dict[str, Any]:
        cfg = self.read_config()
        cfg.update(changes)
        atomic_write_json(self.config_path, cfg)
        return cfg

    def _process(self, cfg: dict) -> tuple[bool, int]:
        """(recorded on this host, its pid or -1)."""
        try:
            pid = int(cfg.get("pid", -1))
        except (TypeError, ValueError):
            pid = -1
        return cfg.get("host") == socket.gethostname(), pid

    def status(self) -> str:
        """finished / stopped / failed / running / interrupted (running but its process is gone)."""
        cfg = self.read_config()
        status = cfg.get("status", "unknown")
        if status == "running":
            same_host, pid = self._process(cfg)
            if same_host and (pid <= 0 or not _pid_alive(pid)):
                return "interrupted"
        return status

    def is_live(self) -> bool:
        """Known to be training right now: "running", recorded on this host, and its process alive.  (A run
        recorded on another host — a restarted container, a cluster node — cannot be checked: not live.)"""
        cfg = self.read_config()
        same_host, pid = self._process(cfg)
        return cfg.get("status") == "running" and same_host and pid > 0 and _pid_alive(pid)

    def metrics(self) -> pd.DataFrame:
        if not self.metrics_path.is_file():
            return pd.DataFrame(columns=METRIC_COLUMNS)
        return pd.read_csv(self.metrics_path)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Rewrite the whole (small) CSV atomically with one more row."""
        old = self.metrics_path.read_text(encoding="utf-8") if self.metrics_path.is_file() else ""
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

    def has_best(self) -> bool:
        if not (self.best_dir / "config.json").is_file():
            self._restore_saved("best")
        return (self.best_dir / "config.json").is_file()

    def _restore_saved(self, folder: str) -> None:
        """A kill between ``save_model``'s two renames leaves the previous copy as ``.<folder>.old``: put it back
        (it is the one the metrics and config describe; the newer one was never recorded)."""
        old, final = self.path / f".{folder}.old", self.path / folder
        # Never while its trainer lives: between save_model's renames the folder is briefly absent.
        if not final.exists() and (old / "config.json").is_file() and not self.is_live():
            try:
                os.replace(old, final)
            except OSError:
                pass

    def base_model(self) -> str | None:
        """What this run started from, to compare with: its own ``base/`` (scratch runs, runs trained on from
        another run), else the model it names.  For an imported run (its config came from a stranger's zip or
        repo) only a Hub id this server allows: never a path on this machine.  None when there is none."""
        from .config import SCRATCH_MODEL
        from .hub import check_model_allowed, looks_like_hub_id

        if (self.base_dir / "config.json").is_file():
            return str(self.base_dir)
        cfg = self.read_config()
        model = str((cfg.get("train") or {}).get("model", "")).strip()
        if not model or model.lower() == SCRATCH_MODEL or looks_like_run_id(model):
            return None
        if not cfg.get("imported_from"):
            return model  # trained here, from a Hub id or a folder this machine's user chose
        if not looks_like_hub_id(model):
            return None
        try:
            check_model_allowed(model)
        except ValueError:
            return None
        return model

    def save_model(self, model, tokenizer, folder: str = "best") -> None:
        """Write to ``.<folder>.tmp`` then swap it in, so the old copy survives a crash."""
        final = self.path / folder
        tmp = self.path / f".{folder}.tmp"
        old = self.path / f".{folder}.old"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def last_checkpoint(self) -> Path | None:
        """The newest complete Trainer checkpoint (its trainer_state.json, written last, parses)."""
        cks = sorted(self.checkpoints_dir.glob("checkpoint-*"),
                     key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
        for ck in reversed(cks):
            try:
                json.loads((ck / "trainer_state.json").read_text(encoding="utf-8"))
                return ck
            except (OSError, ValueError):
                continue  # killed while this checkpoint was being written
        return None

    def split_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        read = lambda name: pd.read_csv(self.path / name, dtype=str, keep_default_na=False)  # noqa: E731
        return read("train.csv"), read("val.csv")


def create_run(runs_dir: Path, run_id: str, config: dict[str, Any], train: pd.DataFrame,
               val: pd.DataFrame, unique: bool = False) -> Run:
    """Make the run folder; ``unique`` picks another id if ``run_id`` is taken (never under torchrun, where
    every rank already knows the id)."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    run = Run(runs_dir / run_id)
    try:
        run.path.mkdir()
    except FileExistsError:
        if not unique:
            raise
        # Another run took this name between new_run_id() and now: take the next free one.
        return create_run(runs_dir, new_run_id(run_id.split("-", 2)[-1], runs_dir), config, train, val, unique)
    train.to_csv(run.path / "train.csv", index=False)
    val.to_csv(run.path / "val.csv", index=False)
    atomic_write_json(run.config_path, {**config, "run_id": run_id, "status": "running", "pid": os.getpid(),
                                        "host": socket.gethostname(),
                                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return run


def looks_like_run_id(text: str) -> bool:
    """A name in the shape ``new_run_id`` gives (``20261126-081847-scratch``)."""
    return bool(RUN_STAMP_RE.match(str(text).strip()))


def resolve_run(runs_dir: Path, run_id: str) -> Run:
    """The run called ``run_id`` inside ``runs_dir``; never a path outside it."""
    run_id = str(run_id or "").strip()
    if not RUN_ID_RE.match(run_id):
        raise RunNotFoundError(f"'{run_id[:80]}' is not a valid run name.")
    root = Path(runs_dir).resolve()
    path = (root / run_id).resolve()
    if path.parent != root or not (path / "config.json").is_file():
        raise RunNotFoundError(f"Run '{run_id}' was not found in {Path(runs_dir).name}/ (it may have been deleted).")
    return Run(path)


def list_runs(runs_dir: Path) -> list[Run]:
    """Runs in ``runs_dir``, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir()
            if p.is_dir() and not p.is_symlink() and RUN_ID_RE.match(p.name) and (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: r.run_id, reverse=True)


def run_label(run: Run) -> str:
    cfg = run.read_config()
    best = cfg.get("best_val_loss")
    best_txt = f", best val {best:.3f}" if isinstance(best, (int, float)) else ""
    return f"{run.run_id} ({run.status()}{best_txt})"


def parent_run_id(model: str) -> str | None:
    """The run's name when ``model`` is a run folder's ``best/`` (training continues from that run), else None."""
    path = Path(str(model)).expanduser()
    if path.name != "best" or not (path / "config.json").is_file():
        return None
    cfg = Run(path.parent).read_config()
    return path.parent.name if "run_id" in cfg and "train" in cfg else None


def resolve_model_choice(spec: str, runs_dir: Path) -> str:
    """What a UI visitor may train from: ``scratch``, an (allowed) Hub id, or a finished run's best model.

    Paths are never accepted from the page, so a typed ``../`` or ``/etc`` cannot reach the filesystem.
    """
    from .config import SCRATCH_MODEL
    from .hub import check_model_allowed, looks_like_hub_id

    spec = str(spec or "").strip()
    if spec.lower() == SCRATCH_MODEL:
        return SCRATCH_MODEL
    if RUN_ID_RE.match(spec) and (Path(runs_dir) / spec).is_dir():
        run = resolve_run(runs_dir, spec)
        if not run.has_best():
            raise RunNotFoundError(f"Run '{spec}' has no saved model yet (no epoch finished).")
        return str(run.best_dir)
    if looks_like_hub_id(spec):
        check_model_allowed(spec)
        return spec
    raise InvalidInput(f"Model '{spec[:80]}' must be 'scratch', a Hub model id such as 'distilgpt2', "
                     "or the name of a finished run.")

