"""Recipe study: which training recipe and sampling preset to make the default, over several seeds.

Trains small random-init ("scratch") GPT-2 models on the real disease table with several recipes, each recipe
with the same seeds and the same number of optimizer steps (same epochs, same batch, no time budget, no early
stop: equal compute), and scores every run's kept model with the product's own evaluation
(``symptomgen.evaluation.evaluate_run``): phrase F1 on a seeded sample of its training rows ("taught") and on
its validation rows ("unseen"), greedy and with the seed notebook's sampling.  Sampling presets only change
decoding, so they are scored on the baseline recipe's runs, not retrained.  Reports mean ± sd over the seeds
and writes a Markdown table to bench/RECIPES.md.

The baseline is the seed notebook's recipe (loss on the whole text, learning rate 5e-4, constant schedule,
batch 8, max length 128) on a 4-layer, width-256 scratch model; each other recipe changes one thing.  The Hub is
unreachable here, so the notebook's distilgpt2 cannot be fine-tuned: every model is scratch (random init, its
own byte-level BPE), which is also what the app's Quick CPU preset trains.

    flock /tmp/symptomgen-cpu.lock python bench/recipes.py --seeds 3 7 11 42 --epochs 20 --limit 80

A difference is called only when the two means differ by more than the sum of their standard deviations.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchlib as B

from symptomgen import quiet_libraries
from symptomgen.config import GENERATION_PRESETS, DataConfig, GenerationSettings, TrainConfig

BASELINE = "notebook"
# One change each from the baseline (the seed notebook's recipe on a scratch model).
RECIPES: dict[str, dict] = {
    BASELINE: dict(loss_on="full", learning_rate=5e-4, scratch_layers=4, scratch_width=256),
    "loss on target": dict(loss_on="target", learning_rate=5e-4, scratch_layers=4, scratch_width=256),
    "lr 1e-3": dict(loss_on="full", learning_rate=1e-3, scratch_layers=4, scratch_width=256),
    "lr 2e-3": dict(loss_on="full", learning_rate=2e-3, scratch_layers=4, scratch_width=256),
    "scratch 2x128": dict(loss_on="full", learning_rate=5e-4, scratch_layers=2, scratch_width=128),
    # Issue 21 item 4 (``--keeps``): each changes one thing from the notebook recipe.
    "shuffle phrases": dict(loss_on="full", learning_rate=5e-4, scratch_layers=4, scratch_width=256,
                            shuffle_phrases=True),
    "cosine, warmup 0.05": dict(loss_on="full", learning_rate=5e-4, scratch_layers=4, scratch_width=256,
                                scheduler="cosine", warmup_ratio=0.05),
    "label smoothing 0.1": dict(loss_on="full", learning_rate=5e-4, scratch_layers=4, scratch_width=256,
                                label_smoothing=0.1),
}
KEEPS = ("best", "score", "last")
"""``--keeps``: the models one run offers, each scored: lowest validation loss, best per-epoch sample score, last."""
# Decoding presets scored on the baseline's runs: greedy and the notebook's sampling come with every run's
# evaluation; these are the extra ones (the no_repeat_ngram_size one is the app's "no-repeat" preset).
NO_REPEAT = GenerationSettings(no_repeat_ngram_size=3)
EXTRA_PRESETS = {"no-repeat (notebook sampling, no_repeat_ngram_size 3)": NO_REPEAT,
                 "greedy, no_repeat_ngram_size 3": GENERATION_PRESETS["greedy"].with_(no_repeat_ngram_size=3)}


def one_run(data: str, recipe: dict, seed: int, a: argparse.Namespace, runs_dir: Path, extra: bool) -> dict:
    from symptomgen.evaluation import TAUGHT, UNSEEN, evaluate_run, overlap_table
    from symptomgen.modeling import load_pretrained
    from symptomgen.runs import Run
    from symptomgen.splits import spread_sample
    from symptomgen.trainer import run_training

    recipe = {"scheduler": "constant", **recipe}
    cfg = TrainConfig(model="scratch", epochs=a.epochs, batch_size=a.batch_size, max_length=128,
                      seed=seed, save_checkpoints=False, **recipe)
    if a.keeps:
        return keeps_run(data, cfg, seed, a, runs_dir)
    t0 = time.perf_counter()
    summary = run_training(DataConfig(source=data, seed=seed), cfg, runs_dir)
    train_s = time.perf_counter() - t0
    run = Run(summary.run_dir)
    if summary.status != "finished" or summary.epochs_done != a.epochs:
        raise SystemExit(f"A run ended {summary.status} after {summary.epochs_done} epochs: not equal compute.")
    metrics = run.metrics()
    t1 = time.perf_counter()
    res = evaluate_run(run.path, sampling=GENERATION_PRESETS["seed-notebook"].with_(seed=seed),
                       include_base=False, limit=a.limit)
    out = {"seed": seed, "train_s": train_s, "steps": a.epochs * math.ceil(run.record().train_rows / a.batch_size),
           "best_epoch": summary.best_epoch, "best_val_loss": float(metrics["validation_loss"].min()),
           "rows": {s: res[s]["rows"] for s in (TAUGHT, UNSEEN)}}
    for s in (TAUGHT, UNSEEN):
        out[f"{s} greedy"] = res[s]["fine_tuned"]["f1"]
        out[f"{s} sampled"] = res[s]["fine_tuned"]["sampled_f1"]
    if extra:
        train, val = run.split_frames()
        sets = {TAUGHT: spread_sample(train, len(spread_sample(val, a.limit))), UNSEEN: spread_sample(val, a.limit)}
        model, tok = load_pretrained(run.best_dir)
        for name, settings in EXTRA_PRESETS.items():
            for s, frame in sets.items():
                table = overlap_table(model, tok, frame, settings.with_(seed=seed), kind=res["target_kind"])
                out[f"{s} {name}"] = float(table["f1"].mean())
    out["eval_s"] = time.perf_counter() - t1
    return out


def keeps_run(data: str, cfg: TrainConfig, seed: int, a: argparse.Namespace, runs_dir: Path) -> dict:
    """One run, three kept models (issue 21): the run keeps by score; a callback also saves the lowest-validation-
    loss epoch's model and the last one.  Each is scored greedily on the rows ``evaluate --limit`` scores."""
    from transformers import TrainerCallback

    from symptomgen.epochscore import generate_batch
    from symptomgen.evaluation import TAUGHT, UNSEEN
    from symptomgen.events import EpochResult
    from symptomgen.modeling import load_pretrained
    from symptomgen.runs import Run
    from symptomgen.scoring import score_text
    from symptomgen.splits import spread_sample
    from symptomgen.trainer import TrainingHooks, run_training

    epochs: list[EpochResult] = []
    folders: dict[str, Path] = {}

    class SaveOthers(TrainerCallback):  # called after the EpochReporter, which has just reported the epoch
        def on_log(self, args, state, control, model=None, processing_class=None, **kw):
            tok_box[:] = [processing_class]
            if epochs and epochs[-1].epoch == int(round(state.epoch or 0)) and not getattr(self, "_seen", 0) == \
                    epochs[-1].epoch:
                self._seen = epochs[-1].epoch
                run = Run(folders["run"])
                if epochs[-1].is_best:
                    run.save_model(model, tok_box[0], "valbest")
                if epochs[-1].epoch == cfg.epochs:
                    run.save_model(model, tok_box[0], "last")

    tok_box: list = []

    def on_event(ev):
        if isinstance(ev, EpochResult):
            epochs.append(ev)
        elif type(ev).__name__ == "RunStarted":
            folders["run"] = ev.run_dir

    t0 = time.perf_counter()
    summary = run_training(DataConfig(source=data, seed=seed), cfg.with_(keep="score"), runs_dir, on_event,
                           hooks=TrainingHooks(callbacks=(SaveOthers(),)))
    train_s = time.perf_counter() - t0
    if summary.status != "finished" or summary.epochs_done != a.epochs:
        raise SystemExit(f"A run ended {summary.status} after {summary.epochs_done} epochs: not equal compute.")
    run = Run(summary.run_dir)
    train, val = run.split_frames()
    unseen = spread_sample(val, a.limit)
    sets = {TAUGHT: spread_sample(train, len(unseen)), UNSEEN: unseen}
    kind = run.record().target_kind or "list"
    out = {"seed": seed, "train_s": train_s, "rows": {k: len(v) for k, v in sets.items()},
           "best_epoch": summary.best_epoch, "best_val_loss": float(run.metrics()["validation_loss"].min()),
           "score_epoch": summary.kept_epoch, "last_epoch": summary.epochs_done,
           "per_epoch": [[e.epoch, e.taught_score, e.unseen_score] for e in epochs]}
    t1 = time.perf_counter()
    for keep, folder in (("best", run.path / "valbest"), ("score", run.best_dir), ("last", run.path / "last")):
        model, tok = load_pretrained(folder)
        for name, frame in sets.items():
            texts = []
            for i in range(0, len(frame), 16):
                texts += generate_batch(model, tok, list(frame["prompt"].iloc[i:i + 16]))
            f1 = [score_text(t, r, kind)["f1" if kind == "list" else "rougeL"] for t, r in zip(texts, frame["target"])]
            out[f"{keep} {name}"] = statistics.fmean(f1)
    out["eval_s"] = time.perf_counter() - t1
    return out


