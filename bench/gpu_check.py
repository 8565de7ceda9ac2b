"""GPU check: one epoch of the seed notebook's loop against one of ours on the same device; where tensors lived.

Epoch timing (the default).  Arms, each in a fresh process, on the same rows, batch size (8), optimizer-step count
and distilgpt2-shaped random-init model (``--tiny``: 2 layers, width 64):

- ``seed``: the seed notebook's loop (``seed_loop.py``: fp32, every row padded to 128, Adam), batches sent
  ``.to(device)`` as the notebook does;
- ``ours``: the project's trainer, ``symptomgen.trainer.run_training`` (packed batches, bf16 where the device has
  it), timed from the Trainer's train begin to its last optimizer step (validation and saves come after);
- ``seed+compile``, ``ours+compile``: the same under ``torch.compile`` (``ours``: ``TrainingArguments
  (torch_compile=True)``).

It prints real (non-pad) tokens/s, the ratio to the seed loop, MFU against the device's bf16 peak (on CUDA: the
datasheet's dense figure for known cards, else a measured bf16 matmul; on CPU: benchlib's measured matmul peak,
bf16 where the CPU has native bf16, else fp32), peak memory (VRAM on CUDA, RSS on CPU) and the warm-up that
tokens/s leaves out: without compile, the first step's time above the median of the others; with compile, the
seconds torch spent compiling during the timed steps (its own account, forward and backward graphs, recompiles
for new packed lengths included).

Placement (``--placement``).  A global forward hook watches every call of a GPT-2 language model and records,
per phase, the device and dtype of its weights, of its ``input_ids`` and of its logits.  Phases: a full fine-tune
and a LoRA fine-tune (two epochs each, tiny scratch model on the bundled sample, ``run_training``),
``evaluate_run`` (fine-tuned and base), the web app's model cache with ``generate`` and ``explain_generation``, and
the CLI's ``generate``.  Every phase must have run on CUDA; the script prints a table and exits 1 when one did not.

Without a CUDA device it says so and exits 0, unless ``--device cpu`` asks for the epoch timing on the CPU.

    python bench/gpu_check.py                          # on a CUDA machine: one epoch per arm, all four arms
    python bench/gpu_check.py --device cpu --steps 5   # on the CPU: 5 steps per arm, seed and ours (no compile)
    python bench/gpu_check.py --placement              # on a CUDA machine: where weights, inputs and logits lived
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
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import benchlib as B

SCRIPT = Path(__file__).resolve()
BATCH = 8  # the seed notebook's batch, used by every arm
VAL_ROWS = 16  # the trainer validates after its epoch, untimed: a few rows keep the check short
ARMS = ("seed", "seed+compile", "ours", "ours+compile")
CPU_ARMS = ("seed", "ours")  # inductor compiles for minutes on a small CPU: compile arms only when named
LABELS = {"seed": "seed loop (baseline)", "seed+compile": "seed loop + torch.compile",
          "ours": "symptomgen trainer", "ours+compile": "symptomgen trainer + torch.compile"}
# Dense bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s; first match of the device name wins (T4 has no
# bf16: its fp16 figure).  Other cards: a measured bf16 matmul.
CUDA_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("H20", 148.0),
                    ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("T4", 65.0)]


# ----------------------------------------------------------------------------- workers (one arm per process)
def _model_facts(model, device: str) -> dict:
    import torch

    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else B.peak_rss_mb()
    return {"matmul_params": B.matmul_params(model), "n_layer": model.config.n_layer,
            "n_embd": model.config.n_embd, "peak_memory_mb": peak}


def compile_seconds() -> float:
    """Seconds ``torch.compile`` has spent compiling in this process, by torch's own account (dynamo's timers of
    whole forward-frame and backward compiles)."""
    from torch._dynamo.utils import calculate_time_spent

    return calculate_time_spent().get("total_wall_time", 0.0)


def worker_seed(a, compiled: bool) -> dict:
    import seed_loop as S
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    prepared = B.prepared_rows(a.data, a.rows, a.subset_seed)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    tok.pad_token = tok.eos_token  # the seed's choice
    model = GPT2LMHeadModel.from_pretrained(a.model_dir).to(a.device)
    ds = S.SeedDataset(list(prepared.train["prompt"]), list(prepared.train["target"]), tok)
    run = torch.compile(model) if compiled else model
    out = S.train_steps(run, ds, a.steps, torch.Generator().manual_seed(a.subset_seed), device=a.device)
    rows_done = min(a.steps * S.SEED_BATCH, len(ds))
    return {"seconds": out["seconds"], "step_seconds": out["step_seconds"], "rows": rows_done,
            "real_tokens": S.real_tokens(ds) * rows_done / len(ds), "computed_tokens": rows_done * S.SEED_MAX_LENGTH,
            "loss_last": out["losses"][-1], "compile_seconds": compile_seconds() if compiled else None,
            **_model_facts(model, a.device)}


class _StepClock:
    """Trainer callback: train begin and each optimizer step's begin and end (waiting for the GPU at each), and,
    compiled, the compile seconds at the last step's end (validation compiles its own graphs after it)."""

    def __init__(self, cuda: bool, compiled: bool):
        self.cuda, self.compiled, self.start, self.begin, self.end, self.steps = cuda, compiled, 0.0, 0.0, 0.0, []
        self.compile_seconds: float | None = None

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                clock.start = clock.now()

            def on_step_begin(self, args, state, control, **kw):
                clock.begin = clock.now()

            def on_step_end(self, args, state, control, **kw):
                clock.end = clock.now()
                clock.steps.append(clock.end - clock.begin)
                if clock.compiled:
                    clock.compile_seconds = compile_seconds()

        return Clock()


