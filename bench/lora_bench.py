"""LoRA against full fine-tuning on this CPU: peak memory, seconds per epoch and validation loss.

For each model shape (``distilgpt2``: 6 x 768, ``gpt2-medium``: 24 x 1024, both with GPT-2's 50 257-token
vocabulary, random init, as the weights cannot be downloaded here) and each mode (full fine-tune, LoRA with the
project's defaults: rank 8, alpha 16, c_attn + c_proj), one fresh process trains with the project's own
``run_training`` on the same seeded subset of the real training rows for the same epochs, and reports:

* peak RSS of that process (model, optimizer state, activations, best-model saves),
* training seconds per optimizer step, and the seconds a whole epoch of the real split would take at that rate,
* the epoch's measured wall time on the subset (training + validation + best-model save),
* the validation loss (per token, on the first ``--val-rows`` rows of the run's validation split) after the last epoch.

Prints a Markdown table and writes it, with the command, date and CPU, to ``bench/LORA.md``.  Uses
``../shared/data/Diseases_Symptoms.csv``; without it the script says so and exits 0 (``--data sample`` runs
on the bundled sample instead).  About 10 minutes on 2 quiet cores with the defaults (gpt2-medium takes most of it).

    python bench/lora_bench.py
    python bench/lora_bench.py --shapes distilgpt2 --rows 32 --epochs 1   # ~1 min
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import benchlib as B

from symptomgen.timing import GPT2_VOCAB, KNOWN_SHAPES

SCRIPT = Path(__file__).resolve()
RESULTS = SCRIPT.parent / "LORA.md"
SHAPES = {name: KNOWN_SHAPES[name] for name in ("distilgpt2", "gpt2-medium")}
VOCAB = GPT2_VOCAB  # GPT-2's: the LM head is a large share of the compute and of the optimizer state
BATCH = 8


def _prepared(data: str, rows: int, seed: int, val_rows: int = 0):
    import numpy as np

    from symptomgen.config import DataConfig
    from symptomgen.data import prepare

    prepared = prepare(DataConfig(source=data))
    train = prepared.train
    if rows and rows < len(train):
        pick = np.sort(np.random.default_rng(seed).choice(len(train), rows, replace=False))
        train = train.iloc[pick].reset_index(drop=True)
    val = prepared.val.head(val_rows) if val_rows else prepared.val  # the same rows in every process
    return dataclasses.replace(prepared, train=train, val=val), len(prepared.train)


def _build(folder: Path, shape: str, texts: list[str]) -> None:
    """A random-init GPT-2 of ``shape`` and a byte-level BPE sized like GPT-2's tokens per row."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from symptomgen.modeling import build_scratch_tokenizer

    tok = build_scratch_tokenizer(texts, B.CALIBRATED_BPE_VOCAB)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**SHAPES[shape], vocab_size=VOCAB, n_positions=1024,
                                       bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id))
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)


def worker(a) -> dict:
    """One (shape, mode) in this process: build, train ``a.epochs`` epochs with run_training, report."""
    from symptomgen import quiet_libraries
    from symptomgen.config import DataConfig, TrainConfig
    from symptomgen.data import format_example
    from symptomgen.events import EpochResult
    from symptomgen.trainer import TrainingHooks, run_training

    quiet_libraries()
    B.set_threads(a.threads)
    prepared, full_rows = _prepared(a.data, a.rows, a.seed, a.val_rows)
    texts = [format_example(p, t) for p, t in zip(prepared.train["prompt"], prepared.train["target"])]
    counts: dict = {}

    def prepare_model(model) -> None:
        counts["parameters"] = sum(p.numel() for p in model.parameters())

    epochs: list = []
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as tmp:
        folder = Path(tmp) / "model"
        _build(folder, a.shape, texts)
        cfg = TrainConfig(model=str(folder), epochs=a.epochs, batch_size=BATCH, learning_rate=a.lr,
                          save_checkpoints=False, seed=a.seed, lora_rank=a.rank if a.mode == "lora" else 0)
        started = time.perf_counter()
        summary = run_training(DataConfig(source=a.data), cfg, Path(tmp) / "runs", prepared=prepared,
                               on_event=lambda e: epochs.append(e) if isinstance(e, EpochResult) else None,
                               hooks=TrainingHooks(prepare_model=prepare_model))
        wall = time.perf_counter() - started
        trainable = None
        if a.mode == "lora":  # the adapter's own size tells the trainable count
            from safetensors import safe_open

            with safe_open(str(summary.run_dir / "best" / "adapter_model.safetensors"), "pt") as f:
                trainable = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        best_bytes = sum(p.stat().st_size for p in (summary.run_dir / "best").iterdir())
    if summary.status != "finished":
        raise SystemExit(f"{a.shape}/{a.mode} ended {summary.status}: {summary.message}")
    steps = math.ceil(len(prepared.train) / BATCH)
    return {"shape": a.shape, "mode": a.mode, "parameters": counts.get("parameters"), "trainable": trainable,
            "steps_per_epoch": steps, "full_split_steps": math.ceil(full_rows / BATCH),
            "epoch_wall_seconds": [e.epoch_seconds for e in epochs],
            # tokens_per_sec counts training time only (not validation or saving)
            "tokens_per_sec": [e.tokens_per_sec for e in epochs], "val_loss": epochs[-1].val_loss,
            "best_bytes": best_bytes, "peak_rss_mb": B.peak_rss_mb(), "run_seconds": wall,
            "load": os.getloadavg()[0]}