def keeps_report(a, results: dict[str, list[dict]], load_before, load_after, total_min: float) -> str:
    """The ``--keeps`` study's Markdown section (recipes × kept model, with the baselines of the same splits)."""
    from symptomgen.baselines import BASELINES, baseline_scores
    from symptomgen.data import prepare
    from symptomgen.splits import spread_sample

    base: dict[str, list[float]] = {}
    seeds = sorted({r["seed"] for runs in results.values() for r in runs})  # this study's and the merged ones'
    for seed in seeds:
        prepared = prepare(DataConfig(source=a.data, seed=seed))
        unseen = spread_sample(prepared.val, a.limit)
        sets = {"taught": spread_sample(prepared.train, len(unseen)), "unseen": unseen}
        _, scores = baseline_scores(prepared.train, sets, prepared.target_kind)
        for s in sets:
            for b in BASELINES:
                base.setdefault(f"{b} {s}", []).append(scores[s][b]["f1"])
    first = next(iter(results.values()))[0]
    lines = ["<!-- keeps:start -->", "## Issue 21: which epoch to keep, and which recipe (`--keeps`)", "",
             f"Command: `{B.command_line()}`  ",
             f"Date: {B.machine_line(__import__('torch').get_num_threads())}  ",
             f"Load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}; after: "
             f"{' / '.join(f'{x:.2f}' for x in load_after)}; whole study {total_min:.1f} min.  ",
             f"Data: `{Path(a.data).name}` split by name; seeds {', '.join(map(str, seeds))} (split, init); "
             f"{a.epochs} epochs of batch {a.batch_size} for every recipe (equal compute). Each run keeps three "
             "models: the epoch with the lowest validation loss (`best`, today's default), the epoch with the "
             "highest per-epoch sample score (`score`: 16 taught + 16 unseen rows, greedy, their mean F1) and the "
             f"last epoch. Each is scored by greedy phrase F1 on {first['rows']['taught']} taught rows and "
             f"{first['rows']['unseen']} unseen rows (the rows `evaluate --limit {a.limit}` scores). "
             "Cells: mean ± sd over the seeds.", "",
             "| recipe | kept | taught F1 | unseen F1 | kept epoch |", "|---|---|---|---|---|"]
    for b in BASELINES:
        lines.append(f"| *{b} baseline* | – | {fmt(base[f'{b} taught'])} | {fmt(base[f'{b} unseen'])} | – |")
    for name, runs in results.items():
        for keep in KEEPS:
            ep = {"best": "best_epoch", "score": "score_epoch", "last": "last_epoch"}[keep]
            lines.append(f"| {name} | {keep} | {fmt([r[f'{keep} taught'] for r in runs])} | "
                         f"{fmt([r[f'{keep} unseen'] for r in runs])} | "
                         f"{', '.join(str(r[ep]) for r in runs)} |")
    lines += verdicts(results, base)
    lines += ["", "Per-epoch sample scores (taught / unseen, mean over the seeds):", "",
              "| recipe | " + " | ".join(f"ep {e}" for e in range(1, a.epochs + 1)) + " |",
              "|---|" + "---|" * a.epochs]
    for name, runs in results.items():
        cells = []
        for e in range(a.epochs):
            t = [r["per_epoch"][e][1] for r in runs if r["per_epoch"][e][1] is not None]
            u = [r["per_epoch"][e][2] for r in runs if r["per_epoch"][e][2] is not None]
            cells.append(f"{statistics.fmean(t):.2f} / {statistics.fmean(u):.2f}" if t and u else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "<!-- keeps:end -->"]
    return "\n".join(lines) + "\n"