def worker_ours(a, compiled: bool) -> dict:
    import symptomgen.trainer as T
    from symptomgen import quiet_libraries
    from symptomgen.config import DataConfig, TrainConfig

    quiet_libraries()
    prepared = B.prepared_rows(a.data, a.rows, a.subset_seed)
    prepared = dataclasses.replace(prepared, val=prepared.val.head(VAL_ROWS))
    counts, loaded = {"real": 0, "computed": 0}, {}
    clock = _StepClock(a.device == "cuda", compiled)
    hooks = T.TrainingHooks(callbacks=(clock.callback(),), prepare_model=lambda m: loaded.update(model=m),
                            make_collator=B.counting_collator(
                                counts, lambda pad: T.training_collator(loaded["model"], pad)),
                            args_overrides={"torch_compile": True} if compiled else {})
    cfg = TrainConfig(model=a.model_dir, epochs=1, batch_size=BATCH, save_checkpoints=False, keep="best",
                      score_rows=0)
    with tempfile.TemporaryDirectory(prefix="gpu-check-runs-") as runs_dir:
        summary = T.run_training(DataConfig(source=a.data), cfg, runs_dir, prepared=prepared, hooks=hooks)
    if summary.status != "finished":
        raise SystemExit(f"our run ended {summary.status}: {summary.message}")
    if len(clock.steps) != a.steps:
        raise SystemExit(f"our run made {len(clock.steps)} optimizer steps, not {a.steps}")
    return {"seconds": clock.end - clock.start, "step_seconds": clock.steps, "rows": len(prepared.train),
            "real_tokens": counts["real"], "computed_tokens": counts["computed"],
            "loss_last": summary.best_val_loss, "compile_seconds": clock.compile_seconds,
            **_model_facts(loaded["model"], a.device)}


def run_worker(a) -> dict:
    B.set_threads(a.threads)
    arm = a.worker
    fn = worker_seed if arm.startswith("seed") else worker_ours
    return {"arm": arm, **fn(a, compiled=arm.endswith("+compile"))}