def orchestrate(a) -> str:
    from symptomgen.batching import encode_frame
    from symptomgen.data import format_example
    from symptomgen.modeling import build_scratch_tokenizer

    log = lambda *x: print(*x, file=sys.stderr, flush=True)  # noqa: E731
    prepared, _ = _prepared(a.data, a.rows, a.seed, a.val_rows)
    texts = [format_example(p, t) for p, t in zip(prepared.train["prompt"], prepared.train["target"])]
    tok = build_scratch_tokenizer(texts, B.CALIBRATED_BPE_VOCAB)  # the workers' tokenizer: same texts, same BPE
    tokens_per_epoch = sum(len(r["input_ids"]) for r in encode_frame(tok, prepared.train, 128, "target"))
    results: dict[tuple[str, str], list[dict]] = {}
    for rep in range(a.repeats):  # interleaved: full, LoRA, full, LoRA... so both see the same machine
        for shape in a.shapes:
            for mode in ("full", "lora"):
                t = time.perf_counter()
                r = B.run_worker(SCRIPT, [
                    "--worker", "--shape", shape, "--mode", mode, "--data", a.data, "--rows", str(a.rows),
                    "--epochs", str(a.epochs), "--threads", str(a.threads), "--val-rows", str(a.val_rows),
                    "--lr", str(a.lr), "--rank", str(a.rank), "--seed", str(a.seed)], timeout=3600)
                log(f"[{rep + 1}/{a.repeats}] {shape:12} {mode:5} done in {time.perf_counter() - t:.0f}s "
                    f"(load average {r['load']:.1f})")
                results.setdefault((shape, mode), []).append(r)

    def step_seconds(r: dict) -> float:  # the least-disturbed epoch's training rate (validation and saves excluded)
        return tokens_per_epoch / max(r["tokens_per_sec"]) / r["steps_per_epoch"]

    table = []
    for (shape, mode), rs in results.items():
        step = min(step_seconds(r) for r in rs)
        full_rs = results[(shape, "full")]
        full_step, full_rss = min(step_seconds(r) for r in full_rs), max(r["peak_rss_mb"] for r in full_rs)
        rss = max(r["peak_rss_mb"] for r in rs)
        r = rs[0]
        trainable = r["trainable"] if r["trainable"] is not None else r["parameters"]
        table.append([shape, mode, f"{r['parameters'] / 1e6:.0f} M", f"{trainable / 1e6:.2f} M",
                      f"{rss / 1024:.2f}", f"{rss / full_rss:.2f}", f"{step:.2f}", f"{step / full_step:.2f}",
                      f"{step * r['full_split_steps']:.0f}", f"{min(x['epoch_wall_seconds'][-1] for x in rs):.1f}",
                      " / ".join(f"{x['val_loss']:.3f}" for x in rs), f"{r['best_bytes'] / 2**20:.1f}",
                      " / ".join(f"{x['load']:.1f}" for x in rs)])
    first = next(iter(results.values()))[0]
    header = ["shape", "mode", "params", "trainable", "peak RSS GiB", "RSS vs full", "train s/step",
              "step vs full", f"s per epoch ({first['full_split_steps']} steps, projected)",
              f"epoch wall s ({first['steps_per_epoch']} steps + val + save)", f"val loss after {a.epochs} ep",
              "best/ MiB", "load avg"]
    return "\n".join([
        "## LoRA vs full fine-tuning (CPU)", "",
        f"`{B.command_line()}`", "",
        B.machine_line(a.threads), "",
        f"Data: {Path(a.data).name} — {len(prepared.train)} training rows (seeded subset), {len(prepared.val)} "
        f"validation rows; batch {BATCH}; learning rate {a.lr:g} for both modes; LoRA rank {a.rank}, alpha 16, "
        f"dropout 0.05, targets c_attn,c_proj (fan_in_fan_out); {a.epochs} epoch(s); no checkpoints; "
        f"{a.repeats} interleaved repeat(s), each a fresh process. Models: random init (GPT-2 vocabulary {VOCAB}), "
        "so the validation losses compare how far each mode moves a *random* base in the same steps, not "
        "fine-tuning quality on pretrained weights. Seconds per step: the fastest epoch of the repeats (training "
        "only); peak RSS: the largest; val loss and load average (1 min, at the end of each process; the machine "
        "has 2 cores and was shared with other work): one per repeat.", "",
        B.markdown_table(header, table), ""])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python bench/lora_bench.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--data", default=str(B.REAL_DATA), help="data source (default: the real dataset in "
                   "../shared/data; 'sample' for the bundled rows)")
    p.add_argument("--shapes", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                   default=list(SHAPES), help=f"comma-separated model shapes (default: {','.join(SHAPES)})")
    p.add_argument("--rows", type=int, default=32,
                   help="training rows (a seeded subset; default 32 = 4 steps per epoch)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per run (default 2)")
    p.add_argument("--val-rows", type=int, default=40, help="validation rows scored after each epoch (the first N "
                   "of the split; 0 = all; default 40)")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats of every (shape, mode); the "
                   "fastest epoch counts (default 1)")
    p.add_argument("--lr", type=float, default=5e-4, help="learning rate of both modes (default 5e-4)")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seed", type=int, default=42, help="seed of the subset, the init and the training")
    p.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to write (default bench/LORA.md)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a), default=str))
        return 0
    unknown = [s for s in a.shapes if s not in SHAPES]
    if unknown:
        print(f"error: unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}", file=sys.stderr)
        return 2
    if a.data != "sample" and not Path(a.data).is_file():
        print(f"{a.data} is not present: nothing measured (use --data sample for the bundled rows).")
        return 0
    body = orchestrate(a)
    print(body)
    B.write_section(a.results, "lora_bench", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
