"""Training: labels, padding invariance, overfitting, stop, best checkpoint, run folder."""

from __future__ import annotations

import json
import math
import threading

import pandas as pd
import pytest
import torch

from symptomgen.batching import IGNORE, PadCollator, encode_example, mean_token_loss
from symptomgen.config import TRAIN_PRESETS, DataConfig, TrainConfig
from symptomgen.data import prepare
from symptomgen.modeling import build_scratch_model, build_scratch_tokenizer, load_pretrained
from symptomgen.runs import METRIC_COLUMNS, Run
from symptomgen.trainer import EpochResult, Progress, RunSummary, run_training


@pytest.fixture(scope="module")
def tok_and_model():
    data = prepare(DataConfig())
    texts = [f"{p} | {t}" for p, t in zip(data.train["prompt"], data.train["target"])]
    tok = build_scratch_tokenizer(texts, 800)
    cfg = TrainConfig(model="scratch", scratch_layers=2, scratch_width=64, scratch_vocab=800)
    return tok, build_scratch_model(tok, cfg), data


def test_labels_mask_prompt_and_keep_the_final_eos(tok_and_model):
    tok, _, _ = tok_and_model
    row = encode_example(tok, "Kidney Failure", "Fatigue, nausea", max_length=64, loss_on="target")
    prompt_len = len(tok("Kidney Failure |", add_special_tokens=False)["input_ids"])
    assert row["input_ids"][-1] == tok.eos_token_id and row["labels"][-1] == tok.eos_token_id
    assert row["labels"][:prompt_len] == [IGNORE] * prompt_len
    assert row["labels"][prompt_len:] == row["input_ids"][prompt_len:]
    full = encode_example(tok, "Kidney Failure", "Fatigue, nausea", max_length=64, loss_on="full")
    assert full["labels"] == full["input_ids"]


def test_truncation_keeps_the_eos(tok_and_model):
    tok, _, _ = tok_and_model
    row = encode_example(tok, "Flu", "fever, " * 100, max_length=16)
    assert len(row["input_ids"]) == 16 and row["input_ids"][-1] == tok.eos_token_id


def test_padding_positions_are_ignored_and_do_not_change_the_loss(tok_and_model):
    tok, model, data = tok_and_model
    rows = [encode_example(tok, p, t, 64) for p, t in zip(data.train["prompt"][:4], data.train["target"][:4])]
    tight = PadCollator(tok.pad_token_id)(rows)
    loose = PadCollator(tok.pad_token_id, pad_to_multiple_of=96)(rows)
    assert loose["input_ids"].shape[1] == 96 > tight["input_ids"].shape[1]
    assert (loose["labels"][loose["attention_mask"] == 0] == IGNORE).all()
    model.eval()
    with torch.no_grad():
        a = model(**tight).loss.item()
        b = model(**loose).loss.item()
    assert math.isfinite(a) and a == pytest.approx(b, rel=1e-4)


def test_overfitting_one_batch_drives_the_loss_down(tok_and_model):
    tok, model, data = tok_and_model
    rows = [encode_example(tok, p, t, 64) for p, t in zip(data.train["prompt"][:8], data.train["target"][:8])]
    batch = PadCollator(tok.pad_token_id)(rows)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.3 * losses[0]


def test_run_streams_epochs_and_keeps_the_best_checkpoint(trained_run):
    run = Run(trained_run.run_dir)
    metrics = run.metrics()
    assert list(metrics.columns) == METRIC_COLUMNS
    assert list(metrics["epoch"]) == [1, 2, 3]
    assert metrics[["training_loss", "validation_loss"]].notna().all().all()
    assert metrics["training_loss"].iloc[-1] < metrics["training_loss"].iloc[0]
    best = metrics.loc[metrics["validation_loss"].idxmin()]
    assert trained_run.best_epoch == int(best["epoch"])
    cfg = json.loads(run.config_path.read_text())
    assert cfg["status"] == "finished" and cfg["train"]["model"] == "scratch"
    assert (run.best_dir / "model.safetensors").is_file() and not list(run.best_dir.glob("*.bin"))
    # The saved best model reproduces the validation loss recorded for its epoch.
    model, tok = load_pretrained(run.best_dir)
    _, val = run.split_frames()
    from symptomgen.batching import encode_frame

    rows = encode_frame(tok, val, cfg["train"]["max_length"], cfg["train"]["loss_on"])
    assert mean_token_loss(model, rows, tok.pad_token_id) == pytest.approx(float(best["validation_loss"]), rel=1e-4)