# ----------------------------------------------------------------------------- orchestration
def bf16_peak(device: str, a) -> tuple[float, str]:
    """(peak TFLOP/s, where the figure comes from) for MFU."""
    import torch

    if device != "cuda":
        dtype = "bfloat16" if B.native_bf16() else "float32"
        peak = B.matmul_peak_gflops(a.threads, a.matmul_n, dtype=dtype) / 1e3
        return peak, f"measured {dtype} matmul peak of this CPU ({a.threads} threads)"
    name = torch.cuda.get_device_name(0)
    for key, tflops in CUDA_BF16_TFLOPS:
        if key in name:
            return tflops, f"{name}: datasheet dense bf16 peak"
    n = 8192
    x, y = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    x @ y
    best = float("inf")
    for _ in range(10):
        torch.cuda.synchronize()
        t = time.perf_counter()
        x @ y
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12, f"{name}: measured bf16 matmul peak (not in the datasheet table)"


def warmup_seconds(r: dict) -> float:
    """Compiled: torch's compile seconds.  Else the first step's time above the median of the others."""
    if r.get("compile_seconds") is not None:
        return r["compile_seconds"]
    steps = r["step_seconds"]
    return max(0.0, steps[0] - B.median(steps[1:])) if len(steps) > 1 else 0.0


def render(a, results: list[dict], steps: int, rows: int, full: bool, peak: tuple[float, str], shape: str) -> str:
    import torch

    cuda = a.device == "cuda"
    if cuda:
        where = (f"GPU: {torch.cuda.get_device_name(0)} · torch {torch.__version__} · CUDA {torch.version.cuda} · "
                 f"bf16 supported: {torch.cuda.is_bf16_supported()}")
    else:
        where = B.machine_line(a.threads)
    for r in results:
        r["warmup"] = warmup_seconds(r)
        r["tps"] = r["real_tokens"] / max(r["seconds"] - r["warmup"], 1e-9)
        flops = B.train_flops_per_token(r["matmul_params"], r["n_layer"], r["n_embd"], r["real_tokens"] / r["rows"])
        r["mfu"] = r["tps"] * flops / (peak[0] * 1e12)
    seed = next((r for r in results if r["arm"] == "seed"), None)
    memory = "peak VRAM MiB (max_memory_allocated)" if cuda else "peak RSS MiB (CPU: no VRAM)"
    header = ["arm", "steps", "epoch s", "warm-up/compile s", "real tokens/s (excl. warm-up)", "× seed loop",
              f"MFU vs {peak[0]:.3g} TFLOP/s", memory]
    rows_out = [[LABELS[r["arm"]], len(r["step_seconds"]), f"{r['seconds']:.2f}", f"{r['warmup']:.2f}",
                 f"{r['tps']:.0f}", f"{r['tps'] / seed['tps']:.2f}" if seed else "–", f"{r['mfu']:.2%}",
                 f"{r['peak_memory_mb']:.0f}"] for r in results]
    lines = [f"Command: `{B.command_line()}`  ", f"{where}  ",
             f"Data: {a.data if a.data != 'sample' else 'the bundled sample'}, {rows} training rows, {steps} "
             f"optimizer steps of {BATCH} rows per arm ({'one full epoch' if full else 'a seeded subset'}); "
             f"model: {shape}-shaped, random init.  MFU peak: {peak[1]}.", "",
             B.markdown_table(header, rows_out), ""]
    if seed:
        whole = ", ".join(f"{LABELS[r['arm']]} {seed['seconds'] / r['seconds']:.2f}×" for r in results
                          if r is not seed)
        lines.append(f"Whole-epoch speed-up over the seed loop, warm-up and compile included: {whole}.  ")
        ours = next((r for r in results if r["arm"] == "ours"), None)
        if ours and cuda:
            ratio = ours["tps"] / seed["tps"]
            lines.append(f"Target (issue 25: our epoch ≥ 3× the seed loop's on a GPU): {ratio:.2f}× — "
                         f"{'met' if ratio >= 3 else 'not met'}.  ")
    lines.append("Real tokens are non-pad tokens (the seed loop computes every row padded to 128); the seed loop "
                 "trains in fp32 as the notebook does, ours under bf16 autocast where the device supports it.")
    return "\n".join(lines)


