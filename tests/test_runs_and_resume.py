"""Run folders and resume: unique names, damaged files, refusals, early-stopping patience across a resume."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime

import pandas as pd
import pytest

from symptomgen import runs as runs_mod
from symptomgen.catalog import base_model
from symptomgen.cli import main as cli_main
from symptomgen.config import DataConfig, GenerationSettings
from symptomgen.errors import TrainingFailed
from symptomgen.evaluation import evaluate_run
from symptomgen.records import RunRecord
from symptomgen.runs import Run, run_label
from symptomgen.store import RunStore
from symptomgen.trainer import EpochResult, run_training


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, sample_data, tiny_cfg, monkeypatch):
    monkeypatch.setattr(runs_mod, "datetime", FrozenClock)
    first = run_training(sample_data, tiny_cfg.with_(epochs=1), tmp_path)
    second = run_training(sample_data, tiny_cfg.with_(epochs=1), tmp_path)
    assert [first.status, second.status] == ["finished", "finished"]
    # The id names the data and the model (issue 22): sample and scratch.
    assert (first.run_dir.name, second.run_dir.name) == ("20260102-030405-sample-scratch",
                                                         "20260102-030405-sample-scratch-2")
    assert len(RunStore(tmp_path).list()) == 2
    # A name taken between choosing it and creating the folder: the next free one is used.
    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    third = RunStore(tmp_path).create("20260102-030405-sample-scratch", RunRecord(), frame, frame, unique=True)
    assert third.run_id == "20260102-030405-sample-scratch-3"
    with pytest.raises(FileExistsError):
        # under torchrun the id is fixed: no renaming
        RunStore(tmp_path).create(third.run_id, RunRecord(), frame, frame)


def test_a_damaged_run_folder_is_listed_as_unknown_not_a_crash(tmp_path, capsys):
    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    broken = RunStore(tmp_path).create("20260102-030405-scratch", RunRecord(), frame, frame)
    broken.config_path.write_text("[]")
    no_pid = RunStore(tmp_path).create("20260102-030406-scratch", RunRecord(), frame, frame)
    no_pid.update(pid=None)
    assert broken.status() == "unknown" and "unknown" in run_label(broken)
    assert no_pid.status() == "interrupted"
    assert cli_main(["--runs-dir", str(tmp_path), "runs"]) == 0
    assert broken.run_id in capsys.readouterr().out


def test_resume_refuses_a_run_that_is_still_training_or_already_finished(tmp_path, trained_run):
    runs_dir = trained_run.run_dir.parent
    with pytest.raises(TrainingFailed, match="already finished; nothing to resume"):
        run_training(DataConfig(), trained_run_cfg(trained_run), runs_dir, resume=trained_run.run_dir.name)
    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    # "running", pid = this process
    live = RunStore(tmp_path).create("20260102-030405-scratch", RunRecord(), frame, frame)
    assert live.record().pid == os.getpid() and live.record().host == socket.gethostname()
    with pytest.raises(TrainingFailed, match="is still training"):
        run_training(DataConfig(), trained_run_cfg(trained_run), tmp_path, resume=live.run_id)
    # Recorded on another host (a restarted container, another node): it cannot be checked, so it may resume
    # (this bare folder then stops for want of settings, not because it is "still training").
    live.update(host="old-container-hostname")
    assert live.status() == "running" and not live.is_live()
    with pytest.raises(TrainingFailed, match="no usable saved settings"):
        run_training(DataConfig(), trained_run_cfg(trained_run), tmp_path, resume=live.run_id)


def trained_run_cfg(summary):

    return Run(summary.run_dir).record().train


def test_patience_keeps_counting_across_a_resume(tmp_path, sample_data, tiny_cfg):
    """Stopped after epoch 3 with its best at epoch 1: resumed with patience 3, epoch 4 is the third miss."""
    cfg = tiny_cfg.with_(epochs=8, patience=3, save_checkpoints=True)
    stop_after_3 = __import__("threading").Event()

    def on_event(ev):
        if isinstance(ev, EpochResult) and ev.epoch == 3:
            stop_after_3.set()

    first = run_training(sample_data, cfg, tmp_path, on_event=on_event, stop=stop_after_3)
    run = Run(first.run_dir)
    assert first.status == "stopped" and run.last_checkpoint() is not None
    assert (run.last_checkpoint() / "optimizer.pt").is_file()  # a stopped run keeps what its resume reads
    metrics = run.metrics()
    assert list(metrics["epoch"]) == [1, 2, 3]
    metrics.loc[metrics["epoch"] == 1, "validation_loss"] = 0.01  # epoch 1 stays the best: 2 and 3 were misses
    metrics.to_csv(run.metrics_path, index=False)

    resumed = run_training(DataConfig(), cfg, tmp_path, resume=run.run_id)
    assert resumed.status == "early-stopped" and resumed.epochs_done == 4  # without carrying the count: 6
    assert list(run.metrics()["epoch"]) == [1, 2, 3, 4]
    # Completed, it can never resume: its checkpoint keeps the weights and the trainer state, not the optimizer's.
    checkpoint = run.last_checkpoint()
    assert checkpoint is not None and (checkpoint / "trainer_state.json").is_file()
    assert not [p.name for p in checkpoint.iterdir() if p.name.endswith((".pt", ".pth"))]
    assert any(p.suffix == ".safetensors" for p in checkpoint.iterdir())


def test_evaluate_needs_at_least_one_row(trained_run, capsys):
    with pytest.raises(ValueError, match="at least 1"):
        evaluate_run(trained_run.run_dir, include_base=False, limit=0)
    assert cli_main(["evaluate", "--model", str(trained_run.run_dir), "--no-base", "--limit", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "at least 1" in err and len(err.splitlines()) == 1


def test_generate_from_a_run_without_a_finished_epoch_says_so(tmp_path, capsys):
    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    run = RunStore(tmp_path).create("20260102-030405-scratch", RunRecord(), frame, frame)  # killed before epoch 1 ended
    run.update(pid=2**22 + 12345)  # its trainer is gone (no such pid)
    assert cli_main(["--runs-dir", str(tmp_path), "generate", "--model", str(run.path), "Asthma"]) == 2
    assert "has no saved model yet" in capsys.readouterr().err


def test_sampling_settings_hold_floats_and_greedy_means_one_sequence(trained_run):
    from symptomgen.generation import generate
    from symptomgen.modeling import load_pretrained

    s = GenerationSettings(temperature=2, repetition_penalty=2, top_p=1, max_new_tokens=4)
    assert all(isinstance(v, float) for v in (s.temperature, s.repetition_penalty, s.top_p))
    model, tok = load_pretrained(Run(trained_run.run_dir).best_dir)
    assert len(generate(model, tok, "Asthma", s)) == 1  # transformers accepts them (it rejects int 2)
    with pytest.raises(ValueError, match="Greedy decoding .* only one answer"):
        GenerationSettings(temperature=0, num_return_sequences=3)
    assert json.loads(json.dumps(s.to_dict()))["temperature"] == 2.0


def test_training_on_from_a_finished_run_names_it_and_keeps_its_own_base(tmp_path, sample_data, tiny_cfg):
    """Continuing from a run records the run by name (no server path in labels or model cards) and copies the
    starting weights to base/, so the new run still evaluates after the earlier one is deleted."""
    import shutil

    from symptomgen.card import write_model_card

    first = run_training(sample_data, tiny_cfg.with_(epochs=1), tmp_path)
    parent = Run(first.run_dir)
    second = run_training(sample_data, tiny_cfg.with_(model=str(parent.best_dir), epochs=1), tmp_path)
    child = Run(second.run_dir)
    rec = child.record()
    assert second.status == "finished" and rec.parent_run == parent.run_id
    assert rec.model == parent.run_id and parent.run_id in child.run_id
    card = write_model_card(child.path)
    assert str(tmp_path) not in card and str(tmp_path) not in run_label(child)
    assert "base_model:" not in card  # a run of this server is no Hub repo
    shutil.rmtree(parent.path)
    assert base_model(child) == str(child.base_dir)
    report = evaluate_run(child.path, limit=2)
    assert report["unseen"]["base"] is not None and report["unseen"]["fine_tuned"]["val_loss"] > 0


def test_a_kill_between_the_best_model_renames_is_repaired(trained_run, tmp_path):
    import shutil

    copy = tmp_path / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, copy)
    run = Run(copy)
    (copy / "best").rename(copy / ".best.old")  # save_model killed after moving the old copy aside
    store = RunStore(tmp_path)
    run.update(status="running", pid=os.getpid(), host=socket.gethostname())
    assert not store.repair(run) and (copy / ".best.old").is_dir()  # its trainer lives: mid-save, hands off
    run.update(status="running", pid=2**22 + 12345)  # the trainer is gone (no such pid)
    assert not run.has_best() and (copy / ".best.old").is_dir()  # asking is not repairing
    assert store.repair(run) and run.has_best() and (copy / "best" / "model.safetensors").is_file()
    assert not (copy / ".best.old").exists()


def test_an_evaluation_stops_when_asked(trained_run):
    import threading

    from symptomgen.evaluation import EvaluationCancelled

    stop = threading.Event()
    stop.set()  # e.g. the visitor cancelled: no row is generated
    with pytest.raises(EvaluationCancelled):
        evaluate_run(trained_run.run_dir, include_base=False, stop=stop)
