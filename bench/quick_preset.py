"""The Quick CPU preset in its own regime: the bundled sample, the preset's scratch model and its time budget.

The recipe study (bench/recipes.py) compares recipes on the real data; the *Quick CPU demo* trains a scratch model
on the bundled sample within a two-minute budget.  This runs the preset's candidates over several seeds, inside the
preset's own budget, and scores greedy phrase F1 on taught and unseen rows (taught: a seeded sample of the run's own
training rows), mean ± sd, beside the constant answer and the name lookup scored on the same rows, so the preset
follows evidence from its own regime.

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

CANDIDATES = {  # each a change to the preset as it is shipped (issue 21: hold the taught target in its budget)
    "as shipped": {},
    "keep score": dict(keep="score"),
    "keep score, 30 epochs": dict(keep="score", epochs=30),
    "keep score, 60 epochs": dict(keep="score", epochs=60),
}
BASELINES = ("constant", "lookup")


def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--limit", type=int, default=20, help="rows scored per set (taught, unseen)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RECIPES.md")
    a = p.parse_args()
    preset = TRAIN_PRESETS["quick-cpu"]  # its time budget included: each candidate must fit it
    rows, results = [], {}
    for name, change in CANDIDATES.items():
        for seed in a.seeds:
            with tempfile.TemporaryDirectory() as runs:
                t0 = time.perf_counter()
                summary = run_training(DataConfig(source="sample", seed=seed), preset.with_(seed=seed, **change),
                                       runs)
                seconds = time.perf_counter() - t0
                report = evaluate_run(summary.run_dir, include_base=False, limit=a.limit)
            taught, unseen = report[TAUGHT]["fine_tuned"]["f1"], report[UNSEEN]["fine_tuned"]["f1"]
            results.setdefault(name, []).append((taught, unseen))
            for baseline in BASELINES:  # the same rows for every candidate of a seed: one entry per seed
                if len(results.get(baseline, ())) < len(a.seeds):
                    results.setdefault(baseline, []).append((report[TAUGHT][baseline]["f1"],
                                                             report[UNSEEN][baseline]["f1"]))
            rows.append([name, seed, summary.epochs_done, summary.kept_epoch, f"{taught:.3f}", f"{unseen:.3f}",
                         f"{seconds:.0f}"])
            print(rows[-1], file=sys.stderr, flush=True)
    table = B.markdown_table(["candidate", "taught greedy F1", "unseen greedy F1", "taught+unseen"],
                             [[f"*{n} baseline*" if n in BASELINES else n, _ms([t for t, _ in r]),
                               _ms([u for _, u in r]), _ms([t + u for t, u in r])]
                              for n, r in sorted(results.items(), key=lambda kv: kv[0] not in BASELINES)])
    runs_table = B.markdown_table(["candidate", "seed", "epochs done", "kept epoch", "taught F1", "unseen F1",
                                   "train+eval s"], rows)
    body = (f"## quick_preset\n\nThe *Quick CPU demo* preset in its own regime: `{B.command_line()}` · "
            f"{B.machine_line(2)}\n\nBundled sample (split by name), the preset's scratch model and its "
            f"{preset.max_minutes:g}-minute time budget; greedy phrase F1 on {a.limit} taught and {a.limit} unseen "
            f"rows; mean ± sd over seeds {', '.join(map(str, a.seeds))}. The baselines (a constant answer and a "
            f"name lookup, built from each run's training rows) are scored on the same rows.\n\n{table}\n\n"
            f"Per run:\n\n{runs_table}\n")
    print(body)
    B.write_section(a.out, "quick_preset", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
