"""Adversarial inputs and injected faults for the package and the CLI.

Bad input → one clear sentence, nothing lost.  Adding a case is one line in a table.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from symptomgen import settings
from symptomgen.config import DataConfig, GenerationSettings, TrainConfig
from symptomgen.data import DataError, prepare
from symptomgen.errors import RunNotFoundError
from symptomgen.generation import clean_name
from symptomgen.runs import Run
from symptomgen.store import RunStore

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- data files: (name, bytes, error or None)
DATA_CASES = [
    ("renamed columns", b"Disease,Signs\nFlu,fever\nCold,cough\n",
     r"missing column\(s\) Name, Symptoms; found columns: Disease, Signs"),
    ("empty file", b"", "is empty"),
    ("header only", b"Name,Symptoms\n", "header but no rows"),
    ("one row", b"Name,Symptoms\nFlu,fever\n", "at least 2 are needed"),
    ("all cells empty", b"Name,Symptoms\n,\n , \n", "0 usable row"),
    ("binary renamed .csv", bytes(range(256)) * 40, "binary file"),
    ("gzip renamed .csv", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x00" * 50, "binary file"),
    ("unbalanced quotes", b'Name,Symptoms\n"Flu,fever\nCold,cough\n', r"could not be read|usable row"),
    ("non-UTF-8 (latin-1) bytes", "Name,Symptoms\nFièvre,fièvre\nGrippe,toux\nRhume,nez\n".encode("latin-1"), None),
    ("NaN and empty cells", b"Name,Symptoms\nFlu,fever\nNaN,\n,cough\nCold,runny nose\nGout,joint pain\n", None),
    ("duplicate names", b"Name,Symptoms\nFlu,fever\nFlu,cough\nCold,sneezing\nGout,pain\n", None),
    ("formula-like cells", b"Name,Symptoms\n=cmd|' /C calc'!A0,=1+1\n@SUM(A1),+fever\nCold,cough\n", None),
]


@pytest.mark.parametrize("label, content, error", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_files(tmp_path, label, content, error):
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    if error:
        with pytest.raises(DataError, match=error) as info:
            prepare(DataConfig(source=str(path)))
        assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    else:
        prepared = prepare(DataConfig(source=str(path)))
        assert prepared.kept >= 2


def test_formula_cells_stay_inert_text(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(DATA_CASES[-1][1])
    rows = pd.concat([*(lambda p: (p.train, p.val))(prepare(DataConfig(source=str(path))))])
    assert "=cmd|' /C calc'!A0" in set(rows["prompt"]) and "=1+1" in set(rows["target"])


def test_very_long_cells_are_dropped_and_counted(tmp_path):
    path = tmp_path / "long.csv"
    pd.DataFrame({"Name": ["Flu", "Cold", "Gout", "X" * 5000], "Symptoms": ["fever", "y" * 50_000, "pain", "z"]}
                 ).to_csv(path, index=False)
    prepared = prepare(DataConfig(source=str(path)))
    assert prepared.kept == 2 and prepared.dropped["over-long cell"] == 2


def test_oversized_upload_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMPTOMGEN_MAX_FILE_MB", "1")  # read when the file is, not when the module loaded
    path = tmp_path / "big.csv"
    with open(path, "wb") as fh:  # sparse: 200 MB on paper, no real disk use
        fh.seek(200 * 1024 * 1024 - 1)
        fh.write(b"\n")
    with pytest.raises(DataError, match=r"200 MB; the limit is 1 MB"):
        prepare(DataConfig(source=str(path)))
    with settings.override(max_file_bytes=300 * 1024 * 1024), pytest.raises(DataError, match="binary file"):
        prepare(DataConfig(source=str(path)))  # under the limit it is opened: its first bytes are zeros


def test_a_million_rows_hit_the_row_cap(tmp_path):
    path = tmp_path / "million.csv"
    path.write_text("Name,Symptoms\n" + "Flu,fever\n" * 1_000_000)
    with pytest.raises(DataError, match=f"more than {settings.current().max_rows} rows"):
        prepare(DataConfig(source=str(path)))


# ---------------------------------------------------------------- settings: (kwargs, error fragment)
TRAIN_CASES = [
    (dict(epochs=0), "Epochs"), (dict(epochs=-3), "Epochs"), (dict(epochs=float("nan")), "Epochs"),
    (dict(epochs=10**9), "Epochs"), (dict(batch_size=0), "Batch size"), (dict(batch_size=10**6), "Batch size"),
    (dict(learning_rate=0), "Learning rate"), (dict(learning_rate=float("inf")), "Learning rate"),
    (dict(learning_rate=-1e-3), "Learning rate"), (dict(max_length=0), "Max length"),
    (dict(max_length=10**7), "Max length"), (dict(seed="abc"), "Seed must be a number"),
    (dict(seed=None), "Seed must be a number"), (dict(model=""), "Model"), (dict(grad_accum=0), "accumulation"),
]


@pytest.mark.parametrize("kwargs, error", TRAIN_CASES, ids=[str(c[0]) for c in TRAIN_CASES])
def test_bad_training_settings(kwargs, error):
    with pytest.raises(ValueError, match=error):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, float("nan"), "x"])
def test_bad_validation_fraction(fraction):
    with pytest.raises(ValueError, match="Validation fraction"):
        DataConfig(val_fraction=fraction)


GEN_CASES = [
    (dict(top_k=1000), "top_k"), (dict(top_k=3.5), "top_k"), (dict(top_p=0.0), "top_p"), (dict(top_p="1"), "top_p"),
    (dict(temperature=99), "temperature"), (dict(repetition_penalty=5), "repetition_penalty"),
    (dict(max_new_tokens=10**6), "max_new_tokens"), (dict(num_return_sequences=0), "num_return_sequences"),
    (dict(seed="seed"), "seed"), (dict(top_k=True), "top_k"),
]


@pytest.mark.parametrize("kwargs, error", GEN_CASES, ids=[str(c[0]) for c in GEN_CASES])
def test_bad_generation_settings(kwargs, error):
    with pytest.raises(ValueError, match=error):
        GenerationSettings(**kwargs)


@pytest.mark.parametrize("name, error", [("", "enter a disease"), (" \n\t ", "enter a disease"),
                                         ("a" * 100_000, "limit is"), (12, "must be text")])
def test_bad_names(name, error):
    with pytest.raises(ValueError, match=error):
        clean_name(name)


def test_max_new_tokens_beyond_context_is_clamped(trained_run):
    from symptomgen.generation import generate
    from symptomgen.modeling import load_pretrained

    model, tok = load_pretrained(trained_run.run_dir / "best")
    model.config.n_positions = 12  # pretend a tiny context window
    try:
        out = generate(model, tok, "Flu", GenerationSettings(max_new_tokens=256, temperature=0))
        assert isinstance(out[0], str)
    finally:
        model.config.n_positions = 256


# ---------------------------------------------------------------- run folders and paths
@pytest.mark.parametrize("name", ["../etc", "/etc/passwd", "..", "a/../../b", "", "x" * 300, "run\x00id"])
def test_run_names_cannot_escape_the_runs_folder(tmp_path, name):
    with pytest.raises(RunNotFoundError):
        RunStore(tmp_path).get(name)


def test_symlinked_run_is_refused(tmp_path, trained_run):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "sneaky").symlink_to(trained_run.run_dir)
    with pytest.raises(RunNotFoundError):
        RunStore(runs).get("sneaky")


def test_deleted_run_gives_a_clear_message(tmp_path):
    with pytest.raises(RunNotFoundError, match="was not found.*deleted"):
        RunStore(tmp_path).get("20260101-000000-scratch")


def test_model_allow_list(monkeypatch):
    from symptomgen.hub import check_model_allowed

    monkeypatch.setenv("SYMPTOMGEN_ALLOWED_MODELS", "distilgpt2, openai-community/*")
    check_model_allowed("distilgpt2")
    check_model_allowed("openai-community/gpt2")
    with pytest.raises(ValueError, match="not allowed"):
        check_model_allowed("evil/model")


# ---------------------------------------------------------------- faults
def test_nan_loss_stops_the_run_and_keeps_the_last_good_model(tmp_path, sample_data, tiny_cfg, monkeypatch):
    from symptomgen import reporter, trainer

    real = reporter.mean_token_loss
    calls = []

    def flaky(*args, **kwargs):  # the second validation "diverges"
        calls.append(1)
        return math.nan if len(calls) == 2 else real(*args, **kwargs)

    monkeypatch.setattr(reporter, "mean_token_loss", flaky)  # the validation pass EpochReporter runs
    summary = trainer.run_training(sample_data, tiny_cfg.with_(epochs=5), tmp_path)
    assert summary.status == "failed" and "not a number" in summary.message
    assert summary.best_epoch == 1 and Run(summary.run_dir).has_best()
    assert Run(summary.run_dir).status() == "failed"


def _cli(*args, **kwargs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "HF_TOKEN": "hf_SECRET_do_not_leak"}
    return subprocess.Popen([sys.executable, "-m", "symptomgen", *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


TINY = ["--data", "sample", "--model", "scratch", "--scratch-layers", "2", "--scratch-width", "64",
        "--scratch-vocab", "800", "--batch-size", "16", "--lr", "3e-3", "--max-length", "64"]


def test_sigkill_mid_training_keeps_completed_epochs_and_resumes(tmp_path):
    proc = _cli("--runs-dir", tmp_path, "train", *TINY, "--epochs", "12")
    seen = []
    deadline = time.time() + 240
    for line in proc.stdout:
        if line.startswith("epoch"):
            seen.append(line)
        if len(seen) >= 2 or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert len(seen) >= 2
    run = Run(next(p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")))
    assert run.status() == "interrupted"
    metrics = run.metrics()
    assert len(metrics) >= 2 and metrics["validation_loss"].notna().all()
    from symptomgen.modeling import load_pretrained

    load_pretrained(run.best_dir)  # the best checkpoint so far is intact
    assert run.last_checkpoint() is not None
    # The folder train printed works as well as the id; settings come from the run (a flag is said to be ignored).
    resumed = _cli("train", "--resume", str(run.path), "--epochs", "20")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "ignored: --epochs" in err
    metrics = run.metrics()
    assert list(metrics["epoch"]) == list(range(1, 13))  # no epoch lost or duplicated
    assert run.status() == "finished"
    # A secret in the environment never reaches the run folder or the output.
    leaked = [p for p in run.path.rglob("*") if p.is_file() and b"hf_SECRET" in p.read_bytes()]
    assert not leaked and "hf_SECRET" not in out + err


def test_resume_of_a_finished_or_unknown_run_is_a_clear_error(tmp_path):
    proc = _cli("--runs-dir", tmp_path, "train", "--resume", "../outside")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


def test_out_of_memory_is_one_clear_line(tmp_path):
    # Cap the address space so a too-large scratch model cannot be allocated (simulated OOM).
    import resource  # noqa: F401  (POSIX only; the test runs on Linux CI)

    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30)); "
            "import runpy, sys; sys.argv = ['symptomgen'] + sys.argv[1:]; "
            "runpy.run_module('symptomgen', run_name='__main__')")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, "--runs-dir", tmp_path, "train", "--data", "sample",
                          "--model", "scratch", "--scratch-layers", "24", "--scratch-width", "2048",
                          "--scratch-vocab", "60000", "--epochs", "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert lines and "memory" in lines[-1].lower() and "Traceback" not in out.stderr, out.stderr[-2000:]
