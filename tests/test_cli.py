"""The command line, run as users run it: ``python -m symptomgen ...``."""

from __future__ import annotations

import json
import os
import re
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
    # Issue 21: the per-epoch sample's greedy scores, taught and unseen, on every line.
    assert all(re.search(r"score taught \d\.\d{3} unseen \d\.\d{3}", ln) for ln in epoch_lines), epoch_lines
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


@pytest.fixture(scope="module")
def half_val_run(tmp_path_factory):
    """A tiny run whose validation split (48 rows) is larger than the Evaluate tab's default sample."""
    runs = tmp_path_factory.mktemp("cli-eval-runs")
    out = cli("--runs-dir", runs, "train", "--data", "sample", *TINY_FLAGS, "--epochs", "1", "--val-fraction", "0.5")
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip().splitlines()[-1].split("run folder: ")[1])


def test_evaluate_defaults_to_the_evaluate_tab_sample_with_a_bar_on_stderr(half_val_run, tmp_path):
    from symptomgen import cli as cli_mod
    from symptomgen.ui import build_demo

    page_rows = next(b for b in build_demo(runs_dir=tmp_path).blocks.values()
                     if getattr(b, "elem_id", None) == "eval-rows").value
    assert cli_mod.build_parser().parse_args(["evaluate", "--model", "x"]).limit == page_rows == 20
    out = cli("evaluate", "--model", half_val_run, "--no-base")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # stdout is the JSON and nothing else
    assert report["unseen"]["rows"] == report["taught"]["rows"] == page_rows
    assert "base" not in report["unseen"] and "sampled_f1" not in report["unseen"]["fine_tuned"]  # greedy only
    first = out.stderr.splitlines()[0]
    assert first.startswith(f"Scoring {page_rows} unseen + {page_rows} taught rows (a sample; --all for every row, "
                            "--limit N for another size)"), out.stderr
    assert f"{2 * page_rows}/{2 * page_rows}" in out.stderr and "Scored in" in out.stderr  # the bar, finished


def test_evaluate_all_scores_every_validation_row(half_val_run):
    from symptomgen.runs import Run

    train_rows, val_rows = (len(f) for f in Run(half_val_run).split_frames())
    assert val_rows > 20
    out = cli("evaluate", "--model", half_val_run, "--no-base", "--all", "--max-new-tokens", "4", "--seed", "1")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["unseen"]["rows"] == val_rows and report["taught"]["rows"] == min(train_rows, val_rows)
    assert "sampled_f1" in report["unseen"]["fine_tuned"]  # a sampling flag adds the sampled pass
    assert out.stderr.startswith(f"Scoring {val_rows} unseen + {report['taught']['rows']} taught rows (every "
                                 "validation row; --limit N for a sample)")
    assert cli("evaluate", "--model", half_val_run, "--all", "--limit", "3").returncode == 2  # one or the other


def test_help_is_plain_text_in_every_command(monkeypatch):
    import argparse

    from symptomgen import cli as cli_mod

    parser = cli_mod.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {"": parser.format_help(), **{name: p.format_help() for name, p in sub.choices.items()}}
    assert set(helps) >= {"", "train", "generate", "evaluate", "runs", "delete", "export", "import", "push"}
    for name, text in helps.items():
        assert "``" not in text and "`" not in text, (name, text)
    assert "Command line: python -m symptomgen train" in " ".join(helps[""].split())


SCRATCH_OFFLINE = ("error: Offline mode is on (HF_HUB_OFFLINE=1), so the model 'gpt2' cannot be downloaded; pass "
                   "--offline-fallback to train the small scratch model instead, or --model scratch.")


@pytest.mark.parametrize("extra", [[], ["--no-fallback"]])  # the old opt-out flag is still accepted: it is the rule
def test_offline_a_hub_model_is_refused_before_any_run_folder(tmp_path, extra):
    out = cli("--runs-dir", tmp_path / "runs", "train", "--data", "sample", "--model", "gpt2", *extra, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == SCRATCH_OFFLINE, out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    both = cli("--runs-dir", tmp_path / "runs", "train", "--model", "distilgpt2", cwd=tmp_path)
    assert both.returncode == 2 and both.stderr.strip() == (
        "error: Offline mode is on (HF_HUB_OFFLINE=1), so the model 'distilgpt2' and the dataset "
        "'QuyenAnhDE/Diseases_Symptoms' cannot be downloaded; pass --offline-fallback to train the small scratch "
        "model on the bundled sample instead, or --model scratch --data sample."), both.stderr


def test_offline_fallback_trains_scratch_on_the_sample_with_a_notice(tmp_path):
    out = cli("--runs-dir", tmp_path, "train", "--model", "gpt2", "--offline-fallback", "--epochs", "1",
              "--batch-size", "32", "--max-length", "48")
    assert out.returncode == 0, out.stderr
    assert "bundled sample" in out.stderr and "'scratch' model instead of 'gpt2'" in out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1].split("run folder: ")[1])
    record = json.loads((run_dir / "config.json").read_text())
    assert record["train"]["model"] == "scratch" and record["data"]["source"] == "sample"


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "sample", "--epochs", "0"], "Epochs must be between"),
    (["train", "--data", "missing.csv", "--model", "scratch"], "does not exist"),
    (["train", "--data", "sample", "--model", "scratch", "--val-fraction", "1"], "Validation fraction"),
    (["train", "--data", "sample", "--model", "some-org/no-such-model"], "cannot be downloaded; pass --offline-fall"),
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
