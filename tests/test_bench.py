"""The benchmark scripts run end to end on a tiny model and write their tables.

Speed is never asserted here (timings depend on the machine and its load); these
tests only check that the scripts work and that the results file has the
expected rows and columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(script: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _header(text: str, first_cell: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split("|")]


@pytest.mark.parametrize("script", ["train_bench.py", "gen_bench.py", "gpu_check.py"])
def test_help(script):
    out = _run(script, "--help", timeout=120).stdout
    assert "--results" in out and "--tiny" in out


def test_train_bench_tiny_writes_table(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nkept text\n")
    _run("train_bench.py", "--tiny", "--data", "sample", "--results", str(results))
    text = results.read_text()
    assert "kept text" in text  # other sections survive
    assert "<!-- train_bench:start -->" in text and "Command: `python bench/train_bench.py --tiny" in text
    assert _header(text, "arm") == ["arm", "real tokens/s (median)", "s per optimizer step",
                                    "padded share of computed tokens", "s per epoch incl. eval + checkpoint",
                                    "eval + checkpoint share", "peak RSS MB", "MFU"]
    assert "| seed loop (baseline) |" in text and "| symptomgen trainer (candidate) |" in text
    assert _header(text, "sampling")[:4] == ["sampling", "epochs", "seeds", "padded share"]
    assert "| packed, shuffled (project default) |" in text and "| padded, plain shuffling |" in text
    assert "| peer: plain Trainer + DataCollatorForLanguageModeling" in text
    assert _header(text, "target") == ["target", "measured", "verdict"]
    assert "fp32 matmul peak" in text and "CPU:" in text and "threads:" in text
    assert "Per-pair real-token throughput ratio" in text
    # A second run replaces its own section rather than appending another.
    _run("train_bench.py", "--tiny", "--data", "sample", "--phases", "pairs", "--results", str(results))
    assert results.read_text().count("<!-- train_bench:start -->") == 1


def test_gen_bench_tiny_writes_table(tmp_path):
    results = tmp_path / "RESULTS.md"
    raw = tmp_path / "gen.json"
    _run("gen_bench.py", "--tiny", "--data", "sample", "--no-startup", "--results", str(results),
         "--json-out", str(raw))
    text = results.read_text()
    assert "<!-- gen_bench:start -->" in text
    # The serving dtype is decided per CPU, and the table says which and why.
    from symptomgen.modeling import serving_dtype

    dtype, why = serving_dtype()
    assert f"**{str(dtype).replace('torch.', '')}**, because {why}." in text
    assert json.loads(raw.read_text())["generation"][-1]["serving_decision"] == why
    assert _header(text, "figure")[:2] == ["figure", "fp32 weights (float32)"]
    assert _header(text, "figure")[2].startswith("as served (")
    for row in ("ms per generated token", "ms per cached forward step", "time to first streamed token",
                "num_return_sequences=3, one batched call", "three single calls"):
        assert f"| {row}" in text


def test_gpu_check_cpu_epoch_table(tmp_path):
    """``gpu_check.py --device cpu`` times the seed loop and our trainer on the CPU (compile arms are opt-in there)."""
    results = tmp_path / "RESULTS.md"
    out = _run("gpu_check.py", "--device", "cpu", "--steps", "2", "--tiny", "--data", "sample", "--results",
               str(results), timeout=300).stdout
    header = _header(out, "arm")
    assert header[:6] == ["arm", "steps", "epoch s", "warm-up/compile s", "real tokens/s (excl. warm-up)",
                          "× seed loop"]
    assert header[6].startswith("MFU vs ") and header[7] == "peak RSS MiB (CPU: no VRAM)"
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in out.splitlines()
                              if ln.startswith("| seed loop") or ln.startswith("| symptomgen trainer"))}
    assert set(rows) == {"seed loop (baseline)", "symptomgen trainer"}
    assert rows["seed loop (baseline)"][5] == "1.00" and float(rows["symptomgen trainer"][5]) > 0
    assert all(r[1] == "2" and float(r[4]) > 0 and float(r[7]) > 0 for r in rows.values())
    assert "<!-- gpu_check:start -->" in results.read_text()


def test_gpu_check_without_cuda_says_so():
    proc = _run("gpu_check.py", timeout=120)
    assert proc.stdout.startswith("No CUDA device on this machine") and proc.stdout.count("\n") == 1


def test_follow_rss_tiny_writes_rss_rows(tmp_path):
    """``follow_rss.py`` follows a short job through /attach and reports the server's and the child's RSS."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nkept text\n")
    _run("follow_rss.py", "--tiny", "--epochs", "3", "--results", str(results), timeout=300)
    text = results.read_text()
    assert "kept text" in text and "<!-- follow_rss:start -->" in text and "CPU:" in text
    assert _header(text, "point") == ["point", "epoch", "server RSS MiB", "training child RSS MiB"]
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines()
                              if ln.startswith("| ") and not ln.startswith("| point"))}
    for name in ("start (server up, before Start)", "after epoch 1", "mid (epoch 1)", "end (epoch 3)",
                 "peak (whole run)"):
        assert float(rows[name][2]) > 0, rows[name]
    for name in ("after epoch 1", "end (epoch 3)", "peak (whole run)"):
        assert float(rows[name][3]) > 0, rows[name]
    assert rows["end (epoch 3)"][1] == "3"
    growth = rows["growth per 10 epochs (epoch 1 → end, least squares)"][2]
    assert growth == "—" or abs(float(growth)) < 1e4  # "—" when every sample after epoch 1 saw the same epoch
