"""Issue 21 experiment: does a consensus of sampled answers beat the constant answer on unseen names?

Greedy decoding of a model that learned the table answers an unseen name with some taught disease's list (unseen
F1 below the constant answer of the most frequent phrases).  Consensus decoding draws ``n`` sampled answers per
name and keeps the phrases most of them share (the ``m`` most frequent, ``m`` the samples' median phrase count): on
a taught name the samples agree and the consensus is the taught list; on an unseen one they disagree, and what they
share leans towards the table's frequent phrases, plus whatever the name itself suggests.

For each seed a run trains with the default settings (scratch model, as offline), then greedy, consensus and the
two baselines are scored on the same taught and unseen rows.

    python bench/consensus.py --seeds 3 7 42 --limit 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import benchlib as B

from symptomgen.config import DataConfig, GenerationSettings, TrainConfig

SAMPLING = GenerationSettings(top_k=50, top_p=0.95, temperature=1.0, repetition_penalty=1.2)


def consensus(texts: list[str]) -> str:
    """The phrases most of ``texts`` share: the m most frequent (ties by first appearance), m their median count."""
    from symptomgen.phrases import phrases

    sets = [sorted(phrases(t)) for t in texts]
    counts = Counter(p for s in sets for p in s)
    m = max(1, int(statistics.median(len(s) for s in sets))) if sets else 1
    return ", ".join(p for p, _ in counts.most_common(m))


def one_seed(data: str, seed: int, a) -> dict:
    from symptomgen.baselines import baseline_scores
    from symptomgen.epochscore import generate_batch
    from symptomgen.evaluation import TAUGHT, UNSEEN
    from symptomgen.generation import generate
    from symptomgen.modeling import load_pretrained
    from symptomgen.runs import Run
    from symptomgen.scoring import score_text
    from symptomgen.splits import spread_sample
    from symptomgen.trainer import run_training

    cfg = TrainConfig(model="scratch", seed=seed, save_checkpoints=False, **({"epochs": a.epochs} if a.epochs else {}))
    with tempfile.TemporaryDirectory() as runs:
        t0 = time.perf_counter()
        summary = run_training(DataConfig(source=data, seed=seed), cfg, runs)
        train_s = time.perf_counter() - t0
        run = Run(summary.run_dir)
        train, val = run.split_frames()
        unseen = spread_sample(val, a.limit)
        sets = {TAUGHT: spread_sample(train, len(unseen)), UNSEEN: unseen}
        _, base = baseline_scores(train, sets, "list")
        model, tok = load_pretrained(run.best_dir)
        out = {"seed": seed, "train_s": train_s, "kept_epoch": summary.kept_epoch}
        for name, frame in sets.items():
            refs = list(frame["target"])
            greedy = []
            for i in range(0, len(frame), 16):
                greedy += generate_batch(model, tok, list(frame["prompt"].iloc[i:i + 16]))
            out[f"{name} greedy"] = statistics.fmean(score_text(t, r, "list")["f1"] for t, r in zip(greedy, refs))
            for n in a.samples:
                agreed = [consensus(generate(model, tok, p, SAMPLING.with_(num_return_sequences=n, seed=seed)))
                          for p in frame["prompt"]]
                out[f"{name} consensus {n}"] = statistics.fmean(score_text(t, r, "list")["f1"]
                                                                for t, r in zip(agreed, refs))
            for b in ("constant", "lookup"):
                out[f"{name} {b}"] = base[name][b]["f1"]
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=B.default_data())
    p.add_argument("--seeds", type=int, nargs="+", default=[3, 7, 42])
    p.add_argument("--limit", type=int, default=40, help="rows scored per set (taught, unseen)")
    p.add_argument("--samples", type=int, nargs="+", default=[8, 16], help="sampled answers per consensus")
    p.add_argument("--epochs", type=int, default=0, help="0: the default's")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    results = [one_seed(a.data, s, a) for s in a.seeds]
    keys = [k for k in results[0] if " " in k]
    rows = [[k, f"{statistics.mean(r[k] for r in results):.3f} ± "
                f"{statistics.stdev(r[k] for r in results) if len(results) > 1 else 0:.3f}"] for k in keys]
    print(B.markdown_table(["set and answer", "phrase F1 (mean ± sd over seeds)"], rows))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
