"""Shared helpers for the benchmark scripts: machine facts, FLOPs, models, results file.

The scripts in ``bench/`` import this as a sibling module (``python bench/x.py``
puts ``bench/`` on ``sys.path``); it also puts the repository root there so
``symptomgen`` imports without being installed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from symptomgen.timing import GPT2_POSITIONS, GPT2_VOCAB, KNOWN_SHAPES  # noqa: E402 (after sys.path and env)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
REAL_DATA = ROOT.parent / "shared" / "data" / "Diseases_Symptoms.csv"
# distilgpt2's shape; random init has the same compute cost as the real weights.
DISTILGPT2_SHAPE = dict(KNOWN_SHAPES["distilgpt2"], vocab_size=GPT2_VOCAB, n_positions=GPT2_POSITIONS)
# Byte-level BPE size whose mean tokens per row on the real data matches GPT-2's own
# tokenizer (24.2 tokens/row, median 21, measured once against GPT-2's vocab.bpe).
CALIBRATED_BPE_VOCAB = 2500
# /train arguments (through ``gradio_client``): a tiny scratch run, and the quick-CPU scratch job on the sample.
TINY_JOB = dict(source="sample", upload=None, model="scratch", epochs=2, batch_size=16, learning_rate=3e-3,
                max_length=64, scratch_layers=2, scratch_width=64, scratch_vocab=800)
QUICK_JOB = dict(TINY_JOB, epochs=100, scratch_layers=4, scratch_width=256, scratch_vocab=2000)


def default_data() -> str:
    return str(REAL_DATA) if REAL_DATA.is_file() else "sample"


def prepared_rows(data: str, rows: int, subset_seed: int):
    """The train/val split the project makes, and a seeded subset of ``rows`` training rows (0 = all)."""
    import dataclasses

    import numpy as np

    from symptomgen.config import DataConfig
    from symptomgen.data import prepare

    prepared = prepare(DataConfig(source=data))
    train = prepared.train
    if rows and rows < len(train):
        pick = np.sort(np.random.default_rng(subset_seed).choice(len(train), rows, replace=False))
        train = train.iloc[pick].reset_index(drop=True)
    return dataclasses.replace(prepared, train=train)


def counting_collator(counts: dict, make_inner):
    """A ``TrainingHooks.make_collator`` that wraps ``make_inner(pad_token_id)`` and adds each training batch's
    real (attention-mask) and computed tokens to ``counts["real"]`` and ``counts["computed"]``."""

    class CountingCollator:  # training batches only; evaluation batches its own rows
        def __init__(self, pad_token_id):
            self.inner = make_inner(pad_token_id)
            self.packed = getattr(self.inner, "packed", False)

        def __call__(self, rows):
            batch = self.inner(rows)
            mask = batch.get("attention_mask")
            counts["real"] += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
            counts["computed"] += batch["input_ids"].numel()
            return batch

    return CountingCollator


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16() -> bool:
    """The project's own decision (``cputune.native_bf16``): the CPU's flags, less any ``isa_cap``."""
    from symptomgen import cputune

    return cputune.native_bf16()


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def matmul_peak_gflops(threads: int, n: int = 2048, repeats: int = 5, dtype: str = "float32") -> float:
    """Best-of-``repeats`` GFLOP/s of an n×n @ n×n matmul (the machine's practical peak)."""
    import torch

    set_threads(threads)
    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b  # warm up MKL / oneDNN
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def train_flops_per_token(params: int, n_layer: int, n_embd: int, context: float) -> float:
    """FLOPs to train on one token: 6·N for the weights plus 6·n_layer·context·d for attention.

    ``params`` should exclude the position embeddings (a lookup); the tied token
    embedding is counted once, as the LM head's matmul (Kaplan et al. 2020).
    """
    return 6 * params + 6 * n_layer * context * n_embd


def matmul_params(model) -> int:
    """Parameters that take part in matmuls (all but the position-embedding lookup)."""
    total = sum(p.numel() for p in model.parameters())
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    return total - (wpe.weight.numel() if wpe is not None else 0)


def build_model_folder(folder: Path, texts: list[str], shape: str, seed: int = 0,
                       tokenizer_dir: str | None = None, bpe_vocab: int = CALIBRATED_BPE_VOCAB) -> Path:
    """Save a random-init GPT-2 (``distilgpt2`` shape or ``tiny``) and a tokenizer to ``folder``.

    The tokenizer is a byte-level BPE trained on ``texts`` (sized to match GPT-2's
    tokens per row) unless ``tokenizer_dir`` names a saved GPT-2 tokenizer.
    """
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from symptomgen.modeling import build_scratch_tokenizer

    if tokenizer_dir:
        tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        tok.pad_token = tok.pad_token or tok.eos_token
    else:
        tok = build_scratch_tokenizer(texts, bpe_vocab)
    if shape == "distilgpt2":
        dims = dict(DISTILGPT2_SHAPE)
    elif shape == "tiny":
        dims = dict(n_layer=2, n_head=2, n_embd=64, vocab_size=len(tok), n_positions=256)
    else:
        raise ValueError(f"Unknown model shape {shape!r}; use distilgpt2 or tiny.")
    dims["vocab_size"] = max(dims["vocab_size"], len(tok))
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**dims, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def run_worker(script: Path, args: list[str], timeout: float = 3600, env: dict | None = None) -> dict:
    """Run ``script --worker ...`` in a fresh process; return the JSON it prints last."""
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {' '.join(args[:3])} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def machine_line(threads: int) -> str:
    import torch

    from symptomgen import cputune

    cap, kernels = cputune.isa_cap(), torch.backends.cpu.get_cpu_capability()
    isa = (f"instruction sets capped by {cap}, torch kernels at {kernels}: this CPU stands in for one without native "
           "bf16" if cap else f"torch kernels at {kernels}")
    return (f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · CPU: {cpu_model()} "
            f"({os.cpu_count()} logical cores, native bf16: {'yes' if native_bf16() else 'no'}; {isa}) · "
            f"threads: {threads} · torch {torch.__version__}")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def launch_app(runs: Path, port: int) -> subprocess.Popen:
    """``python app.py`` on ``port``, offline, with ``runs`` as its runs folder; returns once it serves its page."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SYMPTOMGEN_RUNS_DIR": str(runs), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200:
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the app did not start")


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of a Markdown results file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
