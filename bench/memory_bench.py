"""Memory benchmark: ``symptomgen.memory``'s estimate of a run's peak against the peak a real run reaches.

For each shape, a fresh process trains the project's real path (``run_training``: Trainer, its loss, validation,
best-model save) for one short epoch on the real table (or the sample), and reports its peak resident memory
(``ru_maxrss``); the estimate for the same settings is computed without building anything.  Memory is not time, so a
busy machine does not change these figures much.  Prints a Markdown table and writes it to ``bench/MEMORY.md``.

    python bench/memory_bench.py                      # tiny, scratch, distilgpt2-shaped; ~3 min on 2 cores
    python bench/memory_bench.py --shapes tiny --results /tmp/m.md   # seconds, for tests
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import benchlib as B

SCRIPT = Path(__file__).resolve()
SHAPES = ("tiny", "scratch", "distilgpt2", "distilgpt2-lora")


def _config(shape: str, model_dir: str, batch_size: int):
    from symptomgen.config import TrainConfig

    if shape == "tiny":
        return TrainConfig(model="scratch", scratch_layers=2, scratch_width=64, scratch_vocab=800, epochs=1,
                           batch_size=batch_size, save_checkpoints=False)
    if shape == "scratch":
        return TrainConfig(model="scratch", epochs=1, batch_size=batch_size, save_checkpoints=False)
    return TrainConfig(model=model_dir, epochs=1, batch_size=batch_size, save_checkpoints=False,
                       lora_rank=8 if shape.endswith("lora") else 0)


def worker(a) -> dict:
    import resource

    from symptomgen import quiet_libraries
    from symptomgen.config import DataConfig
    from symptomgen.data import prepare
    from symptomgen.memory import estimate_for
    from symptomgen.timing import approx_tokens
    from symptomgen.trainer import run_training

    quiet_libraries()
    B.set_threads(a.threads)
    prepared = prepare(DataConfig(source=a.data))
    prepared = type(prepared)(**{**prepared.__dict__, "train": prepared.train.head(a.rows)})
    cfg = _config(a.shape, a.model_dir, a.batch_size)
    estimate = estimate_for(cfg, approx_tokens(prepared.train, cfg.max_length) / max(len(prepared.train), 1))
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as runs:
        summary = run_training(DataConfig(source=a.data), cfg, runs, prepared=prepared)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"shape": a.shape, "status": summary.status, "peak": peak, "estimate": estimate.total,
            "parts": estimate.__dict__}


def orchestrate(a) -> str:
    from symptomgen.config import DataConfig
    from symptomgen.data import format_example, prepare

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mem-model-") as tmp:
        model_dir = Path(tmp) / "distilgpt2"
        if any(s.startswith("distilgpt2") for s in a.shapes):
            p = prepare(DataConfig(source=a.data))
            texts = [format_example(x, y) for x, y in zip(p.train["prompt"], p.train["target"])]
            B.build_model_folder(model_dir, texts, "distilgpt2")
        for shape in a.shapes:
            r = B.run_worker(SCRIPT, ["--worker", "--shape", shape, "--model-dir", str(model_dir), "--data", a.data,
                                      "--rows", str(a.rows), "--batch-size", str(a.batch_size),
                                      "--threads", str(a.threads)])
            err = (r["estimate"] - r["peak"]) / r["peak"]
            rows.append([shape, f"{r['peak'] / 2**20:.0f}", f"{r['estimate'] / 2**20:.0f}", f"{err:+.0%}"])
            print(f"{shape}: peak {r['peak'] / 2**20:.0f} MB, estimate {r['estimate'] / 2**20:.0f} MB ({err:+.0%})",
                  file=sys.stderr, flush=True)
    body = "\n".join([
        "## memory_bench: estimated vs measured peak RAM of a training run", "",
        f"`{B.command_line()}`", "", B.machine_line(a.threads), "",
        f"One epoch of {a.rows} training rows, batch {a.batch_size}, the project's trainer and loss; peak = the "
        "process's `ru_maxrss` (import, training, validation, best-model save); estimate = "
        "`symptomgen.memory.estimate_for` from the settings alone. Error = (estimate − peak) / peak: positive errs "
        "safe (Start refuses a run whose estimate exceeds free memory).", "",
        B.markdown_table(["shape", "measured peak (MB)", "estimate (MB)", "error"], rows)])
    B.write_section(a.results, "memory_bench", body)
    return body


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shape", default="tiny", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    p.add_argument("--data", default=B.default_data())
    p.add_argument("--rows", type=int, default=64, help="training rows of the one epoch (default 64)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "MEMORY.md")
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a)))
    else:
        print(orchestrate(a))


if __name__ == "__main__":
    main()