def verdicts(results: dict[str, list[dict]], base: dict[str, list[float]]) -> list[str]:
    """Each recipe's kept models against the issue's target (taught F1 ≥ 0.60; unseen above the constant answer
    by more than the spread) and against the baseline recipe's same keep (a difference is called only when the
    means differ by more than the two standard deviations added)."""
    lines = ["", "Against the target and the `notebook` recipe (same keep):", "",
             "| recipe | kept | taught ≥ 0.60 | unseen vs constant | Δ taught vs notebook | Δ unseen vs notebook |",
             "|---|---|---|---|---|---|"]
    constant = base["constant unseen"]
    for name, runs in results.items():
        for keep in KEEPS:
            taught, unseen = [r[f"{keep} taught"] for r in runs], [r[f"{keep} unseen"] for r in runs]
            mu, mc = statistics.fmean(unseen), statistics.fmean(constant)
            vs_constant = ("above, beyond the spread" if mu > mc and exceeds(unseen, constant) else
                           "below, beyond the spread" if exceeds(unseen, constant) else "within the spread")
            cells = []
            for kind, mine in (("taught", taught), ("unseen", unseen)):
                if name == BASELINE or BASELINE not in results:
                    cells.append("–")
                    continue
                theirs = [r[f"{keep} {kind}"] for r in results[BASELINE]]
                d = statistics.fmean(mine) - statistics.fmean(theirs)
                cells.append(f"{d:+.3f}" + (" **(exceeds spread)**" if exceeds(mine, theirs) else " (within spread)"))
            lines.append(f"| {name} | {keep} | {'yes' if statistics.fmean(taught) >= 0.60 else 'no'} "
                         f"({statistics.fmean(taught):.3f}) | {vs_constant} | {cells[0]} | {cells[1]} |")
    return lines


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float], digits: int = 3) -> str:
    m, s = mean_sd(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def exceeds(a: list[float], b: list[float]) -> bool:
    """The rule used to call a difference: the means differ by more than the two standard deviations added."""
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    return abs(ma - mb) > sa + sb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--data", default=str(B.REAL_DATA), help="the real table (default: %(default)s); 'sample' "
                    "only for a quick probe of the script")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 7, 11, 42], help="seeds of split, init and sampling")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of every run (same steps for every recipe)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", type=int, default=80, help="rows scored per set (taught and unseen)")
    ap.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("RECIPES.md"))
    ap.add_argument("--json", type=Path, help="also write the raw per-run numbers here")
    ap.add_argument("--merge", type=Path, nargs="+", default=[], help="--keeps: also report the runs in these "
                    "--json files of earlier studies (same seeds, epochs and --limit), before this study's own")
    ap.add_argument("--keeps", action="store_true", help="issue 21's study: score the three models each run can "
                    "keep (lowest validation loss, best per-epoch score, last) and replace the keeps section of "
                    "--out with it")
    a = ap.parse_args()
    if a.data != "sample" and not Path(a.data).is_file():
        sys.exit(f"The real data is not at {a.data}: this study needs the disease table (pass --data PATH, or "
                 "--data sample for a quick probe of the script only).")
    if len(a.seeds) < 3:
        print("warning: fewer than 3 seeds give no usable spread", file=sys.stderr)
    quiet_libraries()
    started, load_before = time.time(), os.getloadavg()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.recipes:
            for seed in a.seeds:
                runs_dir = Path(tmp) / f"{len(results)}-{seed}"
                r = one_run(a.data, RECIPES[name], seed, a, runs_dir, extra=(name == BASELINE and not a.keeps))
                results.setdefault(name, []).append(r)
                print(json.dumps({"recipe": name, **r}), flush=True)
    load_after = os.getloadavg()
    total_min = (time.time() - started) / 60
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    if a.keeps:
        merged: dict[str, list[dict]] = {}
        for path in a.merge:  # earlier runs first; a recipe's seeds add up (a seed run again: this study's run)
            for name, runs in json.loads(path.read_text()).items():
                merged.setdefault(name, []).extend(runs)
        for name, runs in results.items():
            mine = {r["seed"] for r in runs}
            merged[name] = [r for r in merged.get(name, []) if r["seed"] not in mine] + runs
        section = keeps_report(a, merged, load_before, load_after, total_min)
        old = a.out.read_text() if a.out.is_file() else ""
        if "<!-- keeps:start -->" in old:
            head, rest = old.split("<!-- keeps:start -->", 1)
            old = head + rest.split("<!-- keeps:end -->\n", 1)[-1]
        a.out.write_text(old.rstrip("\n") + "\n\n" + section)
        print(section)
        return
    a.out.write_text(report(a, results, load_before, load_after, total_min))
    print(a.out.read_text())


