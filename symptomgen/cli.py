"""Command line: ``python -m symptomgen train|generate|evaluate|runs|export|import|push``.

Errors a user can fix print one line on stderr and exit with status 2.
Under ``torchrun`` only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from .errors import TrainingFailed, first_line
from . import config as C
from .hub import HubUnreachableError
from .runs import DEFAULT_RUNS_DIR, Run, RunNotFoundError, list_runs, resolve_run, run_label


# Defaults of the train command's data flags (a resumed run names those that differ: they are not used).
DATA_DEFAULTS = {"data": C.DEFAULT_DATASET, "prompt_column": "Name", "target_column": "Symptoms",
                 "val_fraction": C.VAL_FRACTION_RANGE[2], "seed": 42}


class CliError(Exception):
    """A user-facing error: printed as one line."""


class OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad argument is one ``error:`` line (and a pointer to --help), not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def say(*args, **kwargs) -> None:
    if _is_main():
        print(*args, **kwargs, flush=True)


def _add_sampling(p: argparse.ArgumentParser) -> None:
    g = C.GenerationSettings()
    p.add_argument("--top-k", type=int, default=g.top_k, help=f"0-{C.TOP_K_RANGE[1]}, 0 = off (default {g.top_k})")
    p.add_argument("--top-p", type=float, default=g.top_p, help=f"(0, 1] (default {g.top_p})")
    p.add_argument("--temperature", type=float, default=g.temperature, help=f"0-2, 0 = greedy (default {g.temperature})")
    p.add_argument("--repetition-penalty", type=float, default=g.repetition_penalty,
                   help=f"1-2 (default {g.repetition_penalty})")
    p.add_argument("--max-new-tokens", type=int, default=g.max_new_tokens, help=f"1-256 (default {g.max_new_tokens})")
    p.add_argument("--num-return-sequences", type=int, default=g.num_return_sequences, help="1-5 (default 1)")
    p.add_argument("--seed", type=int, default=g.seed, help="sampling seed (default 0)")


def _sampling(a: argparse.Namespace) -> C.GenerationSettings:
    return C.GenerationSettings(top_k=a.top_k, top_p=a.top_p, temperature=a.temperature,
                                repetition_penalty=a.repetition_penalty, max_new_tokens=a.max_new_tokens,
                                num_return_sequences=a.num_return_sequences, seed=a.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="python -m symptomgen", description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR, help="where run folders live (default runs/)")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fine-tune a model and save the run folder")
    d = C.TrainConfig()
    t.add_argument("--preset", choices=sorted(C.TRAIN_PRESETS), help="start from named settings (flags override)")
    t.add_argument("--data", default=DATA_DEFAULTS["data"],
                   help=f"Hub dataset id, CSV/TSV/JSON/JSONL/Parquet file, or 'sample' (default {C.DEFAULT_DATASET})")
    t.add_argument("--prompt-column", default=DATA_DEFAULTS["prompt_column"])
    t.add_argument("--target-column", default=DATA_DEFAULTS["target_column"])
    t.add_argument("--with-treatments", action="store_true", help="append the Treatments column to the target")
    t.add_argument("--model", help=f"Hub id, saved folder, or 'scratch' (default {d.model})")
    for flag, typ in (("epochs", int), ("batch-size", int), ("lr", float), ("max-length", int),
                      ("warmup-ratio", float), ("weight-decay", float), ("grad-accum", int), ("patience", int)):
        t.add_argument(f"--{flag}", type=typ)
    t.add_argument("--scratch-layers", type=int, help=f"layers of the scratch model (default {d.scratch_layers})")
    t.add_argument("--scratch-width", type=int, help=f"width of the scratch model (default {d.scratch_width})")
    t.add_argument("--scratch-vocab", type=int, help=f"tokenizer size for scratch (default {d.scratch_vocab})")
    t.add_argument("--val-fraction", type=float, default=DATA_DEFAULTS["val_fraction"])
    t.add_argument("--seed", type=int, default=DATA_DEFAULTS["seed"])
    t.add_argument("--loss-on", choices=C.LOSS_MODES, help="'target' (symptoms only) or 'full' text (seed)")
    t.add_argument("--scheduler", choices=("constant", "linear", "cosine"))
    t.add_argument("--no-length-grouping", action="store_true", help="shuffle plainly instead of length-grouped")
    t.add_argument("--no-checkpoints", action="store_true", help="don't keep a resumable checkpoint")
    t.add_argument("--output-dir", type=Path, help="same as --runs-dir")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted or stopped run from its last checkpoint "
                   "(its id, or its folder)")
    t.add_argument("--no-fallback", action="store_true",
                   help="fail instead of using the bundled sample/scratch when the Hub is unreachable")

    g = sub.add_parser("generate", help="generate symptoms for a disease name")
    g.add_argument("name", help='disease name, e.g. "Kidney Failure"')
    g.add_argument("--model", required=True, help="run folder, run id, saved folder or Hub id")
    _add_sampling(g)

    e = sub.add_parser("evaluate", help="loss, perplexity and symptom overlap of a run (JSON)")
    e.add_argument("--model", required=True, help="run folder or run id")
    e.add_argument("--data", help="evaluate on this source's validation split instead of the run's own")
    e.add_argument("--limit", type=int, help="only the first N validation rows")
    e.add_argument("--no-base", action="store_true", help="skip the base-model comparison")
    _add_sampling(e)

    sub.add_parser("runs", help="list run folders")

    x = sub.add_parser("export", help="zip a run: model, tokenizer, config, metrics, split, model card")
    x.add_argument("run", help="run id or run folder")
    x.add_argument("--out", type=Path, required=True, help="zip file to write (or a folder for <run_id>.zip)")
    i = sub.add_parser("import", help="add a run from an exported zip (or a Hub repo id owner/name)")
    i.add_argument("source", metavar="ZIP", help="exported zip file, or owner/name of a pushed run on the Hub")
    u = sub.add_parser("push", help="upload a run to the Hugging Face Hub (token from HF_TOKEN)")
    u.add_argument("run", help="run id or run folder")
    u.add_argument("--repo-id", required=True, help="owner/name of the Hub model repo (created if missing)")
    u.add_argument("--public", action="store_true", help="make a new repo public (default: private)")
    return parser


def _train_configs(a: argparse.Namespace) -> tuple[C.DataConfig, C.TrainConfig]:
    base = C.TRAIN_PRESETS[a.preset] if a.preset else C.TrainConfig()
    changes = {k: v for k, v in {
        "model": a.model, "epochs": a.epochs, "batch_size": a.batch_size, "learning_rate": a.lr,
        "max_length": a.max_length, "warmup_ratio": a.warmup_ratio, "weight_decay": a.weight_decay,
        "grad_accum": a.grad_accum, "patience": a.patience, "loss_on": a.loss_on, "scheduler": a.scheduler,
        "scratch_layers": a.scratch_layers, "scratch_width": a.scratch_width, "scratch_vocab": a.scratch_vocab,
    }.items() if v is not None}
    changes["seed"] = a.seed
    if a.no_length_grouping:
        changes["group_by_length"] = False
    if a.no_checkpoints:
        changes["save_checkpoints"] = False
    data = C.DataConfig(source=a.data, prompt_column=a.prompt_column, target_column=a.target_column,
                        extra_target_column="Treatments" if a.with_treatments else None,
                        val_fraction=a.val_fraction, seed=a.seed)
    return data, base.with_(**changes)


# Flags whose default is None/False: set on the command line, they would be silently unused by --resume.
RESUME_IGNORES = ("preset", "model", "epochs", "batch_size", "lr", "max_length", "warmup_ratio", "weight_decay",
                  "grad_accum", "patience", "loss_on", "scheduler", "scratch_layers", "scratch_width",
                  "scratch_vocab", "with_treatments", "no_length_grouping", "no_checkpoints")


def cmd_train(a: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .data import prepare
    from .offline import with_offline_fallback
    from .trainer import EpochResult, Progress, run_training

    runs_dir = a.output_dir or a.runs_dir
    if a.resume and Path(a.resume).is_dir():  # the "run folder:" line train printed works as well as the id
        runs_dir, a.resume = Path(a.resume).resolve().parent, Path(a.resume).resolve().name
    if a.resume:
        ignored = [f"--{k.replace('_', '-')}" for k in RESUME_IGNORES if getattr(a, k, None) not in (None, False)]
        ignored += [f"--{k.replace('_', '-')}" for k, default in DATA_DEFAULTS.items()
                    if getattr(a, k) != default]  # data flags with defaults: different = given
        if ignored:
            say(f"notice: a resumed run keeps its own settings; ignored: {' '.join(ignored)}", file=sys.stderr)
    prepared = None
    data, train = _train_configs(a)
    if not a.resume:
        if not a.no_fallback:
            data, train, notices = with_offline_fallback(data, train)
            for n in notices:
                say(f"notice: {n}", file=sys.stderr)
        prepared = prepare(data)
        say(prepared.summary())
    bar = tqdm(total=0, unit="step", leave=False, disable=None if _is_main() else True)

    def on_event(ev) -> None:
        if isinstance(ev, Progress):
            bar.total = ev.total_steps
            bar.update(ev.step - bar.n)
        elif isinstance(ev, EpochResult):
            bar.clear()
            say(f"epoch {ev.epoch:>3}  train_loss {ev.train_loss:.4f}  val_loss {ev.val_loss:.4f}  "
                f"{ev.epoch_seconds:6.1f}s  {ev.tokens_per_sec:7.0f} tok/s  lr {ev.learning_rate:.2e}"
                f"{'  *best' if ev.is_best else ''}")

    stop = threading.Event()
    try:
        summary = run_training(data, train, runs_dir, on_event, stop, prepared=prepared, resume=a.resume)
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        bar.close()
    _end_distributed()
    if summary.message:
        say(summary.message, file=sys.stderr)
    best = (f"best epoch {summary.best_epoch} (val_loss {summary.best_val_loss:.4f})"
            if summary.best_epoch else "no finished epoch")
    say(f"run {summary.status}: {best}; {summary.seconds:.1f}s")
    say(f"run folder: {summary.run_dir}")
    return 0 if summary.status != "failed" else 1


def _end_distributed() -> None:
    """Under torchrun: wait for every rank, then tear the process group down before the interpreter exits.

    Exiting with a live gloo group lets its worker threads outlive the interpreter, which aborts the process
    ("terminate called without an active exception") at random.  Only on the success path: a rank that
    failed may have left the others inside a collective, where a barrier would hang.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _model_path(spec: str, runs_dir: Path) -> str:
    """A run folder → its best/; a run id → runs_dir/<id>/best; otherwise as given."""
    p = Path(spec).expanduser()
    if (p / "config.json").is_file() and Run(p).has_best():  # has_best also repairs an interrupted save
        return str(p / "best")
    if (p / "config.json").is_file() and ((p / "val.csv").is_file() or (p / "metrics.csv").exists()):
        raise CliError(f"Run {p.name} has no saved model yet (no epoch finished).")
    if not p.exists():
        try:
            return str(resolve_run(runs_dir, spec).best_dir)
        except RunNotFoundError:
            pass
    return spec


