"""Training benchmark: the project's trainer against the seed notebook's loop, on this CPU.

Runs interleaved pairs (baseline, candidate, baseline, candidate, ...), each arm in
a fresh process on the same rows, model weights, batch size, optimizer-step count
and thread count.  By default each arm is one full epoch, so the candidate's epoch
(``symptomgen.trainer.run_training``: training, evaluation, best-model save and
checkpoint) also gives seconds per epoch; ``--epochs N`` adds a multi-epoch run.
Then length grouping vs plain shuffling on the scratch model (padding and
validation loss at equal epochs).  Prints a Markdown table and writes it to
``bench/RESULTS.md`` (section ``train_bench``; rendering is in ``train_report.py``).

    python bench/train_bench.py                # full run, ~15 min on 2 quiet cores
    python bench/train_bench.py --tiny --data sample --results /tmp/r.md   # ~1 min, for tests
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import benchlib as B
from train_report import QUALITY_MODES, render

SCRIPT = Path(__file__).resolve()
PHASES = ("pairs", "epoch", "quality")


# ----------------------------------------------------------------------------- workers
def _param_counts(model) -> dict:
    return {"matmul_params": B.matmul_params(model), "n_layer": model.config.n_layer, "n_embd": model.config.n_embd}


def worker_baseline(a) -> dict:
    import seed_loop as S
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    B.set_threads(a.threads)
    peak = B.matmul_peak_gflops(a.threads, a.matmul_n)
    peak_bf16 = B.matmul_peak_gflops(a.threads, a.matmul_n, dtype="bfloat16") if B.native_bf16() else None
    prepared = B.prepared_rows(a.data, a.rows, a.subset_seed)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    tok.pad_token = tok.eos_token  # the seed's choice
    model = GPT2LMHeadModel.from_pretrained(a.model_dir)
    ds = S.SeedDataset(list(prepared.train["prompt"]), list(prepared.train["target"]), tok)
    real = S.real_tokens(ds)
    lengths = [min(len(tok(f"{n} | {s}")["input_ids"]), S.SEED_MAX_LENGTH) for n, s in ds.rows]
    out = S.train_steps(model, ds, a.steps, torch.Generator().manual_seed(a.subset_seed))
    rows_done = min(a.steps * S.SEED_BATCH, len(ds))
    # Rows seen = rows in the subset when steps × batch equals its size (the bench sizes it so).
    real_done = real * rows_done / len(ds)
    result = {"arm": "baseline", "steps": a.steps, "seconds": out["seconds"], "real_tokens": real_done,
              "computed_tokens": rows_done * S.SEED_MAX_LENGTH, "loss_first": out["losses"][0],
              "loss_last": out["losses"][-1], "mean_len": sum(lengths) / len(lengths), "matmul_gflops": peak,
              "matmul_gflops_bf16": peak_bf16,
              **_param_counts(model)}
    if a.eval_batches:
        val = S.SeedDataset(list(prepared.val["prompt"]), list(prepared.val["target"]), tok)
        ev = S.validate(model, val, a.eval_batches)
        result["eval_seconds_per_batch"] = ev["seconds"] / ev["batches"]
        result["val_batches"] = math.ceil(len(val) / S.SEED_BATCH)
    result["train_rows_full"] = len(B.prepared_rows(a.data, 0, 0).train)
    result["peak_rss_mb"] = B.peak_rss_mb()
    return result


def worker_plain(a) -> dict:
    """A peer: what a user of transformers' run_clm-style recipe gets.  ``Trainer`` with
    ``DataCollatorForLanguageModeling(mlm=False)`` (pad = EOS, pad to the batch's longest row, labels = ids with
    padding masked), random order, the default ``TrainingArguments`` (fp32 on CPU) but the project's batch size and
    learning rate; one row per example (``"Name | Symptoms"`` + EOS, truncated at 128 tokens)."""
    import torch
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, GPT2LMHeadModel, Trainer, TrainingArguments

    from symptomgen import quiet_libraries
    from symptomgen.data import format_example

    quiet_libraries()
    B.set_threads(a.threads)
    prepared = B.prepared_rows(a.data, a.rows, a.subset_seed)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    tok.pad_token = tok.eos_token
    model = GPT2LMHeadModel.from_pretrained(a.model_dir)
    rows = [{"input_ids": tok(format_example(p, t) + tok.eos_token, truncation=True, max_length=128)["input_ids"]}
            for p, t in zip(prepared.train["prompt"], prepared.train["target"])]
    counts = {"real": 0, "computed": 0}
    inner = DataCollatorForLanguageModeling(tok, mlm=False)

    def collate(batch):
        out = inner(batch)
        counts["real"] += int(out["attention_mask"].sum())
        counts["computed"] += out["attention_mask"].numel()
        return out

    with tempfile.TemporaryDirectory(prefix="bench-plain-") as out_dir:
        args = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=8, num_train_epochs=1,
                                 learning_rate=5e-4, save_strategy="no", report_to="none", logging_strategy="no",
                                 disable_tqdm=True, seed=a.seed, remove_unused_columns=False,
                                 dataloader_pin_memory=False, log_level="error",
                                 **({"bf16": True, "use_cpu": True} if a.plain_bf16 else {}))
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
        faults0, t = _minflt(), time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t
        steps = trainer.state.global_step
        faults = (_minflt() - faults0) / max(steps, 1)
    return {"arm": "plain", "steps": steps, "seconds": seconds, "real_tokens": counts["real"],
            "computed_tokens": counts["computed"], "peak_rss_mb": B.peak_rss_mb(), "minor_faults_per_step": faults,
            "bf16": bool(a.plain_bf16), "torch_threads": torch.get_num_threads()}


class _Timers:
    """Wall time spent in evaluation, best-model saves and Trainer checkpoints (peak RSS after each)."""

    def __init__(self):
        self.calls: dict[str, list[float]] = {"eval": [], "score": [], "save_best": [], "checkpoint": [],
                                              "epoch_begin": []}
        self.rss: list[tuple[str, float]] = []  # (what just finished, peak RSS so far)
        self.faults: list[tuple[int, int]] = []  # (global step, minor page faults so far) at each train begin/end

    def faults_per_step(self) -> float | None:
        """Minor page faults per optimizer step while training (evaluation and saves excluded)."""
        pairs = list(zip(self.faults[::2], self.faults[1::2]))
        steps = sum(e[0] - b[0] for b, e in pairs)
        return sum(e[1] - b[1] for b, e in pairs) / steps if steps else None

    def _add(self, key: str, seconds: float) -> None:
        self.calls[key].append(seconds)
        self.rss.append((key, B.peak_rss_mb()))

    @contextlib.contextmanager
    def phase(self, key: str):
        """``TrainingHooks.phase``: the reporter's ``"eval"``, ``"score"`` and ``"save_best"``."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self._add(key, time.perf_counter() - t)

    def callback(self):
        """A Trainer callback (run after EpochReporter) that notes epoch starts and times checkpoints."""
        from transformers import TrainerCallback

        timers = self

        class Clock(TrainerCallback):
            # The Trainer saves a checkpoint right after the epoch's log (EpochReporter's validation and
            # best-model save run in its on_log, before ours), then calls on_save: that gap is the checkpoint.
            mark = 0.0

            def on_epoch_begin(self, args, state, control, **kw):
                timers.calls["epoch_begin"].append(time.perf_counter())
                timers.faults.append((state.global_step, _minflt()))

            def on_epoch_end(self, args, state, control, **kw):
                timers.faults.append((state.global_step, _minflt()))
                self.mark = time.perf_counter()  # in case no log precedes the save

            def on_log(self, args, state, control, **kw):
                self.mark = time.perf_counter()

            def on_save(self, args, state, control, **kw):
                timers._add("checkpoint", time.perf_counter() - self.mark)

        return Clock()