def report(a, results: dict[str, list[dict]], load_before, load_after, total_min: float) -> str:
    first = next(iter(results.values()))[0]
    cols = ["taught greedy", "unseen greedy", "taught sampled", "unseen sampled"]
    lines = ["# Recipes: chosen over several seeds, taught and unseen rows scored apart", "",
             f"Command: `{B.command_line()}` (under `flock /tmp/symptomgen-cpu.lock`)  ",
             f"Date: {B.machine_line(__import__('torch').get_num_threads())}  ",
             f"Load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}; after: "
             f"{' / '.join(f'{x:.2f}' for x in load_after)}; whole study {total_min:.1f} min.  ",
             f"Data: `{Path(a.data).name}`; seeds {', '.join(map(str, a.seeds))} (each seeds the split, the "
             f"init and the sampling); {a.epochs} epochs of batch {a.batch_size} for every recipe (the same "
             "optimizer steps: equal compute; no early stop, no time budget), constant learning rate; the kept "
             "model is the epoch with the lowest validation loss.  ",
             f"Scored: phrase F1 on {first['rows']['taught']} taught rows (a seeded sample of the run's training "
             f"rows, spread across names) and {first['rows']['unseen']} unseen rows (its validation rows: the real "
             "table is split by name, so these are names it never saw), greedy and with the seed notebook's "
             "sampling (top_k 8, top_p 0.95, temperature 0.5, repetition_penalty 1.2; sampling seed = run seed).",
             "",
             "Models: scratch GPT-2 (random init, own byte-level BPE of 4000 tokens): the Hub is unreachable here, "
             "so the notebook's distilgpt2 could not be fine-tuned; the figures say which recipe learns best from "
             "scratch at this compute, not what a pretrained model would reach.", "",
             f"Baseline `{BASELINE}`: the seed notebook's recipe (loss on the whole text, lr 5e-4, constant "
             "schedule, batch 8, max length 128) on a 4x256 scratch model; each other recipe changes one thing. "
             "Cells are mean ± sd over the seeds. Validation loss is over each recipe's own labelled tokens (the "
             "whole text, or the target only), so compare loss modes by F1, not loss.", "",
             "## Training recipes", "",
             "| recipe | loss on | lr | shape | " + " F1 | ".join(cols) + " F1 | best val loss | train s | "
             "taught+unseen greedy F1 |", "|" + "---|" * 11]
    base = results.get(BASELINE)
    for name, runs in results.items():
        rc = RECIPES[name]
        cells = [fmt([r[c] for r in runs]) for c in cols]
        both = [r["taught greedy"] + r["unseen greedy"] for r in runs]
        lines.append(f"| {name} | {rc['loss_on']} | {rc['learning_rate']:g} | {rc['scratch_layers']}x"
                     f"{rc['scratch_width']} | " + " | ".join(cells) + f" | {fmt([r['best_val_loss'] for r in runs])}"
                     f" | {fmt([r['train_s'] for r in runs], 0)} | {fmt(both)} |")
    if base:
        lines += ["", "## Against the baseline (a difference is called when |Δ mean| > sd + sd)", "",
                  "| recipe | " + " | ".join(f"Δ {c} F1" for c in cols) + " | Δ taught+unseen greedy F1 |",
                  "|" + "---|" * 6]
        for name, runs in results.items():
            if name == BASELINE:
                continue
            cells = []
            for c in cols + ["both"]:
                get = ((lambda r: r["taught greedy"] + r["unseen greedy"]) if c == "both" else (lambda r, c=c: r[c]))
                va, vb = [get(r) for r in runs], [get(r) for r in base]
                d = mean_sd(va)[0] - mean_sd(vb)[0]
                cells.append(f"{d:+.3f}" + (" **(exceeds spread)**" if exceeds(va, vb) else " (within spread)"))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", f"## Decoding presets (on the `{BASELINE}` runs; evaluation only)", "",
                  "| preset | taught F1 | unseen F1 | taught+unseen F1 |", "|---|---|---|---|"]
        presets = {"greedy (repetition_penalty 1.2)": "greedy",
                   "seed notebook (sampling)": "sampled", **{k: k for k in EXTRA_PRESETS}}
        for label, key in presets.items():
            t, u = [r[f"taught {key}"] for r in base], [r[f"unseen {key}"] for r in base]
            lines.append(f"| {label} | {fmt(t)} | {fmt(u)} | {fmt([x + y for x, y in zip(t, u)])} |")
    lines += ["", "## Per run", "", "| recipe | seed | best epoch | best val loss | taught greedy | unseen greedy | "
              "taught sampled | unseen sampled | train s | eval s |", "|" + "---|" * 10]
    for name, runs in results.items():
        for r in runs:
            lines.append(f"| {name} | {r['seed']} | {r['best_epoch']} | {r['best_val_loss']:.3f} | "
                         f"{r['taught greedy']:.3f} | {r['unseen greedy']:.3f} | {r['taught sampled']:.3f} | "
                         f"{r['unseen sampled']:.3f} | {r['train_s']:.0f} | {r['eval_s']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
