"""The Quick CPU preset in its own regime: the bundled sample, the preset as shipped, ~50 optimizer steps.

The recipe study (bench/recipes.py) compares recipes at 820 steps on the real data; the *Quick CPU demo* trains a
scratch model for 10 epochs on the bundled sample in under two minutes.  This runs the preset's candidates over
several seeds and scores greedy phrase F1 on taught and unseen rows (taught: a seeded sample of the run's own
training rows), mean ± sd, so the preset's learning rate and loss mode follow evidence from its own regime.

    python bench/quick_preset.py --seeds 1 2 3 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchlib as B

from symptomgen.config import TRAIN_PRESETS, DataConfig
from symptomgen.evaluation import TAUGHT, UNSEEN, evaluate_run
from symptomgen.trainer import run_training

CANDIDATES = {
    "lr 1e-3, loss on target": dict(learning_rate=1e-3, loss_on="target"),
    "lr 1e-3, loss on full": dict(learning_rate=1e-3, loss_on="full"),
    "lr 5e-4, loss on full": dict(learning_rate=5e-4, loss_on="full"),
}


def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--limit", type=int, default=20, help="rows scored per set (taught, unseen)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RECIPES.md")
    a = p.parse_args()
    base = TRAIN_PRESETS["quick-cpu"].with_(max_minutes=0.0)  # the same epochs for every candidate
    rows, results = [], {}
    for name, change in CANDIDATES.items():
        for seed in a.seeds:
            with tempfile.TemporaryDirectory() as runs:
                t0 = time.perf_counter()
                summary = run_training(DataConfig(source="sample", seed=seed), base.with_(seed=seed, **change),
                                       runs)
                seconds = time.perf_counter() - t0
                report = evaluate_run(summary.run_dir, include_base=False, limit=a.limit)
            taught, unseen = report[TAUGHT]["fine_tuned"]["f1"], report[UNSEEN]["fine_tuned"]["f1"]
            results.setdefault(name, []).append((taught, unseen))
            rows.append([name, seed, summary.best_epoch, f"{taught:.3f}", f"{unseen:.3f}", f"{seconds:.0f}"])
            print(rows[-1], file=sys.stderr, flush=True)
    table = B.markdown_table(["candidate", "taught greedy F1", "unseen greedy F1", "taught+unseen"],
                             [[n, _ms([t for t, _ in r]), _ms([u for _, u in r]), _ms([t + u for t, u in r])]
                              for n, r in results.items()])
    runs_table = B.markdown_table(["candidate", "seed", "best epoch", "taught F1", "unseen F1", "train+eval s"], rows)
    body = (f"## quick_preset\n\nThe *Quick CPU demo* preset in its own regime: `{B.command_line()}` · "
            f"{B.machine_line(2)}\n\nBundled sample (split by name), the preset's scratch model and 10 epochs "
            f"(no time budget, so every candidate trains the same steps); greedy phrase F1 on {a.limit} taught and "
            f"{a.limit} unseen rows; mean ± sd over seeds {', '.join(map(str, a.seeds))}.\n\n{table}\n\n"
            f"Per run:\n\n{runs_table}\n")
    print(body)
    B.write_section(a.out, "quick_preset", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
