"""``RunStore``: the one owner of the runs folder.

Everything that finds, makes, lists or removes a run goes through it: new ids, ``create``, ``get`` (the one place a
name becomes a folder, validated), ``list``/``finished``/``resumable``, ``delete``, the disk limits
(``check_room``, ``over_limit``), ``sweep`` of what killed writes leave behind, the ``importing`` workspace and
``adopt`` for imports, and ``repair`` of a model swap a kill interrupted.  It is a frozen dataclass holding only the
folder, so it pickles into the spawned training child and to torchrun ranks.  Names inside a run folder come from
``layout``; one run's files are ``runs.Run``'s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd

from . import layout as L
from .errors import InvalidInput, QuotaExceeded, RunNotFoundError, RunNotReady
from .records import RunRecord, RunStatus
from .runs import Run, atomic_write_json, is_model_folder, new_run_id
from .settings import current

# Runs in use in this process: (runs folder, run id) → what uses it, most recent last.  Module-level, not a field: a
# RunStore is a frozen value made afresh by each door (and pickled into children); the uses are this server's.
_USES: dict[tuple[str, str], list[str]] = {}
_USES_LOCK = threading.Lock()
SWEEP_AGE_S = 3600  # older leftovers go; younger ones may belong to a write or a download still in progress
_GB = 1024 ** 3


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed); 0 when it does not exist."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue  # removed while we looked
    return total


def _size(n: float) -> str:
    return f"{n / _GB:.1f} GB" if n >= _GB else f"{n / 2**20:.0f} MB"


def _old(path: Path, now: float, age: float) -> bool:
    try:
        return now - path.lstat().st_mtime > age
    except OSError:
        return False


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class RunStore:
    """The runs folder ``root`` (``runs/`` or ``$SYMPTOMGEN_RUNS_DIR``) and every rule about what is in it."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # a door may give text

    @classmethod
    def at(cls, where: RunStore | Path | str) -> RunStore:
        """``where`` as a store (a store is returned as is)."""
        return where if isinstance(where, RunStore) else cls(Path(where))

    # -- names and folders ---------------------------------------------------------------------------------------
    def new_id(self, model: str, data: str | None = None) -> str:
        """``<date>-<time>-<data>-<model>`` (``runs.new_id``), with ``-2``, ``-3``… added while that name is
        taken here."""
        run_id = base = new_run_id(model, data)
        n = 2
        while self.get(run_id, must_exist=False).path.exists():
            run_id, n = f"{base}-{n}", n + 1
        return run_id

    def get(self, run_id: object, must_exist: bool = True) -> Run:
        """The run called ``run_id`` (a valid run name, inside this folder, with its record unless not
        ``must_exist``: torchrun ranks other than 0 know the id before rank 0 makes the folder), else
        ``RunNotFoundError``.  The only place a name becomes a folder."""
        run_id = str(run_id or "").strip()
        if not L.RUN_ID_RE.match(run_id):
            raise RunNotFoundError(f"'{run_id[:80]}' is not a valid run name.")
        root = self.root.resolve()
        path = (root / run_id).resolve()
        if path.parent != root or (must_exist and not (path / L.RECORD).is_file()):
            raise RunNotFoundError(f"Run '{run_id}' was not found in {root.name}/ (it may have been deleted).")
        return Run(path)

    def create(self, run_id: str, record: RunRecord, train: pd.DataFrame, val: pd.DataFrame,
               unique: bool = False) -> Run:
        """Make the run folder with its split and record (status running, this process); ``unique`` picks another
        id if ``run_id`` is taken (never under torchrun, where every rank already knows the id)."""
        self.root.mkdir(parents=True, exist_ok=True)
        run = self.get(run_id, must_exist=False)
        try:
            run.path.mkdir()
        except FileExistsError:
            if not unique:
                raise
            # Another run took this name between new_id() and now: take the next free one.
            return self.create(self.new_id(run_id.split("-", 2)[-1]), record, train, val, unique)
        train.to_csv(run.path / L.TRAIN_SPLIT, index=False)
        val.to_csv(run.path / L.VAL_SPLIT, index=False)
        record = record.with_(run_id=run_id, status=RunStatus.RUNNING, pid=os.getpid(), host=socket.gethostname(),
                              created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        atomic_write_json(run.config_path, record.to_json())
        return run

    # -- lists ---------------------------------------------------------------------------------------------------
    def list(self) -> list[Run]:
        """Every run, newest first."""
        if not self.root.is_dir():
            return []
        runs = [Run(p) for p in self.root.iterdir()
                if p.is_dir() and not p.is_symlink() and L.RUN_ID_RE.match(p.name) and (p / L.RECORD).is_file()]
        return sorted(runs, key=lambda r: r.run_id, reverse=True)

    def finished(self) -> list[Run]:
        """Runs that finished at least one epoch and are not training now, newest first."""
        return [r for r in self.list() if r.status() is not RunStatus.RUNNING and r.has_best()]

    def resumable(self) -> list[Run]:
        """Runs that can continue from their last checkpoint now (stopped, failed or interrupted, with settings and
        a checkpoint, not training), newest first."""
        return [r for r in self.list() if r.resume_problem() is None]

    def open(self, run_id: object) -> Run:
        """The named run, ready to serve its model now (a kill's half-done swap put back first), or an error
        saying why not."""
        if not str(run_id or "").strip():
            raise InvalidInput("No run is selected: pick a finished run, or train one first (none is listed yet).")
        run = self.get(run_id)
        self.repair(run)
        return run.require_model()

    # -- repair and removal --------------------------------------------------------------------------------------
    def repair(self, run: Run) -> bool:
        """Put back what a kill between ``Run.save_model``'s two renames left as ``.<folder>.old`` (it is the copy
        the metrics and record describe; the newer one was never recorded).  Never while the run's trainer lives:
        between the renames the folder is briefly absent.  True when something was put back."""
        repaired = False
        for folder in (L.BEST, L.BASE):
            old, final = run.path / L.previous(folder), run.path / folder
            if not final.exists() and is_model_folder(old) and not run.is_live():
                try:
                    os.replace(old, final)
                    repaired = True
                except OSError:
                    pass
        return repaired

    # -- runs in use -------------------------------------------------------------------------------------------
    def _use_key(self, run_id: str) -> tuple[str, str]:
        return str(self.root.resolve()), run_id

    def reserve(self, run_id: str, why: str) -> None:
        """Mark ``run_id`` in use by ``why`` ("training", "generating", "exporting"), until ``release``: ``delete``
        refuses it meanwhile.  Marks nest (two generations of one run are two marks)."""
        with _USES_LOCK:
            _USES.setdefault(self._use_key(run_id), []).append(why)

    def release(self, run_id: str, why: str) -> None:
        with _USES_LOCK:
            uses = _USES.get(self._use_key(run_id), [])
            if why in uses:
                uses.remove(why)
            if not uses:
                _USES.pop(self._use_key(run_id), None)

    def in_use(self, run_id: str) -> str | None:
        """What uses ``run_id`` in this server now (the latest mark), or None."""
        with _USES_LOCK:
            uses = _USES.get(self._use_key(run_id))
            return uses[-1] if uses else None

    @contextlib.contextmanager
    def using(self, run_id: str, why: str) -> Iterator[None]:
        """``reserve`` for the length of a ``with`` block."""
        self.reserve(run_id, why)
        try:
            yield
        finally:
            self.release(run_id, why)

    def delete(self, run_id: object) -> str:
        """Delete a run that is not training and not in use (a generation, an export, a Resume being prepared);
        returns a sentence saying so.  The folder is first renamed to a hidden name (gone from every list at
        once), then removed; a kill in between leaves a ``.deleting-*`` folder that ``sweep`` removes."""
        run = self.get(run_id)
        use = self.in_use(run.run_id)
        if run.is_live() or use == "training":
            raise RunNotReady(f"Run {run.run_id} is still training; stop it first, then delete it.")
        if use is not None:
            raise RunNotReady(f"Run {run.run_id} is in use ({use}); delete it when that has ended.")
        doomed = self.root / f"{L.DELETING}{uuid.uuid4().hex[:12]}"
        os.replace(run.path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return f"Deleted run {run.run_id}."

    # -- disk limits ---------------------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        """Bytes the runs folder holds."""
        return folder_bytes(self.root)

    def check_room(self, incoming_bytes: int = 0) -> None:
        """Raise ``QuotaExceeded`` when one more run (of ``incoming_bytes``, when known) would pass the limits
        (``Settings.max_runs`` runs, ``max_runs_bytes`` bytes), saying how to free space."""
        settings = current()
        how = ("Delete runs you no longer need (Evaluate tab → Keep and share → Delete this run, or "
               "`python -m symptomgen delete <run>`), downloading a zip first to keep one.")
        count = len(self.list())
        if count >= settings.max_runs:
            raise QuotaExceeded(f"This server keeps at most {settings.max_runs} runs and has {count}. {how}")
        used = self.used_bytes()
        if used + incoming_bytes > settings.max_runs_bytes:
            need = f" and this one needs {_size(incoming_bytes)}" if incoming_bytes else ""
            raise QuotaExceeded(f"The runs folder uses {_size(used)} of its {_size(settings.max_runs_bytes)} limit"
                                f"{need}. {how}")

    def over_limit(self) -> bool:
        """Whether the runs folder holds more bytes than its limit (checked after each epoch of a growing run)."""
        return self.used_bytes() > current().max_runs_bytes

    # -- imports -------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def importing(self) -> Iterator[Path]:
        """A fresh hidden work folder inside the runs folder (same disk: ``adopt`` is a rename), removed after;
        the disk limits are checked first."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.check_room()
        work = self.root / f"{L.IMPORTING}{uuid.uuid4().hex[:12]}"  # dot name: never listed as a run
        work.mkdir()
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def free_id(self, wanted: str) -> str:
        """``wanted`` if it is a valid run name not taken here, else a free name made from it."""
        base = wanted if L.RUN_ID_RE.match(wanted or "") else "imported-run"
        candidate, n = base, 1
        while self.get(candidate, must_exist=False).path.exists():
            n += 1
            candidate = f"{base[:110]}-imported" + (f"-{n - 1}" if n > 2 else "")
        return candidate

    def adopt(self, folder: Path, run_id: str) -> Run:
        """Move a finished run folder (built in ``importing()``) in as ``run_id`` (from ``free_id``)."""
        os.replace(folder, self.get(run_id, must_exist=False).path)
        return self.get(run_id)

    # -- leftovers -----------------------------------------------------------------------------------------------
    def sweep(self, max_age_s: float = SWEEP_AGE_S, now: float | None = None,
              download_dirs: tuple[Path, ...] = (L.DOWNLOADS_DIR, L.EXPORTS_DIR)) -> list[str]:
        """Remove leftovers older than ``max_age_s``; returns their names (relative to their folder's parent).

        In the runs folder: unfinished imports (``.importing-*``), deletions (``.deleting-*``) and temporary
        files; inside runs that are not training: temporary files and model staging folders; in the download
        folders: every file (a page that wanted one has long fetched it).  Interrupted model swaps of runs that are
        not training are put back (``repair``) on the way."""
        now = time.time() if now is None else now
        removed: list[str] = []

        def take(path: Path) -> None:
            if _old(path, now, max_age_s) and _remove(path):
                removed.append(f"{path.parent.name}/{path.name}")

        if self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.name.startswith((L.IMPORTING, L.DELETING)) or L.TMP_FILE_RE.match(entry.name):
                    take(entry)
            for run in self.list():
                if run.is_live():
                    continue  # its trainer is writing
                self.repair(run)
                for entry in run.path.iterdir():
                    if entry.name in L.STAGING_DIRS or L.TMP_FILE_RE.match(entry.name):
                        take(entry)
        for folder in download_dirs:
            if folder.is_dir():
                for entry in folder.iterdir():
                    take(entry)
        return removed
