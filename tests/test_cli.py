"""The command line, run as users run it: ``python -m symptomgen ...``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--model", "scratch", "--batch-size", "16", "--lr", "3e-3", "--max-length", "64",
              "--scratch-layers", "2", "--scratch-width", "64", "--scratch-vocab", "800"]


def cli(*args, cwd=ROOT, timeout=300, **env_vars):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **env_vars}
    return subprocess.run([sys.executable, "-m", "symptomgen", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("cli-runs")
    out = cli("--runs-dir", runs, "train", "--data", "sample", *TINY_FLAGS, "--epochs", "3")
    assert out.returncode == 0, out.stderr
    return runs, out


def test_train_prints_one_line_per_epoch_and_the_run_folder(cli_run):
    runs, out = cli_run
    epoch_lines = [ln for ln in out.stdout.splitlines() if ln.startswith("epoch")]
    assert len(epoch_lines) == 3 and "val_loss" in epoch_lines[0]
    folder = Path(out.stdout.strip().splitlines()[-1].split("run folder: ")[1])
    assert folder.parent == runs and (folder / "best" / "config.json").is_file()


def test_generate_from_the_run_folder(cli_run):
    runs, _ = cli_run
    run_dir = next(runs.iterdir())
    out = cli("generate", "--model", run_dir, "Kidney Failure", "--num-return-sequences", "2", "--seed", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and all(ln.startswith("Kidney Failure | ") for ln in lines)
    by_id = cli("--runs-dir", runs, "generate", "--model", run_dir.name, "Kidney Failure", "--temperature", "0")
    assert by_id.returncode == 0 and by_id.stdout.startswith("Kidney Failure | ")


@pytest.mark.parametrize("spelling", ["run id", "run folder", "best folder"])
def test_train_on_from_a_run_in_each_spelling(cli_run, tmp_path, spelling):
    """Issue 24: ``train --model runs/<id> --lora-rank 8`` loaded the run folder as if it were a model (its run
    record as a model config: "Couldn't instantiate the backend tokenizer"), and a run id silently fell back to
    the scratch model offline.  Every spelling trains on from the run's best/ weights, recorded as its parent."""
    import shutil

    parent = next(p for p in cli_run[0].iterdir() if p.is_dir())
    runs = tmp_path / "runs"
    shutil.copytree(parent, runs / parent.name)  # a runs folder of its own: cli_run's is shared with other tests
    model = {"run id": parent.name, "run folder": runs / parent.name,
             "best folder": runs / parent.name / "best"}[spelling]
    out = cli("--runs-dir", runs, "train", "--data", "sample", "--model", model, "--lora-rank", "8",
              "--epochs", "1", "--max-length", "64", "--no-fallback")
    assert out.returncode == 0, out.stderr
    assert "scratch" not in out.stderr
    child = Path(out.stdout.strip().splitlines()[-1].split("run folder: ")[1])
    rec = json.loads((child / "config.json").read_text())
    old = json.loads((parent / "config.json").read_text())
    assert rec["parent_run"] == parent.name and rec["train"]["model"] == parent.name
    assert rec["lora_base"] == "base" and rec["parameters"] == old["parameters"]
    assert (child / "best" / "adapter_config.json").is_file()


def test_evaluate_prints_json_for_run_and_base(cli_run):
    runs, _ = cli_run
    run_dir = next(runs.iterdir())
    out = cli("evaluate", "--model", run_dir, "--limit", "4", "--temperature", "0")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["unseen"]
    for key in ("val_loss", "perplexity", "precision", "recall", "f1"):
        assert key in report["fine_tuned"] and key in report["base"]
    assert report["fine_tuned"]["val_loss"] < report["base"]["val_loss"]


def test_offline_default_falls_back_with_a_notice(tmp_path):
    out = cli("--runs-dir", tmp_path, "train", "--epochs", "1", "--batch-size", "32", "--max-length", "48")
    assert out.returncode == 0, out.stderr
    assert "bundled sample" in out.stderr and "'scratch' model" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "sample", "--epochs", "0"], "Epochs must be between"),
    (["train", "--data", "missing.csv", "--model", "scratch"], "does not exist"),
    (["train", "--data", "sample", "--model", "scratch", "--val-fraction", "1"], "Validation fraction"),
    (["train", "--data", "sample", "--model", "some-org/no-such-model", "--no-fallback"], "Could not download"),
    (["generate", "--model", "scratch-does-not-exist", "x"], "Could not"),
    (["generate", "--model", "gpt2", "Flu", "--top-k", "500"], "top_k must be between"),
    (["train", "--data", "sample", "--epochs", "abc"], "invalid int value: 'abc'"),  # caught by argparse
    (["generat", "Flu"], "invalid choice: 'generat'"),
])
def test_bad_arguments_give_one_clear_line(tmp_path, args, message):
    out = cli("--runs-dir", tmp_path, *args, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [["runs"], ["train", "--data", "sample", "--model", "scratch"]])
def test_a_malformed_setting_in_the_environment_is_one_line(tmp_path, command):
    out = cli(*command, cwd=tmp_path, SYMPTOMGEN_RUNS_DIR=str(tmp_path), SYMPTOMGEN_MAX_RUNS="many")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: SYMPTOMGEN_MAX_RUNS must be a number, got 'many'."


def test_help_lists_the_commands():
    out = cli("--help")
    assert out.returncode == 0 and all(c in out.stdout for c in ("train", "generate", "evaluate"))


def test_listing_runs_shows_the_run_without_loading_the_ml_stack(cli_run):
    """``runs`` and ``--help`` answer at once: they must not import torch/transformers (seconds on a laptop)."""
    runs, out = cli_run
    code = ("import sys\nfrom symptomgen.cli import main\n"
            f"rc = main(['--runs-dir', {str(runs)!r}, 'runs'])\n"
            "print('heavy:', sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    run_id = Path(out.stdout.strip().splitlines()[-1].split("run folder: ")[1]).name
    assert run_id in proc.stdout and "finished" in proc.stdout
    assert "heavy: []" in proc.stdout


def test_a_closed_pipe_is_not_an_error(cli_run):
    runs, _ = cli_run
    code = ("import sys\nfrom symptomgen.cli import main\n"
            "sys.stdout.close = lambda: None\n"
            "class Closed:\n"
            "    def write(self, s): raise BrokenPipeError(32, 'Broken pipe')\n"
            "    def flush(self): pass\n"
            "    def fileno(self): return sys.__stdout__.fileno()\n"
            "sys.stdout = Closed()\n"
            f"sys.exit(main(['--runs-dir', {str(runs)!r}, 'runs']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "error" not in proc.stderr, proc.stderr