def epoch_check(a) -> int:
    from symptomgen import quiet_libraries
    from symptomgen.data import format_example

    quiet_libraries()
    arms = a.arms or (ARMS if a.device == "cuda" else CPU_ARMS)
    prepared = B.prepared_rows(a.data, 0, 0)
    n_train = len(prepared.train)
    rows = a.steps * BATCH if a.steps and a.steps * BATCH < n_train else n_train
    steps = math.ceil(rows / BATCH)
    texts = [format_example(p, t) for p, t in zip(prepared.train["prompt"], prepared.train["target"])]
    peak = bf16_peak(a.device, a)
    shape = "tiny" if a.tiny else "distilgpt2"
    env = {} if a.device == "cuda" else {"CUDA_VISIBLE_DEVICES": ""}  # the Trainer must not find a GPU
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-model-") as tmp:
        model_dir = B.build_model_folder(Path(tmp) / "model", texts, shape)
        for arm in arms:
            print(f"{arm} …", file=sys.stderr, flush=True)
            results.append(B.run_worker(SCRIPT, [
                "--worker", arm, "--device", a.device, "--data", a.data, "--model-dir", str(model_dir),
                "--rows", str(rows), "--steps", str(steps), "--threads", str(a.threads)], env=env))
    body = render(a, results, steps, rows, rows == n_train, peak, shape)
    print(body)
    if a.results:
        B.write_section(a.results, "gpu_check", body)
    return 0