def _minflt() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _coarse_buckets_trainer(megabatches: int):
    """A Trainer whose length grouping sorts within ``megabatches`` megabatches (transformers: ~4)."""
    from transformers import trainer_pt_utils as tpu

    from symptomgen.lmloss import LabelledLossTrainer

    class CoarseSampler(tpu.LengthGroupedSampler):
        def __iter__(self):
            mult = max(1, math.ceil(len(self.lengths) / (self.batch_size * megabatches)))
            return iter(tpu.get_length_grouped_indices(self.lengths, self.batch_size, mega_batch_mult=mult,
                                                       generator=self.generator))

    class CoarseBucketsTrainer(LabelledLossTrainer):
        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            if type(sampler) is not tpu.LengthGroupedSampler:  # shuffling: nothing to coarsen
                return sampler
            return CoarseSampler(sampler.batch_size, lengths=sampler.lengths, generator=sampler.generator)

    return CoarseBucketsTrainer


def _parse_sets(pairs: list[str]) -> dict:
    out = {}
    for item in pairs or []:
        key, _, raw = item.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def worker_candidate(a) -> dict:
    """The real code path: ``symptomgen.trainer.run_training`` (Trainer + EpochReporter), measured through
    ``TrainingHooks``."""
    from transformers import Trainer

    import symptomgen.trainer as T
    from symptomgen import quiet_libraries
    from symptomgen.batching import PackCollator, PadCollator
    from symptomgen.config import DataConfig, TrainConfig

    quiet_libraries()
    B.set_threads(a.threads)
    peak = B.matmul_peak_gflops(a.threads, a.matmul_n)
    peak_bf16 = B.matmul_peak_gflops(a.threads, a.matmul_n, dtype="bfloat16") if B.native_bf16() else None
    counts = {"real": 0, "computed": 0}
    loaded: dict = {}

    def prepare_model(model):
        if a.attn:
            model.set_attn_implementation(a.attn)
        if a.persistent_grads:  # experiment: the Trainer's model.zero_grad() keeps the gradient buffers
            import functools

            model.zero_grad = functools.partial(type(model).zero_grad, model, set_to_none=False)
        loaded["model"] = model

    def make_inner(pad_token_id):
        if a.collator != "auto":
            return {"pack": PackCollator, "pad": PadCollator}[a.collator](pad_token_id)
        return T.training_collator(loaded["model"], pad_token_id)

    timers = _Timers()
    overrides = _parse_sets(a.set)  # for experiments: TrainingArguments fields changed on top of the project's
    hooks = T.TrainingHooks(
        callbacks=(timers.callback(),), args_overrides=overrides, make_collator=B.counting_collator(counts, make_inner),
        phase=timers.phase, prepare_model=prepare_model,
        # experiments: coarser length buckets than transformers' default of ~4 megabatches; the model's own loss
        # (full logits) instead of the project's labelled-positions one
        trainer_class=(_coarse_buckets_trainer(a.megabatches) if a.megabatches
                       else Trainer if a.own_loss else T.TrainingHooks.trainer_class),
    )
    model_spec = "scratch" if a.model_dir == "scratch" else a.model_dir
    cfg = TrainConfig(model=model_spec, epochs=a.epochs, batch_size=8, seed=a.seed,
                      group_by_length=not a.shuffle, save_checkpoints=not a.no_checkpoints)
    if a.lr:
        cfg = cfg.with_(learning_rate=a.lr)
    if a.scratch_tiny:
        cfg = cfg.with_(scratch_layers=2, scratch_width=64, scratch_vocab=800)
    prepared = B.prepared_rows(a.data, a.rows, a.subset_seed)
    events = []
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as runs_dir:
        started = time.perf_counter()
        summary = T.run_training(DataConfig(source=a.data), cfg, runs_dir,
                                 on_event=lambda e: (events.append(e), timers.rss.append(("step", B.peak_rss_mb()))
                                                     if isinstance(e, T.Progress) else None), prepared=prepared,
                                 hooks=hooks)
        finished = time.perf_counter()
    if summary.status != "finished":
        raise SystemExit(f"candidate run ended {summary.status}: {summary.message}")
    epochs = [e for e in events if isinstance(e, T.EpochResult)]
    begins = timers.calls["epoch_begin"] + [finished]
    real_per_epoch = counts["real"] / len(epochs)
    per_epoch = []
    for i, e in enumerate(epochs):
        train_s = real_per_epoch / e.tokens_per_sec
        per_epoch.append({"epoch": e.epoch, "train_seconds": train_s, "wall_seconds": begins[i + 1] - begins[i],
                          "val_loss": e.val_loss, "train_loss": e.train_loss, "is_best": e.is_best})
    return {"arm": "candidate", "epochs": per_epoch, "real_tokens": counts["real"],
            "computed_tokens": counts["computed"], "seconds": sum(p["train_seconds"] for p in per_epoch),
            "eval_seconds": timers.calls["eval"], "score_seconds": timers.calls["score"],
            "save_best_seconds": timers.calls["save_best"],
            "checkpoint_seconds": timers.calls["checkpoint"], "run_seconds": finished - started,
            "steps": math.ceil(len(prepared.train) / 8) * len(epochs), "matmul_gflops": peak,
            "matmul_gflops_bf16": peak_bf16,
            "best_val_loss": summary.best_val_loss, "peak_rss_mb": B.peak_rss_mb(), "overrides": overrides,
            "peak_rss_training_mb": max((m for k, m in timers.rss if k == "step"), default=None),
            "rss_trace": _compress(timers.rss), "packed": counts["real"] == counts["computed"],
            "minor_faults_per_step": timers.faults_per_step()}


