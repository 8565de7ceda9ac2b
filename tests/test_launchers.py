"""Where a job trains (``launchers``): picked once, when the job manager is built; either launcher marks the run a
training left "running" with how it ended."""

from __future__ import annotations

import pandas as pd

from symptomgen import outcomes
from symptomgen.config import DataConfig
from symptomgen.events import RunStarted
from symptomgen.jobs import JobManager
from symptomgen.launchers import ChildProcessLauncher, GpuCallLauncher
from symptomgen.records import RunRecord, RunStatus
from symptomgen.runs import Run
from symptomgen.store import RunStore

SAMPLE = DataConfig(source="sample")


def _started(runs_dir, on_event, run_id: str) -> None:
    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    run = RunStore.at(runs_dir).create(run_id, RunRecord(), frame, frame)
    on_event(RunStarted(run.path))


def ends_without_a_summary(data, train, store, on_event, stop, prepared=None):
    """Makes its run folder, says so, and returns without a summary (as a call cut short would)."""
    _started(store, on_event, "20260101-000000-quiet")


def fails_after_starting(data, train, store, on_event, stop, prepared=None):
    """Makes its run folder, says so, and fails without recording why."""
    _started(store, on_event, "20260101-000000-boom")
    raise RuntimeError("boom")


def test_off_zero_gpu_jobs_train_in_a_child_process(tmp_path):
    assert isinstance(JobManager(tmp_path).launcher, ChildProcessLauncher)


def test_on_zero_gpu_the_launcher_is_picked_once_and_marks_the_runs_it_leaves_running(fake_spaces, tmp_path,
                                                                                     monkeypatch, tiny_cfg):
    failing = JobManager(tmp_path, train_fn=fails_after_starting)
    quiet = JobManager(tmp_path, train_fn=ends_without_a_summary)
    assert isinstance(failing.launcher, GpuCallLauncher) and isinstance(quiet.launcher, GpuCallLauncher)
    monkeypatch.delenv("SPACES_ZERO_GPU")  # picked when built: the managers go on training in GPU calls

    snap = failing.start(SAMPLE, tiny_cfg, fallback=False)
    assert failing.join(30)
    failed = failing.snapshot(snap.job_id)
    assert failed.done and failed.error == outcomes.failed_line("RuntimeError: boom")
    rec = Run(tmp_path / failed.run_id).record()
    assert rec.status is RunStatus.FAILED and rec.message == "RuntimeError: boom"  # the reason, without the prefix

    snap = quiet.start(SAMPLE, tiny_cfg, fallback=False)
    assert quiet.join(30)
    ended = quiet.snapshot(snap.job_id)
    death = outcomes.of_death(0, shutting_down=False, terminated=False)
    assert ended.done and ended.summary is None and ended.error == death.message
    rec = Run(tmp_path / ended.run_id).record()
    assert (rec.status, rec.message) == (death.status, death.message)
    assert len(fake_spaces.calls) == 2 and not failing.busy() and not quiet.busy()