def placement_check() -> int:
    """Train, evaluate, explain and generate through the project's paths; 1 when a phase did not run on CUDA."""
    import torch

    from symptomgen import quiet_libraries
    from symptomgen.cli import main as cli_main
    from symptomgen.config import DataConfig, GenerationSettings, TrainConfig
    from symptomgen.evaluation import evaluate_run
    from symptomgen.explain import explain_generation
    from symptomgen.generation import ModelCache, generate
    from symptomgen.trainer import run_training

    quiet_libraries()
    seen: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    calls: dict[str, int] = defaultdict(int)
    phase = ["setup"]

    def watch(module, args, kwargs, output):
        if type(module).__name__ != "GPT2LMHeadModel":
            return
        p = next(module.parameters())
        ids = kwargs.get("input_ids", args[0] if args else None)
        logits = getattr(output, "logits", None)
        rec = seen[phase[0]]
        rec["weights"].add(f"{p.device.type}/{str(p.dtype).removeprefix('torch.')}")
        if ids is not None:
            rec["input_ids"].add(ids.device.type)
        if logits is not None:
            rec["logits"].add(f"{logits.device.type}/{str(logits.dtype).removeprefix('torch.')}")
        calls[phase[0]] += 1

    @contextmanager
    def during(name: str):
        phase[0] = name
        yield
        phase[0] = "between"

    handle = torch.nn.modules.module.register_module_forward_hook(watch, with_kwargs=True)
    tiny = TrainConfig(model="scratch", epochs=2, batch_size=16, learning_rate=3e-3, max_length=64,
                       scratch_layers=2, scratch_width=64, scratch_vocab=800, save_checkpoints=False)
    name, settings = "Asthma", GenerationSettings(max_new_tokens=16)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as runs_dir:
        with during("train (full)"):
            full = run_training(DataConfig(source="sample"), tiny, runs_dir)
        with during("train (LoRA)"):
            lora = run_training(DataConfig(source="sample"), tiny.with_(lora_rank=8), runs_dir)
        with during("evaluate_run"):
            report = evaluate_run(full.run_dir, limit=4)
        with during("evaluate_run (LoRA)"):
            evaluate_run(lora.run_dir, limit=4, include_base=False)
        cache = ModelCache()
        with during("app: generate"):
            model, tok = cache.get(full.run_dir / "best")
            text = generate(model, tok, name, settings)[0]
        with during("app: explain"):
            explain_generation(model, tok, name, settings)
        with during("app: generate (LoRA)"):
            model, tok = cache.get(lora.run_dir / "best")
            generate(model, tok, name, settings)
        with during("cli: generate"):
            cli_main(["--runs-dir", runs_dir, "generate", name, "--model", str(full.run_dir), "--max-new-tokens",
                      "8"])
    handle.remove()

    if torch.cuda.is_available():
        print(f"\nGPU: {torch.cuda.get_device_name(0)} · torch {torch.__version__} · CUDA {torch.version.cuda} · "
              f"bf16 supported: {torch.cuda.is_bf16_supported()}")
    print(f"fine-tuned val loss {report['unseen']['fine_tuned']['val_loss']}, generated: {text!r}\n")
    rows, bad = [], []
    for ph, rec in seen.items():
        if ph in ("setup", "between"):
            continue
        row = [ph, calls[ph], ", ".join(sorted(rec["weights"])), ", ".join(sorted(rec["input_ids"])),
               ", ".join(sorted(rec["logits"]))]
        rows.append(row)
        if any(not v.startswith("cuda") for key in ("weights", "input_ids", "logits") for v in rec[key]):
            bad.append(ph)
    print(B.markdown_table(["phase", "forward calls", "weights", "input_ids", "logits"], rows))
    if bad:
        print(f"\nNOT on CUDA: {', '.join(bad)}")
        return 1
    print("\nEvery phase ran on CUDA.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python bench/gpu_check.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="where the epoch arms train (default cuda; without CUDA the script says so and exits 0)")
    p.add_argument("--steps", type=int, default=0,
                   help="optimizer steps per arm on a seeded subset of steps×8 training rows; 0 (default) = one "
                        "full epoch of the training split")
    p.add_argument("--arms", type=lambda v: tuple(x.strip() for x in v.split(",") if x.strip()), default=None,
                   help=f"comma-separated subset of {','.join(ARMS)} (default: all on CUDA, "
                        f"{','.join(CPU_ARMS)} on the CPU)")
    p.add_argument("--data", default=B.default_data(),
                   help="CSV/JSON/Parquet with Name and Symptoms columns, or 'sample' (default: the real dataset "
                        "in ../shared/data when present, else the bundled sample)")
    p.add_argument("--tiny", action="store_true", help="tiny model (2 layers, width 64) instead of distilgpt2's "
                   "shape: for tests")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads in every arm")
    p.add_argument("--matmul-n", type=int, default=2048, help="matrix size of the CPU matmul peak probe")
    p.add_argument("--results", type=Path, default=None,
                   help="also write the table to this Markdown file (section gpu_check), e.g. bench/RESULTS.md")
    p.add_argument("--placement", action="store_true",
                   help="instead of the epoch timing: train, evaluate and generate through the project's paths and "
                        "show where weights, inputs and logits lived (exit 1 when a phase was not on CUDA)")
    p.add_argument("--worker", choices=ARMS, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--subset-seed", type=int, default=0, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.worker:
        print(json.dumps(run_worker(a)))
        return 0
    unknown = [x for x in a.arms or () if x not in ARMS]
    if unknown:
        parser.error(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print(f"No CUDA device on this machine (torch {torch.__version__}, built for CUDA: "
              f"{torch.version.cuda or 'no, a CPU build'}), so there is nothing to check here: run it on a GPU "
              f"machine, or with --device cpu to try the epoch timing on the CPU.")
        return 0
    if a.tiny:
        a.matmul_n = min(a.matmul_n, 256)
    return placement_check() if a.placement else epoch_check(a)


if __name__ == "__main__":
    sys.exit(main())