def _compress(trace: list[tuple[str, float]]) -> list:
    """The peak-RSS trace with runs of equal (label, value) merged: [label, MB, count]."""
    out: list = []
    for key, mb in trace:
        if out and out[-1][0] == key and abs(out[-1][1] - mb) < 1:
            out[-1][2] += 1
        else:
            out.append([key, round(mb), 1])
    return out


# ----------------------------------------------------------------------------- orchestration
def _common(a, extra: list[str]) -> list[str]:
    return ["--data", a.data, "--threads", str(a.threads), "--matmul-n", str(a.matmul_n), *extra]


def _candidate_env(a, extra: dict | None = None) -> dict | None:
    """The candidate runs as ``python -m symptomgen`` and the app launch training (``cputune.preload_env``: tcmalloc
    where installed) unless ``--candidate-allocator glibc``; the seed loop and the plain Trainer run as a notebook
    does.  A variant's own variables (an ``LD_PRELOAD``) replace these."""
    from symptomgen import cputune

    shipped = (cputune.preload_env() or {}) if a.candidate_allocator == "shipped" else {}
    return {**shipped, **(extra or {})} or None


def _candidate_args(a) -> list[str]:
    out = []
    for item in a.set or []:
        out += ["--set", item]
    if a.attn:
        out += ["--attn", a.attn]
    if a.collator != "auto":
        out += ["--collator", a.collator]
    if a.persistent_grads:
        out += ["--persistent-grads"]
    if a.own_loss:
        out += ["--own-loss"]
    return out


