"""GPU check: train, evaluate, explain and generate through the project's own paths, and show where tensors lived.

A global forward hook watches every call of a GPT-2 language model and records, per phase, the device and dtype
of its weights, of its ``input_ids`` and of its logits.  Phases: a full fine-tune and a LoRA fine-tune (two
epochs each, tiny scratch model on the bundled sample, ``run_training``), ``evaluate_run`` (fine-tuned and base),
the web app's model cache with ``generate`` and ``explain_generation``, and the CLI's ``generate``.  Every phase
must have run on CUDA; the script prints a table and exits 1 when one did not.

Without a CUDA device it says so and exits 0 (nothing to check).

    python bench/gpu_check.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from contextlib import contextmanager

import benchlib as B


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run the phases without CUDA anyway, to try the script "
                        "(every phase is then reported as not on CUDA, exit 1)")
    a = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not a.cpu:
        print(f"No CUDA device on this machine (torch {torch.__version__}, built for CUDA: "
              f"{torch.version.cuda or 'no, a CPU build'}): nothing to check. Run this script on a GPU machine.")
        return 0

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


if __name__ == "__main__":
    sys.exit(main())
