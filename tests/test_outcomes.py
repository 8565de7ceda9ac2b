"""How a run ended is worded in ``outcomes`` alone: a finished, stopped, failed and killed run each get the
sentence it defines, in the run's record and on the page, and no other module writes those sentences."""

from __future__ import annotations

import ast
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from symptomgen import outcomes
from symptomgen.config import DataConfig
from symptomgen.events import RunStarted
from symptomgen.jobs import JobManager
from symptomgen.records import RunRecord, RunStatus
from symptomgen.runs import Run
from symptomgen.store import RunStore

PACKAGE = Path(__file__).resolve().parents[1] / "symptomgen"
SAMPLE = DataConfig(source="sample")
# Words only an outcome uses (the Stop button's own reply, "Stopping ...", is not an outcome).
OUTCOME_WORDS = ("Training failed", "Training could not start", "Stopped on request", "killed by",
                 "ended unexpectedly", "Interrupted; resume", "server shut down", "No validation improvement",
                 "ran out after", "passed its disk limit", "Likely causes", "best/ holds the last",
                 "max length. The best")  # OOM_MESSAGE (errors.failure_reason's MemoryError line goes on differently)


def _texts(path: Path) -> list[str]:
    """Every string literal of a module (f-strings' literal parts included), comments left out."""
    return [node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_other_module_words_an_outcome():
    assert any(OUTCOME_WORDS[0] in t for t in _texts(PACKAGE / "outcomes.py"))
    offenders = sorted({f"{path.relative_to(PACKAGE)}: {word!r}" for path in PACKAGE.rglob("*.py")
                        if path.name != "outcomes.py" for text in _texts(path) for word in OUTCOME_WORDS
                        if word in text})
    assert not offenders, offenders


def test_a_finished_and_a_stopped_run_get_the_modules_sentences(tmp_path, tiny_cfg):
    from symptomgen.trainer import run_training

    finished = run_training(SAMPLE, tiny_cfg.with_(epochs=1), tmp_path)
    assert (finished.status, finished.message) == (RunStatus.FINISHED, "")  # nothing to explain
    stop = threading.Event()
    stop.set()  # honoured after the first optimizer step
    stopped = run_training(SAMPLE, tiny_cfg, tmp_path, stop=stop)
    assert (stopped.status, stopped.message) == (RunStatus.STOPPED, outcomes.STOPPED_EMPTY_MESSAGE)
    rec = Run(stopped.run_dir).record()
    assert (rec.status, rec.message) == (RunStatus.STOPPED, outcomes.STOPPED_EMPTY_MESSAGE)


def fails(data, train, store, on_event, stop, prepared=None):
    raise RuntimeError("boom")


def waits_to_be_killed(data, train, store, on_event, stop, prepared=None):
    """Makes its run folder, says so, then trains forever (picklable: module level)."""
    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    run = RunStore.at(store).create("20260101-000000-killed", RunRecord(), frame, frame)
    on_event(RunStarted(run.path))
    while True:
        time.sleep(1)


def test_a_failed_and_a_killed_job_get_the_modules_sentences(tmp_path, tiny_cfg):
    failing = JobManager(tmp_path, train_fn=fails)
    snap = failing.start(SAMPLE, tiny_cfg)
    assert failing.join(60)
    assert failing.snapshot(snap.job_id).error == outcomes.failed_line("RuntimeError: boom")

    doomed = JobManager(tmp_path, train_fn=waits_to_be_killed)
    snap = doomed.start(SAMPLE, tiny_cfg)
    deadline = time.monotonic() + 120
    while snap.run_id is None and time.monotonic() < deadline:
        snap = doomed.wait(snap.job_id, snap.version, timeout=1.0)
    if snap.run_id is None:
        pytest.fail("the job never made its run folder")
    os.kill(doomed.child_pid(), signal.SIGKILL)
    assert doomed.join(60)
    killed = outcomes.of_death(-signal.SIGKILL, shutting_down=False, terminated=False)
    assert doomed.snapshot(snap.job_id).error == killed.message
    rec = Run(tmp_path / snap.run_id).record()
    assert (rec.status, rec.message) == (RunStatus.INTERRUPTED, killed.message)