def parse_variant(spec: str) -> tuple[str, dict, list[str]]:
    """``"name: ENV=1 --set field=value"`` → (name, env, extra worker args)."""
    import re
    import shlex

    name, _, rest = spec.partition(":")
    env, args = {}, []
    for token in shlex.split(rest):
        if re.match(r"^[A-Z_][A-Z0-9_]*=", token):
            key, _, value = token.partition("=")
            env[key] = value
        else:
            args.append(token)
    return name.strip(), env, args


def orchestrate(a) -> str:
    from symptomgen.config import TrainConfig
    from symptomgen.data import format_example

    log = lambda *x: print(*x, file=sys.stderr, flush=True)  # noqa: E731
    prepared = B.prepared_rows(a.data, 0, 0)
    n_train = len(prepared.train)
    if a.steps <= 0 or a.steps * 8 >= n_train:  # one full epoch of the training split in every arm
        rows, steps = n_train, math.ceil(n_train / 8)
    else:  # a seeded subset of steps × 8 rows (length grouping then works on fewer rows)
        rows, steps = a.steps * 8, a.steps
    texts = [format_example(p, t) for p, t in zip(prepared.train["prompt"], prepared.train["target"])]
    shipped_preload = (_candidate_env(a) or os.environ).get("LD_PRELOAD")
    results: dict = {"pairs": [], "peaks": [], "candidate_allocator": f"LD_PRELOAD={shipped_preload}"
                     if shipped_preload else "glibc malloc"}
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        model_dir = Path(tmp) / "model"
        t = time.perf_counter()
        shape = "tiny" if a.tiny else a.model
        if shape == "scratch":
            _save_scratch(model_dir, texts, TrainConfig(model="scratch"))
        else:
            B.build_model_folder(model_dir, texts, shape, tokenizer_dir=a.tokenizer)
        log(f"model folder ({shape}) built in {time.perf_counter() - t:.1f}s")
        if "pairs" in a.phases:
            for i in range(a.pairs):
                base_args = _common(a, ["--model-dir", str(model_dir), "--rows", str(rows),
                                        "--subset-seed", str(i), "--steps", str(steps)])
                if i == 0:
                    base_args += ["--eval-batches", str(a.eval_batches or 10**6)]
                b = B.run_worker(SCRIPT, ["--worker", "baseline", *base_args])
                c = B.run_worker(SCRIPT, ["--worker", "candidate", *_common(a, [
                    "--model-dir", str(model_dir), "--rows", str(rows), "--subset-seed", str(i), "--epochs", "1",
                    *_candidate_args(a)])], env=_candidate_env(a))
                b["tps"], c["tps"] = b["real_tokens"] / b["seconds"], c["real_tokens"] / c["seconds"]
                results["pairs"].append((b, c))
                if not a.no_plain:
                    pl = B.run_worker(SCRIPT, ["--worker", "plain", *_common(a, [
                        "--model-dir", str(model_dir), "--rows", str(rows), "--subset-seed", str(i)]),
                        *(["--plain-bf16"] if a.plain_bf16 else [])])
                    pl["tps"] = pl["real_tokens"] / pl["seconds"]
                    pl["vs_candidate"], pl["vs_baseline"] = pl["tps"] / c["tps"], pl["tps"] / b["tps"]
                    results.setdefault("plain", []).append(pl)
                    log(f"  plain Trainer: {pl['tps']:.1f} tok/s, candidate {c['tps'] / pl['tps']:.2f}× it")
                results["peaks"] += [b["matmul_gflops"], c["matmul_gflops"]]
                log(f"pair {i + 1}/{a.pairs}: baseline {b['tps']:.1f} tok/s ({b['seconds']:.1f}s), "
                    f"candidate {c['tps']:.1f} tok/s ({c['seconds']:.1f}s), ratio {c['tps'] / b['tps']:.2f}")
                for spec in a.variant or []:
                    name, env, extra = parse_variant(spec)
                    v = B.run_worker(SCRIPT, ["--worker", "candidate", *_common(a, [
                        "--model-dir", str(model_dir), "--rows", str(rows), "--subset-seed", str(i), "--epochs", "1",
                        *_candidate_args(a), *extra])], env=_candidate_env(a, env))
                    v["tps"] = v["real_tokens"] / v["seconds"]
                    v["vs_candidate"], v["vs_baseline"] = v["tps"] / c["tps"], v["tps"] / b["tps"]
                    results.setdefault("variants", {}).setdefault(name, []).append(v)
                    results["peaks"].append(v["matmul_gflops"])
                    log(f"  variant {name}: {v['tps']:.1f} tok/s, {v['vs_candidate']:.2f}× candidate")
        if "epoch" in a.phases and a.epochs > 0:
            e = B.run_worker(SCRIPT, ["--worker", "candidate", *_common(a, [
                "--model-dir", str(model_dir), "--epochs", str(a.epochs), *_candidate_args(a)])],
                env=_candidate_env(a))
            results["epoch"] = e
            results["peaks"].append(e["matmul_gflops"])
            log("epoch run: " + ", ".join(f"{p['wall_seconds']:.1f}s" for p in e["epochs"]))
    if "quality" in a.phases:
        results["quality"] = []
        q_extra = ["--model-dir", "scratch", "--epochs", str(a.quality_epochs), "--no-checkpoints",
                   *(["--lr", str(a.quality_lr)] if a.quality_lr else [])]
        if a.tiny:
            q_extra = ["--model-dir", "scratch", "--epochs", "1", "--no-checkpoints", "--scratch-tiny"]
        for seed in range(a.quality_seeds):
            for mode, extra in QUALITY_MODES:
                q = B.run_worker(SCRIPT, ["--worker", "candidate", *_common(a, [*q_extra, "--seed", str(42 + seed),
                                                                             *extra])],
                                 env=_candidate_env(a))
                q["mode"], q["seed"] = mode, 42 + seed
                results["quality"].append(q)
                log(f"quality seed {42 + seed} {mode}: pad {1 - q['real_tokens'] / q['computed_tokens']:.1%}, "
                    f"best val {q['best_val_loss']:.4f}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=1, default=str))
    return render(a, results, n_train, steps)


def _save_scratch(folder: Path, texts: list[str], cfg) -> None:
    from symptomgen.modeling import build_scratch_model, build_scratch_tokenizer

    tok = build_scratch_tokenizer(texts, cfg.scratch_vocab)
    model = build_scratch_model(tok, cfg)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=B.default_data(),
                   help="CSV/JSON/Parquet with Name and Symptoms columns, or 'sample' (default: the real dataset "
                        "in ../shared/data when present, else the bundled sample)")
    p.add_argument("--model", choices=("distilgpt2", "scratch"), default="distilgpt2",
                   help="distilgpt2-shaped random init (6×768, vocab 50257) or the project's scratch model")
    p.add_argument("--tokenizer", default=None,
                   help="folder of a saved GPT-2 tokenizer to use instead of the calibrated byte-level BPE")
    p.add_argument("--steps", type=int, default=0,
                   help="optimizer steps per arm in each pair; 0 (default) = one full epoch of the training split, "
                        "fewer = a seeded subset of steps×8 rows (quicker, but length grouping has fewer rows)")
    p.add_argument("--pairs", type=int, default=2, help="interleaved baseline/candidate pairs (default 2)")
    p.add_argument("--epochs", type=int, default=0,
                   help="also run the real trainer for this many epochs on the full split and report its last "
                        "epoch (steady state incl. the previous checkpoint); 0 (default) = use the pairs' epochs")
    p.add_argument("--quality-epochs", type=int, default=6, help="epochs per arm of grouping vs shuffling")
    p.add_argument("--quality-lr", type=float, default=None,
                   help="learning rate of the quality runs (default: the project's default, 5e-4)")
    p.add_argument("--quality-seeds", type=int, default=3, help="seeds of grouping vs shuffling (default 3)")
    p.add_argument("--eval-batches", type=int, default=0,
                   help="seed-loop validation batches timed in the first pair (default 0 = all)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads in every arm")
    p.add_argument("--matmul-n", type=int, default=3072, help="matrix size of the matmul peak probe")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="experiment: override a TrainingArguments field in the candidate (repeatable)")
    p.add_argument("--attn", default=None, help="experiment: attention implementation for the candidate")
    p.add_argument("--own-loss", action="store_true",
                   help="experiment: the model's own loss (full logits, transformers.Trainer) instead of the "
                        "project's labelled-positions loss (symptomgen.lmloss)")
    p.add_argument("--variant", action="append", metavar="'NAME: ENV=V --set FIELD=V'",
                   help="experiment: an extra arm in every pair, the candidate with these environment variables "
                        "and worker options (repeatable), e.g. 'fp32: SYMPTOMGEN_CPU_BF16=0'")
    p.add_argument("--tiny", action="store_true",
                   help="tiny model (2 layers, width 64), 1 pair, 1-epoch quality check: for tests")
    p.add_argument("--results", type=Path, default=B.RESULTS, help="Markdown file to write (default bench/RESULTS.md)")
    p.add_argument("--json-out", default=None, help="also write the raw measurements as JSON")
    p.add_argument("--note", default="", help="a sentence appended under the table")
    # worker-only options (one arm in this process)
    p.add_argument("--no-plain", action="store_true",
                   help="skip the plain-Trainer peer arm (Trainer + DataCollatorForLanguageModeling, padded, "
                        "random order) in each pair")
    p.add_argument("--plain-bf16", action="store_true",
                   help="run the plain-Trainer arm under bf16 autocast (default: fp32, what TrainingArguments gives)")
    p.add_argument("--collator", choices=("auto", "pack", "pad"), default="auto",
                   help="experiment: the candidate's training batches (auto = the project's choice: packed)")
    p.add_argument("--candidate-allocator", choices=("shipped", "glibc"), default="shipped",
                   help="the candidate's allocator: as the CLI and app launch training (tcmalloc where installed, "
                        "the default) or glibc's")
    p.add_argument("--persistent-grads", action="store_true",
                   help="experiment: keep gradient buffers between steps (zero them instead of freeing them)")
    p.add_argument("--worker", choices=("baseline", "candidate", "plain"), help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--subset-seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)
    p.add_argument("--shuffle", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-checkpoints", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--scratch-tiny", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--megabatches", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--lr", type=float, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.worker:
        fn = {"baseline": worker_baseline, "candidate": worker_candidate, "plain": worker_plain}[a.worker]
        print(json.dumps(fn(a), default=str))
        return 0
    a.phases = {x.strip() for x in a.phases.split(",") if x.strip()}
    if a.tiny:
        a.pairs, a.epochs, a.quality_seeds = 1, min(a.epochs, 1), 1
        a.matmul_n = min(a.matmul_n, 256)
    body = orchestrate(a)
    print(body)
    B.write_section(a.results, "train_bench", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