def cmd_generate(a: argparse.Namespace) -> int:
    from .generation import generate
    from .modeling import load_pretrained

    settings = _sampling(a)
    model, tok = load_pretrained(_model_path(a.model, a.runs_dir))
    for text in generate(model, tok, a.name, settings):
        print(f"{a.name} | {text}")
    return 0


def _run_dir(spec: str, runs_dir: Path) -> Path:
    p = Path(spec).expanduser()
    if p.name == "best" and (p.parent / "config.json").is_file():
        p = p.parent
    if (p / "config.json").is_file() and (p / "val.csv").is_file():
        return p
    return resolve_run(runs_dir, spec).path


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .data import prepare
    from .evaluation import evaluate_run
    from .runs import Run

    run_dir = _run_dir(a.model, a.runs_dir)
    frame = None
    if a.data:
        saved = Run(run_dir).read_config().get("data", {})
        frame = prepare(C.DataConfig.from_dict({**saved, "source": a.data})).val
    sampling = _sampling(a)
    result = evaluate_run(run_dir, frame, sampling=None if sampling.greedy else sampling,
                          include_base=not a.no_base, limit=a.limit)
    result.pop("table")
    print(json.dumps(result, indent=2))
    return 0


def cmd_runs(a: argparse.Namespace) -> int:
    runs = list_runs(a.runs_dir)
    for r in runs:
        print(run_label(r))
    if not runs:
        print(f"no runs in {a.runs_dir}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .share import export_run_zip

    print(f"exported: {export_run_zip(_run_dir(a.run, a.runs_dir), a.out)}")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    from .share import import_run_from_hub, import_run_zip

    src = Path(a.source).expanduser()
    if src.exists() or src.suffix.lower() == ".zip":
        run = import_run_zip(src, a.runs_dir)
    else:
        run = import_run_from_hub(a.source, a.runs_dir)
    print(f"imported run {run.run_id}: {run.path}")
    return 0


def cmd_push(a: argparse.Namespace) -> int:
    from .share import push_run_to_hub

    url = push_run_to_hub(_run_dir(a.run, a.runs_dir), a.repo_id, private=not a.public)
    print(f"pushed to {url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from . import quiet_libraries

    args = build_parser().parse_args(argv)
    if args.command not in ("runs", "export"):  # those two never load a model: no need to import transformers
        quiet_libraries()
    handler = {"train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate, "runs": cmd_runs,
               "export": cmd_export, "import": cmd_import, "push": cmd_push}
    try:
        return handler[args.command](args)
    except BrokenPipeError:  # the reader went away (`runs | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second complaint at exit
        return 0
    except (CliError, ValueError, HubUnreachableError, OSError, TrainingFailed) as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
