"""Scaling benchmark: does the cost per token stay flat as the table grows?

For each size (default 300, 1k, 10k and 100k rows) a CSV is generated from the real
data's rows, drawn with replacement so the row-length distribution is the real one
(names get a numeric suffix so that they stay distinct).  A fresh process then
measures, through the project's own code:

* load + split seconds (``symptomgen.data.prepare``);
* seconds from ``run_training`` to its first optimizer step (encoding, model load, Trainer);
* real tokens/s over a fixed number of optimizer steps (``--steps``, default 20) of the
  real trainer (packed batches of 8 rows, distilgpt2-shaped random init);
* the process's peak RSS.

Prints a Markdown table and writes it to ``bench/RESULTS.md`` (section ``scale_bench``).
Not measured here: the server's RSS while a page follows a long job.

    python bench/scale_bench.py                        # ~6 min on 2 cores
    python bench/scale_bench.py --tiny --sizes 300,1000 --results /tmp/r.md    # for tests
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import benchlib as B

SCRIPT = Path(__file__).resolve()


def make_table(source: str, rows: int, path: Path, seed: int = 0) -> Path:
    """``rows`` rows drawn with replacement from ``source`` (same length distribution), distinct names."""
    import numpy as np

    from symptomgen.data import load_records

    real = load_records(source)
    pick = np.random.default_rng(seed).integers(0, len(real), rows)
    frame = real.iloc[pick].reset_index(drop=True)
    frame["Name"] = [f"{n} {i}" for i, n in enumerate(frame["Name"])]
    frame[["Name", "Symptoms"]].to_csv(path, index=False)
    return path


def worker(a) -> dict:
    import symptomgen.trainer as T
    from symptomgen import quiet_libraries
    from symptomgen.batching import PackCollator
    from symptomgen.config import DataConfig, TrainConfig
    from symptomgen.data import prepare

    quiet_libraries()
    B.set_threads(a.threads)
    t = time.perf_counter()
    prepared = prepare(DataConfig(source=a.csv))
    load_split = time.perf_counter() - t
    counts = {"real": 0}

    class Counting(PackCollator):
        def __call__(self, rows):
            batch = super().__call__(rows)
            counts["real"] += batch["input_ids"].numel()
            return batch

    steps: list[tuple[float, int]] = []  # (perf_counter, real tokens so far) after each optimizer step
    started = time.perf_counter()
    hooks = T.TrainingHooks(make_collator=Counting, args_overrides={"max_steps": a.steps})
    cfg = TrainConfig(model=a.model_dir, epochs=1, batch_size=8, save_checkpoints=False)
    with tempfile.TemporaryDirectory(prefix="scale-runs-") as runs_dir:
        T.run_training(DataConfig(source=a.csv), cfg, runs_dir, prepared=prepared, hooks=hooks,
                       on_event=lambda e: steps.append((time.perf_counter(), counts["real"]))
                       if isinstance(e, T.Progress) else None)
    # Tokens/s from the end of step 1 (warm-up excluded) to the last step.
    (t1, r1), (tn, rn) = steps[0], steps[-1]
    return {"rows": len(prepared.train) + len(prepared.val), "train_rows": len(prepared.train),
            "load_split_s": load_split, "to_first_step_s": t1 - started, "steps": len(steps),
            "tokens_per_s": (rn - r1) / (tn - t1), "peak_rss_mb": B.peak_rss_mb()}


def orchestrate(a) -> str:
    from symptomgen.config import DataConfig
    from symptomgen.data import format_example, prepare

    sizes = [int(x) for x in a.sizes.split(",")]
    out = []
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        tmp = Path(tmp)
        real = prepare(DataConfig(source=a.data)).train
        model_dir = B.build_model_folder(tmp / "model", [format_example(p, t) for p, t in
                                                        zip(real["prompt"], real["target"])],
                                         "tiny" if a.tiny else "distilgpt2")
        for n in sizes:
            csv = make_table(a.data, n, tmp / f"rows{n}.csv")
            r = B.run_worker(SCRIPT, ["--worker", "--csv", str(csv), "--model-dir", str(model_dir),
                                      "--steps", str(a.steps), "--threads", str(a.threads)])
            r["size"] = n
            out.append(r)
            print(f"{n} rows: {json.dumps(r)}", file=sys.stderr, flush=True)
    ref = out[0]["tokens_per_s"]
    rows = [[f"{r['size']:,}", r["train_rows"], f"{r['load_split_s']:.2f}", f"{r['to_first_step_s']:.1f}",
             f"{r['tokens_per_s']:.1f}", f"{r['tokens_per_s'] / ref:.2f}", f"{r['peak_rss_mb']:.0f}"] for r in out]
    return "\n".join([
        f"## Scaling ({'tiny' if a.tiny else 'distilgpt2'} model)", "",
        f"Command: `{B.command_line()}`  ", f"Machine: {B.machine_line(a.threads)}  ",
        f"Rows drawn with replacement from `{Path(a.data).name}` (real row lengths, distinct names); "
        f"{a.steps} optimizer steps of 8 packed rows per size, each size a fresh process.", "",
        B.markdown_table(["table rows", "train rows", "load + split s", "s to first step", "real tokens/s",
                          f"tokens/s vs {out[0]['size']:,} rows", "peak RSS MB"], rows), "",
        "The server's RSS while a page follows a long job: `bench/follow_rss.py` (section `follow_rss`).", ""])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=B.default_data(), help="the table whose rows are drawn (default: real data)")
    p.add_argument("--sizes", default="300,1000,10000,100000", help="comma-separated table sizes")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="tiny model instead of the distilgpt2 shape (for tests)")
    p.add_argument("--results", type=Path, default=B.RESULTS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a)))
        return 0
    body = orchestrate(a)
    print(body)
    B.write_section(a.results, "scale_bench", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
