"""Compare loss on the target only vs on the whole text (the seed's choice).

Trains the same model twice on the same split (only ``loss_on`` differs), then
scores each run's best checkpoint on its validation rows by symptom overlap
(greedy and with the seed notebook's sampling settings).  Writes a Markdown
table to bench/LOSS_MODE.md.

    python bench/loss_mode.py --data ../shared/data/Diseases_Symptoms.csv --epochs 12
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from symptomgen import quiet_libraries  # noqa: E402
from symptomgen.config import DataConfig, GenerationSettings, TrainConfig  # noqa: E402
from symptomgen.evaluation import evaluate_run  # noqa: E402
from symptomgen.trainer import run_training  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "Diseases_Symptoms.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REAL) if REAL.is_file() else "sample")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("LOSS_MODE.md"))
    a = ap.parse_args()
    quiet_libraries()
    rows = []
    for seed in a.seeds:
        for mode in ("target", "full"):
            cfg = TrainConfig(model="scratch", epochs=a.epochs, batch_size=a.batch_size, learning_rate=a.lr,
                              scheduler="linear", warmup_ratio=0.05, loss_on=mode, seed=seed,
                              scratch_layers=a.layers, scratch_width=a.width, save_checkpoints=False)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                summary = run_training(DataConfig(source=a.data, seed=seed), cfg, tmp)
                res = evaluate_run(summary.run_dir, sampling=GenerationSettings(seed=seed), include_base=False)
                r = res["fine_tuned"]
                rows.append((seed, mode, summary.best_epoch, r["val_loss"], r["f1"], r["precision"], r["recall"],
                             r["sampled_f1"], time.perf_counter() - t0))
                print(rows[-1], flush=True)
    lines = [f"# Loss mode: target-only vs whole text\n",
             f"Command: `python {' '.join(sys.argv)}`  ",
             f"Date: {datetime.now():%Y-%m-%d %H:%M}; machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs; model: scratch GPT-2 {a.layers}x{a.width}; data: {Path(a.data).name}; "
             f"{a.epochs} epochs, batch {a.batch_size}, lr {a.lr} (linear, 5% warmup).\n",
             "Validation loss is over each mode's own labelled tokens, so compare modes by overlap F1, not loss.\n",
             "| seed | loss on | best epoch | val loss | greedy F1 | greedy P | greedy R | sampled F1 | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s} | {m} | {e} | {v:.3f} | {f:.3f} | {p:.3f} | {r:.3f} | {sf:.3f} | {t:.0f} |"
              for s, m, e, v, f, p, r, sf, t in rows]
    a.out.write_text("\n".join(lines) + "\n")
    print(a.out.read_text())


if __name__ == "__main__":
    main()