def test_run_training_reports_records_as_they_happen(tmp_path, sample_data, tiny_cfg):
    events = []
    summary = run_training(sample_data, tiny_cfg, tmp_path, on_event=events.append)
    assert events[-1] is summary
    epochs = [e for e in events if isinstance(e, EpochResult)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert isinstance(events[-1], RunSummary) and events[-1].status == "finished"
    first_epoch_at = events.index(epochs[0])
    assert any(isinstance(e, Progress) for e in events[:first_epoch_at])
    assert any(isinstance(e, Progress) for e in events[first_epoch_at:])
    assert epochs[0].is_best and all(e.tokens_per_sec > 0 and e.epoch_seconds > 0 for e in epochs)


def test_stop_is_honoured_within_a_step_and_keeps_the_best_epoch(tmp_path, sample_data, tiny_cfg):
    stop = threading.Event()
    steps_after_stop = []

    def on_event(ev):
        if isinstance(ev, Progress):
            if stop.is_set():
                steps_after_stop.append(ev.step)
        if isinstance(ev, EpochResult) and ev.epoch == 1:
            stop.set()

    summary = run_training(sample_data, tiny_cfg.with_(epochs=20), tmp_path, on_event, stop)
    assert summary.status == "stopped"
    assert summary.epochs_done == 1 and summary.best_epoch == 1
    assert len(steps_after_stop) <= 1
    run = Run(summary.run_dir)
    assert list(run.metrics()["epoch"]) == [1] and run.has_best()


def test_stop_before_any_epoch_leaves_no_model(tmp_path, sample_data, tiny_cfg):
    stop = threading.Event()
    summary = run_training(sample_data, tiny_cfg.with_(epochs=5), tmp_path,
                           lambda ev: stop.set() if isinstance(ev, Progress) else None, stop)
    assert summary.status == "stopped" and summary.best_epoch is None
    assert Run(summary.run_dir).metrics().empty


def test_early_stopping_patience(tmp_path, sample_data, tiny_cfg):
    # A huge learning rate makes validation loss stop improving quickly.
    cfg = tiny_cfg.with_(epochs=30, learning_rate=5e-2, patience=1)
    summary = run_training(sample_data, cfg, tmp_path)
    assert summary.status == "early-stopped"
    assert summary.epochs_done < 30
    assert summary.epochs_done == summary.best_epoch + 1


def test_seed_notebook_preset_is_available():
    seed = TRAIN_PRESETS["seed-notebook"]
    assert (seed.model, seed.batch_size, seed.learning_rate, seed.epochs) == ("distilgpt2", 8, 5e-4, 10)


@pytest.mark.parametrize("bad, message", [
    (dict(epochs=0), "Epochs"), (dict(epochs=float("nan")), "Epochs"), (dict(batch_size=-1), "Batch size"),
    (dict(learning_rate=10.0), "Learning rate"), (dict(max_length=10**6), "Max length"),
    (dict(loss_on="all"), "Loss mode"), (dict(epochs="3"), "number"), (dict(batch_size=2.5), "whole number"),
])
def test_train_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def test_unknown_local_model_is_a_clear_error(tmp_path, sample_data, tiny_cfg):
    from symptomgen.modeling import ModelLoadError

    with pytest.raises(ModelLoadError, match="not a saved model folder"):
        run_training(sample_data, tiny_cfg.with_(model=str(tmp_path)), tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_metrics_csv_is_readable_by_pandas(trained_run):
    df = pd.read_csv(trained_run.run_dir / "metrics.csv")
    assert {"epoch", "transformer", "batch_size", "gpu", "training_loss", "validation_loss",
            "epoch_duration_sec"} <= set(df.columns)


def test_training_freezes_existing_objects_for_the_trainers_collection_and_unfreezes_after(tmp_path, tiny_cfg,
                                                                                          sample_data):
    """The Trainer's start runs a full ``gc.collect``; objects that existed before are frozen for it (not walked
    again), and nothing stays frozen once the run ends."""
    import gc

    from transformers import TrainerCallback

    from symptomgen.trainer import TrainingHooks, run_training

    frozen: list[int] = []

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            frozen.append(gc.get_freeze_count())

    before = gc.get_freeze_count()
    summary = run_training(sample_data, tiny_cfg.with_(epochs=1), tmp_path, hooks=TrainingHooks(callbacks=(Probe(),)))
    assert summary.status == "finished"
    assert frozen and frozen[0] > 1000 and gc.get_freeze_count() == before == 0
