"""The disk a public server uses: limits checked before a run arrives, deleting runs, sweeping leftovers.

``check_room`` refuses a new run (Start, import) once the runs folder holds ``Settings.max_runs`` runs or
``max_runs_bytes`` bytes, saying how to free space; ``over_limit`` tells a training run, after each epoch, that
the folder has grown past the byte limit (it then stops, keeping its best epoch); ``delete_run`` removes a run that is not training; ``sweep``
removes what killed writes and old downloads leave behind: temporary files of atomic writes, unfinished imports
and deletions, and the page's generated downloads after an hour.  ``start_sweeper`` sweeps now and then hourly.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .errors import QuotaExceeded, RunNotReady
from .runs import list_runs, resolve_run
from .settings import current

log = logging.getLogger(__name__)
DOWNLOADS_DIR = Path(tempfile.gettempdir()) / "symptomgen-downloads"  # metrics CSVs the Train tab serves
EXPORTS_DIR = Path(tempfile.gettempdir()) / "symptomgen-exports"  # run zips the Evaluate tab builds
SWEEP_AGE_S = 3600  # older leftovers go; younger ones may belong to a write or a download still in progress
_TMP_FILE = re.compile(r"^\..+\.tmp\d*$")  # runs.atomic_write_text and share.export_run_zip: .<name>.tmp<pid>
_TMP_DIRS = (".best.tmp", ".base.tmp")  # Run.save_model's staging folders
_GB = 1024 ** 3


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed); 0 when it does not exist."""
    total = 0
    stack = [Path(path)]
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


def check_room(runs_dir: Path | str, incoming_bytes: int = 0) -> None:
    """Raise ``QuotaExceeded`` when one more run (of ``incoming_bytes``, when known) would pass the limits."""
    settings, runs_dir = current(), Path(runs_dir)
    how = ("Delete runs you no longer need (Evaluate tab → Keep and share → Delete this run, or "
           "`python -m symptomgen delete <run>`), downloading a zip first to keep one.")
    count = len(list_runs(runs_dir))
    if count >= settings.max_runs:
        raise QuotaExceeded(f"This server keeps at most {settings.max_runs} runs and has {count}. {how}")
    used = folder_bytes(runs_dir)
    if used + incoming_bytes > settings.max_runs_bytes:
        need = f" and this one needs {_size(incoming_bytes)}" if incoming_bytes else ""
        raise QuotaExceeded(f"The runs folder uses {_size(used)} of its {_size(settings.max_runs_bytes)} limit"
                            f"{need}. {how}")


def over_limit(runs_dir: Path | str) -> bool:
    """Whether the runs folder holds more bytes than its limit (checked after each epoch of a growing run)."""
    return folder_bytes(Path(runs_dir)) > current().max_runs_bytes


def delete_run(runs_dir: Path | str, run_id: object) -> str:
    """Delete a run that is not training; returns a sentence saying so.  The folder is first renamed to a hidden
    name (gone from every list at once), then removed; a kill in between leaves a ``.deleting-*`` folder that
    ``sweep`` removes."""
    run = resolve_run(Path(runs_dir), str(run_id or ""))
    if run.is_live():
        raise RunNotReady(f"Run {run.run_id} is still training; stop it first, then delete it.")
    doomed = run.path.with_name(f".deleting-{uuid.uuid4().hex[:12]}")
    os.replace(run.path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return f"Deleted run {run.run_id}."


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


def sweep(runs_dir: Path | str, max_age_s: float = SWEEP_AGE_S, now: float | None = None,
          download_dirs: tuple[Path, ...] = (DOWNLOADS_DIR, EXPORTS_DIR)) -> list[str]:
    """Remove leftovers older than ``max_age_s``; returns their names (relative to their folder's parent).

    In the runs folder: unfinished imports (``.importing-*``), deletions (``.deleting-*``) and temporary files;
    inside runs that are not training: temporary files and model staging folders; in the download folders: every
    file (a page that wanted one has long fetched it)."""
    now = time.time() if now is None else now
    removed: list[str] = []
    runs_dir = Path(runs_dir)

    def take(path: Path) -> None:
        if _old(path, now, max_age_s) and _remove(path):
            removed.append(f"{path.parent.name}/{path.name}")

    if runs_dir.is_dir():
        for entry in runs_dir.iterdir():
            if entry.name.startswith((".importing-", ".deleting-")) or _TMP_FILE.match(entry.name):
                take(entry)
        for run in list_runs(runs_dir):
            if run.is_live():
                continue  # its trainer is writing
            for entry in run.path.iterdir():
                if entry.name in _TMP_DIRS or _TMP_FILE.match(entry.name):
                    take(entry)
    for folder in download_dirs:
        if Path(folder).is_dir():
            for entry in Path(folder).iterdir():
                take(entry)
    return removed


_sweepers: set[str] = set()
_sweepers_lock = threading.Lock()


def start_sweeper(runs_dir: Path | str, interval_s: float = SWEEP_AGE_S) -> bool:
    """Sweep now, then every ``interval_s`` in a daemon thread (once per runs folder and process); True when
    started."""
    key = str(Path(runs_dir).resolve())
    with _sweepers_lock:
        if key in _sweepers:
            return False
        _sweepers.add(key)

    def loop() -> None:
        while True:
            try:
                gone = sweep(runs_dir)
                if gone:
                    log.info("swept %d leftover file(s): %s", len(gone), ", ".join(gone[:20]))
            except Exception:  # a sweep must never take the server down; try again next time
                log.exception("sweeping the runs and download folders failed")
            time.sleep(interval_s)

    threading.Thread(target=loop, daemon=True, name="symptomgen-sweeper").start()
    return True
