"""Training in its own process (issue 12): a killed or failing job leaves the server answering and its run marked;
generation and training never share a random generator; the disk is bounded and leftovers are swept.

The jobs here run the real trainer (a tiny scratch model) in the manager's child process, except where a
picklable stand-in says otherwise.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from symptomgen import settings
from symptomgen.catalog import run_choices
from symptomgen.config import DataConfig, GenerationSettings
from symptomgen.errors import DISK_FULL, QuotaExceeded, RunNotReady
from symptomgen.events import RunSummary
from symptomgen.jobs import JobManager
from symptomgen.records import RunRecord, RunStatus
from symptomgen.runs import Run, run_label
from symptomgen.store import RunStore

SAMPLE = DataConfig(source="sample")
WAIT = 240  # seconds a job may take to start (a fresh interpreter imports torch) and run a few tiny epochs


def _follow(manager: JobManager, job_id: int, until, timeout: float = WAIT):
    """Wait until ``until(snapshot)`` holds (or the job ends); return that snapshot."""
    deadline, version = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        snap = manager.wait(job_id, version, timeout=1.0)
        version = snap.version
        if until(snap) or snap.done:
            return snap
    pytest.fail("the job did not get there in time")


def _finish(manager: JobManager, job_id: int):
    assert manager.join(WAIT)
    return manager.snapshot(job_id)


# -- a process that dies ----------------------------------------------------------------------------------------
def test_sigkill_mid_epoch_marks_the_run_and_the_next_start_works_and_it_resumes(tmp_path, tiny_cfg):
    manager = JobManager(tmp_path)
    snap = manager.start(SAMPLE, tiny_cfg.with_(epochs=4, save_checkpoints=True))
    # One epoch done (a checkpoint to resume from) and a step or more into the next: kill it there.
    mid = _follow(manager, snap.job_id, lambda s: s.epochs and s.progress and s.progress.epoch > 1.0)
    assert not mid.done and mid.run_id
    os.kill(manager.child_pid(), signal.SIGKILL)
    dead = _finish(manager, snap.job_id)
    assert dead.done and dead.summary is None and "killed by SIGKILL" in dead.error
    run = Run(tmp_path / mid.run_id)
    rec = run.record()
    assert rec.status is RunStatus.INTERRUPTED and "SIGKILL" in rec.message and "\n" not in rec.message
    assert not manager.busy() and manager.snapshot().done  # the manager answers, the slot is free
    # Resume it from the app (as `train --resume`): it continues from its checkpoint and ends.
    resumed = _finish(manager, manager.resume(mid.run_id).job_id)
    assert resumed.error is None and resumed.summary.status == "finished", resumed.error
    # The page goes on from the epochs before the kill (issue 22): epoch 1 stays in the table.
    assert [e.epoch for e in resumed.epochs] == [1, 2, 3, 4] and run.record().status is RunStatus.FINISHED
    with pytest.raises(RuntimeError, match="already finished; nothing to resume"):
        manager.resume(mid.run_id)
    # And a new Start after all that works.
    fresh = _finish(manager, manager.start(SAMPLE, tiny_cfg.with_(epochs=1)).job_id)
    assert fresh.summary.status == "finished"


def train_on_a_full_disk(data, train, store, on_event, stop, prepared=None):
    """``run_training`` with a full disk injected through ``TrainingHooks`` (picklable: module level; transformers
    is imported in the job's process only)."""
    from transformers import TrainerCallback

    from symptomgen.trainer import TrainingHooks, run_training

    class DiskFull(TrainerCallback):
        """Fails the way a full disk does, at the end of the first epoch."""

        def on_epoch_end(self, args, state, control, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", "/srv/secret/runs/x/metrics.csv")

    return run_training(data, train, store, on_event, stop, prepared=prepared,
                        hooks=TrainingHooks(callbacks=(DiskFull(),)))


def test_a_full_disk_fails_the_run_with_one_sentence_in_the_app(tmp_path, tiny_cfg):
    manager = JobManager(tmp_path, train_fn=train_on_a_full_disk)
    snap = _finish(manager, manager.start(SAMPLE, tiny_cfg).job_id)
    assert snap.error == f"Training failed: {DISK_FULL}"
    rec = Run(tmp_path / snap.run_id).record()
    assert rec.status is RunStatus.FAILED and rec.message == DISK_FULL and "/srv" not in rec.message
    assert not manager.busy()


def test_a_full_disk_in_the_cli_is_one_error_line_and_a_failed_run(tmp_path, monkeypatch, capsys):
    from symptomgen import cli

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "best"))

    monkeypatch.setattr(Run, "save_model", full)
    code = cli.main(["--runs-dir", str(tmp_path), "train", "--data", "sample", "--model", "scratch", "--epochs", "1",
                     "--scratch-layers", "2", "--scratch-width", "64", "--scratch-vocab", "800",
                     "--max-length", "64"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.splitlines() == [f"error: {DISK_FULL}"], err
    [run] = RunStore(tmp_path).list()
    assert run.record().status is RunStatus.FAILED and run.record().message == DISK_FULL


def deaf_to_stop(data, train, store, on_event, stop, prepared=None):
    """Makes its run folder, says so, then never checks ``stop`` (a step that takes forever)."""
    from symptomgen.events import RunStarted

    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    run = RunStore.at(store).create("20260101-000000-deaf", RunRecord(), frame, frame)
    on_event(RunStarted(run.path))
    while True:
        time.sleep(1)


def test_stop_ends_a_job_that_does_not_listen_after_the_grace_period(tmp_path, tiny_cfg):
    manager = JobManager(tmp_path, train_fn=deaf_to_stop)
    with settings.override(stop_grace_s=1.0):
        snap = manager.start(SAMPLE, tiny_cfg)
        _follow(manager, snap.job_id, lambda s: s.run_id is not None)
        assert "Stopping" in manager.stop()
        ended = _finish(manager, snap.job_id)
    assert ended.done and "did not reach a stopping point within 1 s" in ended.error
    rec = Run(tmp_path / ended.run_id).record()
    assert rec.status is RunStatus.STOPPED and "process was ended" in rec.message
    assert not manager.busy()


# -- random generators never shared -----------------------------------------------------------------------------
SAMPLED = GenerationSettings(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=24,
                             num_return_sequences=2, seed=1234)


def _losses(snapshot) -> list[tuple[float, float]]:
    return [(e.train_loss, e.val_loss) for e in snapshot.epochs]


def test_seeded_generation_and_training_never_share_random_state(tmp_path, tiny_cfg, trained_run):
    from symptomgen.generation import generate
    from symptomgen.modeling import load_pretrained

    model, tok = load_pretrained(Run(trained_run.run_dir).best_dir)
    alone = generate(model, tok, "Asthma", SAMPLED)
    job_cfg = tiny_cfg.with_(epochs=3)  # dropout on: training draws from its random generator every step

    # 1. A seeded generation gives the same text while a job trains.
    manager = JobManager(tmp_path / "a")
    reference = _finish(manager, manager.start(SAMPLE, job_cfg).job_id)
    busy = JobManager(tmp_path / "b")
    snap = busy.start(SAMPLE, job_cfg)
    _follow(busy, snap.job_id, lambda s: s.progress is not None)
    during = []
    while not busy.snapshot(snap.job_id).done:  # sampling in this process all the while the job trains
        during.append(generate(model, tok, "Asthma", SAMPLED))
    concurrent = _finish(busy, snap.job_id)
    assert during and all(text == alone for text in during)
    # 2. The job's losses are those of the same job trained with nothing else running.
    assert reference.summary.status == concurrent.summary.status == "finished"
    assert _losses(concurrent) == _losses(reference)


def test_a_seeded_generation_is_unchanged_by_unseeded_ones_in_other_threads(trained_run):
    import threading

    from symptomgen.generation import generate
    from symptomgen.modeling import load_pretrained

    model, tok = load_pretrained(Run(trained_run.run_dir).best_dir)
    alone = generate(model, tok, "Asthma", SAMPLED)
    unseeded = SAMPLED.with_(seed=None)
    done = threading.Event()
    others: list[list[str]] = []

    def visitor() -> None:  # another page sampling without a seed, all the while
        while not done.is_set():
            others.append(generate(model, tok, "Fever", unseeded))

    threads = [threading.Thread(target=visitor) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        during = [generate(model, tok, "Asthma", SAMPLED) for _ in range(6)]
    finally:
        done.set()
        for t in threads:
            t.join()
    assert others, "the unseeded visitors never ran"
    assert all(text == alone for text in during)
    assert len({tuple(t) for t in others}) > 1, "unseeded sampling must still vary"


# -- the disk ---------------------------------------------------------------------------------------------------
def _bare_run(runs_dir: Path, run_id: str, **changes) -> Run:
    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    run = RunStore.at(runs_dir).create(run_id, RunRecord(), frame, frame)
    run.update(**{"status": RunStatus.FINISHED, **changes})
    return run


def _quick(data, train, store, on_event, stop, prepared=None):
    summary = RunSummary(store.root / "fake", RunStatus.FINISHED, 0, None, None, 0.0)
    on_event(summary)
    return summary


def test_quota_refuses_start_until_a_run_is_deleted_and_a_live_run_cannot_be(tmp_path, tiny_cfg):
    _bare_run(tmp_path, "20260101-000000-scratch")
    manager = JobManager(tmp_path, train_fn=_quick)
    with settings.override(max_runs=1):
        with pytest.raises(QuotaExceeded, match=r"at most 1 runs and has 1\. Delete runs"):
            manager.start(SAMPLE, tiny_cfg)
        assert not manager.busy()
        assert RunStore(tmp_path).delete("20260101-000000-scratch") == "Deleted run 20260101-000000-scratch."
        assert RunStore(tmp_path).list() == [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
        _finish(manager, manager.start(SAMPLE, tiny_cfg).job_id)
    live = _bare_run(tmp_path, "20260101-000001-scratch", status=RunStatus.RUNNING)  # this process's pid
    with settings.override(max_runs_bytes=1), pytest.raises(QuotaExceeded, match=r"uses .* of its .* limit"):
        manager.start(SAMPLE, tiny_cfg)
    with pytest.raises(RunNotReady, match="still training; stop it first"):
        RunStore(tmp_path).delete(live.run_id)
    assert live.path.is_dir()


def test_a_run_that_grows_past_the_disk_limit_stops_after_its_epoch_and_keeps_it(tmp_path, tiny_cfg):
    from symptomgen.trainer import run_training

    with settings.override(max_runs_bytes=1):  # passed by the first epoch's saved model
        summary = run_training(SAMPLE, tiny_cfg.with_(epochs=4), tmp_path)
    assert summary.status == RunStatus.STOPPED and summary.epochs_done == 1 and summary.kept_epoch == 1
    rec = Run(summary.run_dir).record()
    assert rec.status is RunStatus.STOPPED and "disk limit after epoch 1 of 4" in rec.message
    assert Run(summary.run_dir).has_best()


def test_sweep_removes_old_leftovers_only(tmp_path):
    runs_dir, downloads = tmp_path / "runs", tmp_path / "downloads"
    done = _bare_run(runs_dir, "20260101-000000-scratch")
    live = _bare_run(runs_dir, "20260101-000001-scratch", status=RunStatus.RUNNING)
    old = time.time() - 7200
    leftovers = [runs_dir / ".importing-0123456789ab", runs_dir / ".deleting-0123456789ab", done.path / ".best.tmp"]
    for folder in leftovers:
        folder.mkdir()
    files = [done.path / ".metrics.csv.tmp4242", downloads / "20260101-metrics.csv", downloads / ".run.zip.tmp77"]
    downloads.mkdir()
    for f in files:
        f.write_text("x")
    kept = [live.path / ".metrics.csv.tmp99", downloads / "fresh.csv", done.path / ".best.old"]
    kept[-1].mkdir()
    for f in kept[:2]:
        f.write_text("x")
    for p in leftovers + files + kept:
        os.utime(p, (old, old))
    os.utime(downloads / "fresh.csv")  # written just now
    removed = RunStore.at(runs_dir).sweep(download_dirs=(downloads,))
    assert len(removed) == len(leftovers) + len(files)
    assert not any(p.exists() for p in leftovers + files) and all(p.exists() for p in kept)
    assert done.path.is_dir() and live.path.is_dir()


# -- the truth about best/ travels with it ----------------------------------------------------------------------
def test_the_epoch_in_best_is_read_from_best_even_when_the_record_lags(trained_run, tmp_path):
    import shutil

    from symptomgen.card import write_model_card

    run = Run(tmp_path / trained_run.run_dir.name)
    shutil.copytree(trained_run.run_dir, run.path)
    info = run.best_info()
    assert info.epoch == trained_run.best_epoch == 3 and info.val_loss == pytest.approx(trained_run.best_val_loss)
    # A kill between the swap of best/ and the record's update: the record still names epoch 1.
    run.update(best_epoch=1, best_val_loss=9.5, kept_epoch=1)
    assert run.best_info() == info
    assert f"val loss {info.val_loss:.3f}" in dict((v, k) for k, v in run_choices(RunStore(tmp_path)))[run.run_id]
    assert f"best val {info.val_loss:.3f}" in run_label(run)
    assert "Best epoch: 3 (validation loss" in write_model_card(run.path)
