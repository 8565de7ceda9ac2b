"""The server's training slot: one job at a time, stop flag, re-attach, bounded state, offline fallback.

The jobs run in a child process (spawn), so the stand-ins for ``run_training`` are picklable: module-level
functions, or objects of a module-level class whose events are multiprocessing events.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import pytest

from symptomgen.config import DEFAULT_DATASET, DataConfig, TrainConfig
from symptomgen.events import EpochResult, Progress, RunSummary
from symptomgen.jobs import JobManager, TrainingBusyError


class FakeTrainer:
    """Stands in for ``run_training``: reports an epoch per tick until released or stopped."""

    def __init__(self, epochs: int = 3, fail: str | None = None):
        self.release = mp.get_context("spawn").Event()  # shared with the job's process
        self.epochs, self.fail = epochs, fail

    def __call__(self, data, train, store, on_event, stop, prepared=None):
        if self.fail:
            raise RuntimeError(self.fail)
        done = 0
        for epoch in range(1, self.epochs + 1):
            on_event(Progress(step=epoch, total_steps=self.epochs, epoch=float(epoch)))
            on_event(EpochResult(epoch, 2.0 / epoch, 3.0 / epoch, 0.1, 100.0, 1e-3, True))
            done = epoch
            if self.release.wait(0.05) or stop.is_set():
                break
        while not (self.release.is_set() or stop.is_set()):
            time.sleep(0.01)
        status = "stopped" if stop.is_set() else "finished"
        summary = RunSummary(store.root / "fake", status, done, done, 3.0 / max(done, 1), 0.5)
        on_event(summary)
        return summary


def test_simultaneous_starts_make_exactly_one_job(tmp_path):
    fake = FakeTrainer()
    manager = JobManager(tmp_path, train_fn=fake)
    barrier = threading.Barrier(6)
    results: list[object] = []

    def start():
        barrier.wait()
        try:
            results.append(manager.start(DataConfig(), TrainConfig(model="scratch")))
        except TrainingBusyError as exc:
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    refused = [r for r in results if isinstance(r, TrainingBusyError)]
    assert len(results) == 6 and len(refused) == 5
    assert all("already" in str(r) for r in refused)
    assert manager.busy()
    fake.release.set()
    assert manager.join(30)
    assert manager.snapshot().summary.status == "finished" and not manager.busy()


def test_stop_and_wait(tmp_path):
    manager = JobManager(tmp_path, train_fn=FakeTrainer(epochs=50))
    snap = manager.start(DataConfig(), TrainConfig(model="scratch"))
    first = manager.wait(snap.job_id, after=0, timeout=60)  # the job's process starts first
    assert first.version >= 1 and not first.done
    assert "Stopping" in manager.stop()
    assert manager.join(30)
    final = manager.wait(snap.job_id, after=first.version, timeout=5)
    assert final.done and final.summary.status == "stopped"
    assert len(final.epochs) < 50  # the stop flag ended it early
    assert final.epochs and [e.epoch for e in final.epochs] == list(range(1, len(final.epochs) + 1))
    assert final.progress.step == len(final.epochs)
    # Every record counts once (a Progress and an EpochResult per epoch, the summary), and the end once more.
    assert final.version == 2 * len(final.epochs) + 1 + 1
    assert manager.wait(snap.job_id, after=final.version, timeout=0.05).version == final.version
    # A follower that arrives late (a reloaded page) sees the whole history at once.
    assert manager.snapshot().epochs == final.epochs
    assert manager.stop() == "No training is running."


def test_failure_is_reported_and_frees_the_slot(tmp_path):
    manager = JobManager(tmp_path, train_fn=FakeTrainer(fail="boom"))
    snap = manager.start(DataConfig(), TrainConfig(model="scratch"))
    assert manager.join(30)
    final = manager.snapshot(snap.job_id)
    assert final.done and final.error == "Training failed: RuntimeError: boom"
    assert not manager.busy()


class _SlowExit:
    """Reports a finished run at once, then takes a while to exit (as torch's interpreter teardown does)."""

    def __call__(self, data, train, store, on_event, stop, prepared=None):
        summary = RunSummary(store.root / "fake", "finished", 1, 1, 1.0, 0.1)
        on_event(summary)
        time.sleep(4)
        return summary


def test_a_run_is_done_and_the_slot_free_when_its_summary_arrives_not_when_its_process_exits(tmp_path):
    manager = JobManager(tmp_path, train_fn=_SlowExit())
    snap = manager.start(DataConfig(), TrainConfig(model="scratch"))
    done = manager.wait(snap.job_id, after=0, timeout=60)
    while done.summary is None:
        done = manager.wait(snap.job_id, after=done.version, timeout=60)
    assert done.done and not manager.busy()  # the page says finished, and a Start now is not refused
    assert manager.child_pid() is not None, "the first process should still be exiting"
    second = manager.start(DataConfig(), TrainConfig(model="scratch"))
    assert second.job_id != snap.job_id
    assert manager.join(60) and manager.snapshot(second.job_id).summary.status == "finished"


def test_bad_data_raises_at_start_and_frees_the_slot(tmp_path):
    manager = JobManager(tmp_path, train_fn=FakeTrainer())
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        manager.start(DataConfig(source=str(bad)), TrainConfig(model="scratch"))
    assert not manager.busy() and manager.snapshot() is None


def test_offline_falls_back_with_notices(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake = FakeTrainer(epochs=1)
    fake.release.set()
    manager = JobManager(tmp_path, train_fn=fake)
    snap = manager.start(DataConfig(source=DEFAULT_DATASET), TrainConfig(model="distilgpt2"))
    assert manager.join(30)
    assert snap.data.source == "sample" and snap.train.model == "scratch"  # what the job was given
    assert len(snap.notices) == 2 and all("offline" in n for n in snap.notices)


class _StepsThenEnd:
    """A ``run_training`` stand-in that reports ``steps`` optimizer steps over ``epochs`` epochs at once."""

    def __init__(self, steps: int, epochs: int = 2):
        self.steps, self.epochs = steps, epochs

    def __call__(self, data, train, store, on_event, stop, prepared=None):
        steps, epochs = self.steps, self.epochs
        per_epoch = steps // epochs
        for step in range(1, steps + 1):
            on_event(Progress(step=step, total_steps=steps, epoch=step / per_epoch))
            if step % per_epoch == 0:
                on_event(EpochResult(step // per_epoch, 1.0, 1.5, 0.1, 100.0, 1e-3, True))
        summary = RunSummary(store.root / "fake", "finished", epochs, epochs, 1.5, 0.5)
        on_event(summary)
        return summary


def _held(job) -> dict[str, int]:
    """The length of every container a job holds (attributes only: what stays in memory per job)."""
    return {name: len(value) for name, value in vars(job).items() if isinstance(value, (list, tuple, dict, set))}


def test_job_state_does_not_grow_with_the_steps(tmp_path):
    """Snapshots are O(1): a job keeps the latest Progress, not one record per optimizer step."""
    held, snaps = {}, {}
    for steps in (10, 10_000):
        manager = JobManager(tmp_path, train_fn=_StepsThenEnd(steps))
        snap = manager.start(DataConfig(), TrainConfig(model="scratch"))
        assert manager.join(60)
        job = manager._jobs[snap.job_id]  # the recording path's own state, not a copy
        held[steps], snaps[steps] = _held(job), manager.snapshot(snap.job_id)
    assert held[10] == held[10_000]  # same containers, same lengths, whatever the step count
    assert all(n <= 2 for n in held[10_000].values())  # at most the two epochs
    big = snaps[10_000]
    assert big.done and big.progress == Progress(10_000, 10_000, 2.0) and len(big.epochs) == 2
    assert big.version == 10_000 + 2 + 1 + 1  # steps, epochs, summary, end: still one per record
