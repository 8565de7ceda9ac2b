"""Baselines on the real table: what a constant answer and a name lookup score, over several split seeds.

The same split as a run of the app with that seed (``data.prepare``: the real table splits by name), the same
rows as ``evaluate`` scores (the validation rows, ``unseen``, and as many training rows spread across names,
``taught``; ``--limit`` as the CLI's) and the same scorer (``symptomgen.baselines``).  No model: seconds.

    python bench/baselines.py --seeds 3 7 11 42

Writes its table to bench/BASELINES.md with the command and the machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import benchlib as B

from symptomgen.baselines import BASELINES, MAIN_METRIC, baseline_scores
from symptomgen.config import DataConfig
from symptomgen.data import prepare
from symptomgen.splits import spread_sample

OUT = Path(__file__).resolve().parent / "BASELINES.md"


def one_split(data: str, seed: int, limit: int | None) -> dict:
    prepared = prepare(DataConfig(source=data, seed=seed))
    unseen = prepared.val if limit is None else spread_sample(prepared.val, limit)
    sets = {"taught": spread_sample(prepared.train, len(unseen)), "unseen": unseen}
    started = time.perf_counter()
    answer, scores = baseline_scores(prepared.train, sets, prepared.target_kind)
    key = MAIN_METRIC[prepared.target_kind]
    row = {f"{s} {b}": scores[s][b][key] for s in sets for b in BASELINES}
    return {**row, "answer": answer, "rows": len(unseen), "kind": prepared.target_kind,
            "seconds": time.perf_counter() - started}


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(B.REAL_DATA), help="the table (default: %(default)s)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 7, 11, 42], help="split seeds")
    ap.add_argument("--limit", type=int, help="score only N unseen rows and N taught rows, as evaluate --limit")
    ap.add_argument("--out", type=Path, default=OUT, help="results file (default: %(default)s)")
    a = ap.parse_args()
    if a.data != "sample" and not Path(a.data).is_file():
        sys.exit(f"The real data is not at {a.data}: pass --data PATH (or --data sample for a probe).")
    runs = {seed: one_split(a.data, seed, a.limit) for seed in a.seeds}
    first = next(iter(runs.values()))
    metric = "F1" if first["kind"] == "list" else "ROUGE-L"
    cols = [f"{s} {b}" for s in ("taught", "unseen") for b in BASELINES]
    lines = ["# Baselines: a constant answer and a name lookup", "",
             f"`{B.command_line()}`  ", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · {platform.machine()} · "
             f"Python {platform.python_version()}  ",
             f"Data: `{Path(a.data).name}` ({first['kind']} targets, greedy {metric} as `evaluate` scores them); "
             f"{first['rows']} unseen rows per split and as many taught rows.", "",
             "| seed | " + " | ".join(cols) + " | constant answer | seconds |", "|" + "---|" * (len(cols) + 3)]
    for seed, r in runs.items():
        lines.append(f"| {seed} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + f" | {r['answer'][:80]} | "
                     f"{r['seconds']:.2f} |")
    lines.append("| mean ± sd | " + " | ".join(mean_sd([r[c] for r in runs.values()]) for c in cols) + " | | |")
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
