"""Scaling the same engine: 2-process torchrun on CPU (gloo), and the ZeroGPU decorator."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symptomgen import gpu as gpu_mod
from symptomgen.modeling import load_pretrained
from symptomgen.runs import METRIC_COLUMNS
from symptomgen.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN_TIMEOUT_S = 300


def test_torchrun_two_cpu_processes_write_one_run_folder(tmp_path):
    runs_dir = tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "symptomgen", "--runs-dir", str(runs_dir), "train", "--data", "sample", "--model", "scratch",
           "--epochs", "2", "--batch-size", "16", "--lr", "3e-3", "--max-length", "64",
           "--scratch-layers", "2", "--scratch-width", "64", "--scratch-vocab", "800"]  # checkpoints on (default)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TORCHRUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"2-process torchrun did not finish within {TORCHRUN_TIMEOUT_S}s:\n{exc.stderr}")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.stdout.count("run folder:") == 1  # only rank 0 reports
    assert "error:" not in proc.stderr  # e.g. a second rank trying to create the same run folder

    runs = RunStore.at(runs_dir).list()
    assert len(runs) == 1 and sorted(p.name for p in runs_dir.iterdir()) == [runs[0].run_id]
    run = runs[0]
    rec = run.record()
    assert rec.world_size == 2 and rec.status == "finished" and rec.epochs_done == 2
    metrics = run.metrics()
    assert list(metrics.columns) == METRIC_COLUMNS and list(metrics["epoch"]) == [1, 2]
    assert metrics["validation_loss"].map(math.isfinite).all()
    # The logged training loss is the mean over ranks (a sum would be ~2 x ln(vocab) at the start).
    assert metrics["training_loss"].iloc[0] < math.log(rec.train.scratch_vocab) + 1.0
    assert rec.best_val_loss == pytest.approx(metrics["validation_loss"].min())
    # Data-parallel for real: each optimizer step saw 2 x 16 rows, so an epoch took half the steps.
    steps = 2 * math.ceil(rec.train_rows / (16 * 2))
    checkpoint = run.checkpoints_dir / f"checkpoint-{steps}"
    assert checkpoint.is_dir(), sorted(p.name for p in run.checkpoints_dir.iterdir())
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == steps
    model, tok = load_pretrained(run.best_dir)
    assert sum(p.numel() for p in model.parameters()) == rec.parameters
    assert (run.base_dir / "model.safetensors").is_file()


# ------------------------------------------------------------------ ZeroGPU decorator

def _plain(x, tokens=48):
    return x * 2


def test_gpu_decorator_is_a_no_op_off_zero_gpu(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu_mod.gpu(60)(_plain) is _plain
    assert gpu_mod.gpu(lambda *a, **k: 10)(_plain) is _plain
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    if not gpu_mod.on_zero_gpu():  # the flag alone is not enough without the ``spaces`` package
        assert gpu_mod.gpu(60)(_plain) is _plain
    with pytest.raises(TypeError, match="seconds"):
        gpu_mod.gpu("sixty")


def test_gpu_decorator_requests_a_sized_zero_gpu_slot(fake_spaces):
    assert gpu_mod.on_zero_gpu()
    fixed = gpu_mod.gpu(45)(_plain)
    assert fixed.zero_gpu and fixed(3) == 6 and fake_spaces.calls == [45]
    sized = gpu_mod.gpu(lambda x, tokens=48: gpu_mod.generation_seconds(tokens, 5))(_plain)
    assert sized(1, tokens=48) == 2 and sized(1, tokens=1024) == 2
    short, long = fake_spaces.calls[1:]
    assert gpu_mod.ZERO_GPU_MIN_SECONDS <= short < long <= gpu_mod.max_seconds()
    gpu_mod.gpu(10_000)(_plain)(1)
    assert fake_spaces.calls[-1] == gpu_mod.max_seconds()  # clamped to what ZeroGPU grants


def test_duration_estimates_grow_with_the_work():
    assert gpu_mod.generation_seconds(10_000, 10) == gpu_mod.max_seconds()
    assert gpu_mod.ZERO_GPU_MIN_SECONDS <= gpu_mod.generation_seconds(48) < gpu_mod.generation_seconds(256, 5)
