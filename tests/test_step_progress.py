"""The page's journey, core side: run ids name their data, training reports a step curve, and a resumed run
carries its epochs, step curve and time from before the stop (issue 22 items 3 and 4)."""

from __future__ import annotations

import threading

from symptomgen.events import EpochResult, Progress
from symptomgen.jobs import JobManager
from symptomgen.runs import Run, dataset_slug, looks_like_run_id, new_run_id
from symptomgen.store import RunStore
from symptomgen.trainer import run_training


def test_run_ids_name_the_data_and_the_model_and_old_ids_stay_valid(tmp_path):
    assert dataset_slug("sample") == "sample"
    assert dataset_slug("someone/Symptom2Disease") == "symptom2disease"
    assert dataset_slug("/tmp/gradio/abc123/My Table (2).csv") == "my-table-2"
    new = new_run_id("openai-community/gpt2", "someone/Symptom2Disease")
    assert new.endswith("-symptom2disease-gpt2") and looks_like_run_id(new)
    assert looks_like_run_id("20261126-081847-scratch")  # an id from before keeps working
    store = RunStore(tmp_path)
    assert store.new_id("scratch", "sample").endswith("-sample-scratch")
    assert RunStore(tmp_path).get("20261126-081847-scratch", must_exist=False).run_id == "20261126-081847-scratch"


def test_training_reports_a_step_curve_and_a_resume_continues_it(tmp_path, sample_data, tiny_cfg):
    """More than one smoothed loss point within epoch 1; the run id names the sample; stopped after epoch 1 and
    resumed, the job shows epoch 1 before epoch 2, the step curve from before, and the whole run's time."""
    cfg = tiny_cfg.with_(epochs=2, batch_size=4, save_checkpoints=True)
    events: list = []
    stop = threading.Event()

    def on_event(ev):
        events.append(ev)
        if isinstance(ev, EpochResult) and ev.epoch == 1:
            stop.set()

    first = run_training(sample_data, cfg, tmp_path, on_event=on_event, stop=stop)
    assert first.status == "stopped" and "-sample-scratch" in first.run_dir.name
    points = [p for p in events if isinstance(p, Progress) and p.loss is not None]
    assert len([p for p in points if p.epoch <= 1.0]) > 1
    assert all(p.loss > 0 for p in points) and all(p.seconds_left is not None for p in points)
    # Each point also carries its window's learning rate (TINY's constant rate) and gradient norm (issue 24).
    assert all(p.learning_rate == cfg.learning_rate and p.grad_norm > 0 for p in points)
    assert all(p.learning_rate is None and p.grad_norm is None for p in events
               if isinstance(p, Progress) and p.loss is None)
    run = Run(first.run_dir)
    assert len(run.steps()) == len(points) and run.checkpoint_epoch() == 1
    assert run.steps()["grad_norm"].notna().all() and (run.steps()["learning_rate"] == cfg.learning_rate).all()

    jobs = JobManager(tmp_path)
    snap = jobs.resume(run.run_id)
    before = [p for p in points if p.epoch <= 1.0]  # a step of epoch 2 may end before the stop is seen
    assert [e.epoch for e in snap.epochs] == [1] and len(snap.steps) == len(before)
    assert all(lr == cfg.learning_rate and norm > 0 for _, _, lr, norm in snap.steps)  # restored from steps.csv
    assert jobs.join(120)
    done = jobs.snapshot()
    assert done.summary is not None and done.summary.status == "finished", done.error
    assert [e.epoch for e in done.epochs] == [1, 2]
    assert len(done.steps) > len(before) and max(e for e, *_ in done.steps) > 1.0
    assert done.summary.seconds >= first.seconds  # the totals count the whole run
    assert done.summary.epochs_done == 2


def test_an_epoch_checkpoint_waits_until_the_last_is_old_for_its_cost(tiny_cfg):
    """Checkpoints take at most ``CHECKPOINT_COST_SHARE`` of the time: an epoch soon after a 2 s checkpoint skips
    its own, one after 1 / share × 2 s saves, and a stop or the last step always saves."""
    from types import SimpleNamespace

    from transformers import TrainerControl

    from symptomgen.reporter import CHECKPOINT_COST_SHARE, EpochReporter

    now = [0.0]
    stop = threading.Event()
    reporter = EpochReporter(None, None, [], 0, tiny_cfg, emit=lambda e: None, stop=stop)
    reporter.wall = lambda: now[0]  # the cadence's own clock (the budget's ``clock`` is read once per step only)
    state = SimpleNamespace(global_step=10, max_steps=100)

    def epoch_end(at: float, saves_in: float = 2.0) -> bool:
        now[0] = at
        control = TrainerControl(should_save=True)
        reporter._skip_early_checkpoint(state, control)
        if control.should_save:
            now[0] = at + saves_in
            reporter.on_save(None, state, control)
        return control.should_save

    assert epoch_end(10.0)  # the first: no cost known yet
    wait = 2.0 / CHECKPOINT_COST_SHARE
    assert not epoch_end(12.0 + wait / 2)
    assert epoch_end(12.0 + wait)
    assert not epoch_end(14.0 + wait + 1)
    stop.set()
    assert epoch_end(14.0 + wait + 2)  # stopping: a resume reads it
    stop.clear()
    state.global_step = state.max_steps
    assert epoch_end(16.0 + wait + 3)  # the last step
