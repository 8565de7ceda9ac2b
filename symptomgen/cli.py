"""Command line: ``python -m symptomgen train|generate|evaluate|runs|export|import|push``.

Errors a user can fix (``errors.UserError``) print one line on stderr and exit with status 2; a file or disk
problem prints one line and exits 1; a bug prints an "internal error" line (the traceback goes to a log file).
Under ``torchrun`` only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from . import config as C
from .catalog import ModelSpec, find_run, generation_target
from .errors import UserError, first_line, internal_error_line
from .gguf_export import DEFAULT_GGUF_TYPE, GGUF_TYPES
from .runs import Run, list_runs, run_label
from .settings import current, is_main_process


def _dest(s: C.Spec) -> str:
    """The attribute argparse stores a setting's flag under (``--lr`` → ``lr``)."""
    return s.cli_flag[2:].replace("-", "_")


# Flags are built from the settings' metadata (config.Spec): a setting with a flag gets one, named after it.
SAMPLING_FLAGS = tuple(s for s in C.settings_of(C.GenerationSettings) if s.flag is not None)
TRAIN_FLAGS = tuple(s for s in C.settings_of(C.TrainConfig) if s.flag is not None)
DATA_FLAGS = tuple(s for s in C.settings_of(C.DataConfig) if s.flag is not None)
# Defaults of the train command's data flags (a resumed run names those that differ: they are not used).
# The CLI trains on the real dataset by default; the library's default source is the bundled sample.
DATA_DEFAULTS = {_dest(s): C.DEFAULT_DATASET if s.name == "source" else s.default for s in DATA_FLAGS}
# Flags whose default is None/False: set on the command line, they would be silently unused by --resume.
RESUME_IGNORES = ("preset", *(_dest(s) for s in TRAIN_FLAGS), "with_treatments")


class CliError(UserError):
    """A user-facing error of the command line itself: printed as one line."""


class OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad argument is one ``error:`` line (and a pointer to --help), not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def say(*args, **kwargs) -> None:
    if is_main_process():
        print(*args, **kwargs, flush=True)


def _help(s: C.Spec, default, note: str = "") -> str:
    """A flag's help: the setting's sentence, then its range (numbers) and its default."""
    if s.kind == "switch":  # the flag flips the setting away from its default
        text = f"turn {'off' if s.default else 'on'} '{s.label}' ({'on' if s.default else 'off'} by default): {s.help}"
    else:
        limits = f"Range {s.range_text}; d" if s.kind == "number" else "D"
        text = f"{s.help}{note} {limits}efault {C.fmt_number(default) if s.kind == 'number' else default}."
    return text.replace("%", "%%")  # argparse formats help with %


def _add_setting(p: argparse.ArgumentParser, s: C.Spec, default=None, *, shown=None, note: str = "") -> None:
    """Add one setting's flag: its type or choices, and help with range and default (``shown``, if the flag's
    own default is None so that only a given flag changes the setting)."""
    if s.kind == "switch":
        p.add_argument(s.cli_flag, action="store_true", help=_help(s, s.default))
        return
    typed = {"choice": {"choices": s.choices}, "number": {"type": int if s.integer else float}}.get(s.kind, {})
    p.add_argument(s.cli_flag, default=default, help=_help(s, default if shown is None else shown, note), **typed)


def _add_sampling(p: argparse.ArgumentParser) -> None:
    for s in SAMPLING_FLAGS:
        _add_setting(p, s, s.default)


def _sampling(a: argparse.Namespace) -> C.GenerationSettings:
    return C.GenerationSettings(**{s.name: getattr(a, _dest(s)) for s in SAMPLING_FLAGS})


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="python -m symptomgen", description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where run folders live (default runs/, or $SYMPTOMGEN_RUNS_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fine-tune a model and save the run folder")
    t.add_argument("--preset", choices=sorted(C.TRAIN_PRESETS), help="start from named settings (flags override)")
    for s in DATA_FLAGS:
        _add_setting(t, s, DATA_DEFAULTS[_dest(s)], note=" It seeds the training too." if s.name == "seed" else "")
    t.add_argument("--with-treatments", action="store_true", help="append the Treatments column to the target")
    for s in TRAIN_FLAGS:  # default None: only a flag given changes the (preset's) setting
        _add_setting(t, s, shown=s.default)
    t.add_argument("--output-dir", type=Path, help="same as --runs-dir")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted or stopped run from its last checkpoint "
                   "(its id, or its folder)")
    t.add_argument("--no-fallback", action="store_true",
                   help="fail instead of using the bundled sample/scratch when the Hub is unreachable")

    g = sub.add_parser("generate", help="generate symptoms for a disease name")
    g.add_argument("name", help='disease name, e.g. "Kidney Failure"')
    g.add_argument("--model", required=True, help="run folder, run id, saved folder or Hub id")
    _add_sampling(g)

    e = sub.add_parser("evaluate", help="loss, perplexity and overlap scores of a run (JSON): phrase P/R/F1 for "
                       "comma lists, ROUGE-L/ROUGE-1 for free text; on its validation rows (unseen) and on as many "
                       "of its training rows (taught), fine-tuned and base")
    e.add_argument("--model", required=True, help="run folder or run id")
    e.add_argument("--data", help="evaluate on this source's validation split instead of the run's own")
    e.add_argument("--limit", type=int, help="only N validation rows and N training rows, spread across names (a "
                   "seeded sample: each name's first row, then each name's second, ...)")
    e.add_argument("--no-base", action="store_true", help="skip the base-model comparison")
    _add_sampling(e)

    sub.add_parser("runs", help="list run folders")
    d = sub.add_parser("delete", help="delete a run that is not training (its folder, model and checkpoints)")
    d.add_argument("run", help="run id")

    x = sub.add_parser("export", help="zip a run: model, tokenizer, config, metrics, split, model card")
    x.add_argument("run", help="run id or run folder")
    x.add_argument("--out", type=Path, required=True, help="zip (or .gguf) file to write, or a folder for "
                   "<run_id>.zip (<run_id>-<type>.gguf)")
    x.add_argument("--merged", action="store_true", help="a LoRA run: its adapter merged into the base, as whole "
                   "weights that load without peft (default: the adapter only)")
    x.add_argument("--format", choices=("zip", "gguf"), default="zip", help="zip: the run as saved (default); gguf: "
                   "one GGUF file for llama.cpp/Ollama (a LoRA run merged into its base), with an Ollama Modelfile "
                   "beside it")
    x.add_argument("--gguf-type", choices=GGUF_TYPES, default=DEFAULT_GGUF_TYPE, help="GGUF weight type: f16, bf16 "
                   "(2 bytes per weight) or q8_0 (8-bit, about 1.06 bytes). Default %(default)s.")
    i = sub.add_parser("import", help="add a run from an exported zip (or a Hub repo id owner/name)")
    i.add_argument("source", metavar="ZIP", help="exported zip file, or owner/name of a pushed run on the Hub")
    u = sub.add_parser("push", help="upload a run to the Hugging Face Hub (token from HF_TOKEN or a saved hf auth login)")
    u.add_argument("run", help="run id or run folder")
    u.add_argument("--repo-id", required=True, help="owner/name of the Hub model repo (created if missing)")
    u.add_argument("--public", action="store_true", help="make a new repo public (default: private)")
    u.add_argument("--merged", action="store_true", help="a LoRA run: push whole merged weights, not the adapter")
    return parser


def _train_configs(a: argparse.Namespace) -> tuple[C.DataConfig, C.TrainConfig]:
    base = C.TRAIN_PRESETS[a.preset] if a.preset else C.TrainConfig()
    changes = {}
    for s in TRAIN_FLAGS:
        given = getattr(a, _dest(s))
        if s.kind == "switch":
            if given:
                changes[s.name] = not s.default
        elif given is not None:
            changes[s.name] = given
    changes["seed"] = a.seed  # one --seed for the split and the training
    data = C.DataConfig(**{s.name: getattr(a, _dest(s)) for s in DATA_FLAGS},
                        extra_target_column="Treatments" if a.with_treatments else None)
    return data, base.with_(**changes)


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
        # The model name is parsed as the page parses it (catalog.ModelSpec), folders allowed here: a run's
        # name or folder trains on from its best/ (a run folder is not itself a model folder).
        train = train.with_(model=ModelSpec.parse(train.model, runs_dir,
                                                  allow_paths=True).target)
        if not a.no_fallback:
            data, train, notices = with_offline_fallback(data, train)
            for n in notices:
                say(f"notice: {n}", file=sys.stderr)
        prepared = prepare(data)
        say(prepared.summary())
    bar = tqdm(total=0, unit="step", leave=False, disable=None if is_main_process() else True)

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
    if summary.kept_epoch is not None and summary.kept_epoch != summary.best_epoch:
        best += f"; best/ holds epoch {summary.kept_epoch}"
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


def cmd_generate(a: argparse.Namespace) -> int:
    from .generation import generate
    from .modeling import load_pretrained, place

    settings = _sampling(a)
    model, tok = load_pretrained(generation_target(a.model, a.runs_dir, allow_paths=True).model)
    place(model)  # CUDA (half precision), MPS or CPU
    for text in generate(model, tok, a.name, settings):
        print(f"{a.name} | {text}")
    return 0


def _run_dir(spec: str, runs_dir: Path) -> Path:
    """A run by its folder (or its ``best/``) or by its name in ``runs_dir``."""
    return find_run(spec, runs_dir, allow_paths=True).path


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .data import prepare
    from .evaluation import evaluate_run

    run_dir = _run_dir(a.model, a.runs_dir)
    frame = None
    if a.data:
        saved = Run(run_dir).record().data
        if saved is None:
            raise CliError(f"Run {run_dir.name} has no usable data settings to read {a.data} with.")
        frame = prepare(saved.with_(source=a.data)).val
    sampling = _sampling(a)
    result = evaluate_run(run_dir, frame, sampling=None if sampling.greedy else sampling,
                          include_base=not a.no_base, limit=a.limit)
    result.pop("table"), result.pop("taught_table")
    print(json.dumps(result, indent=2))
    return 0


def cmd_delete(a: argparse.Namespace) -> int:
    from .storage import delete_run

    print(delete_run(a.runs_dir, a.run))
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

    if a.format == "gguf":
        return _export_gguf(a)
    print(f"exported: {export_run_zip(_run_dir(a.run, a.runs_dir), a.out, merged=a.merged)}")
    return 0


def _export_gguf(a: argparse.Namespace) -> int:
    from .gguf_export import estimate_run, export_run_gguf

    run_dir = _run_dir(a.run, a.runs_dir)
    print(f"estimate: {estimate_run(run_dir, a.gguf_type).text()}", flush=True)
    path = export_run_gguf(run_dir, a.out, a.gguf_type)
    print(f"exported: {path} ({path.stat().st_size:,} bytes)")
    print(f"Ollama: ollama create {run_dir.name.lower()} -f {path.with_suffix('.Modelfile')}")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    from .share import hub_token, import_run_from_hub, import_run_zip

    src = Path(a.source).expanduser()
    if src.exists() or src.suffix.lower() == ".zip":
        run = import_run_zip(src, a.runs_dir)
    else:
        run = import_run_from_hub(a.source, a.runs_dir, token=hub_token())  # the owner's own door
    print(f"imported run {run.run_id}: {run.path}")
    return 0


def cmd_push(a: argparse.Namespace) -> int:
    from .share import hub_token, push_run_to_hub

    url = push_run_to_hub(_run_dir(a.run, a.runs_dir), a.repo_id, token=hub_token(), private=not a.public,
                          merged=a.merged)
    print(f"pushed to {url}")
    return 0


def _log_traceback(exc: BaseException) -> str:
    """Write ``exc``'s traceback to a log file in the temp folder; returns where it went."""
    import tempfile
    import traceback

    path = Path(tempfile.gettempdir()) / "symptomgen-error.log"
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(traceback.format_exception(exc)) + "\n")
    except OSError:
        return "stderr (the log file could not be written)"
    return str(path)


def main(argv: list[str] | None = None) -> int:
    from . import quiet_libraries

    args = build_parser().parse_args(argv)
    if args.command not in ("runs", "export") or getattr(args, "format", None) == "gguf":  # a zip loads no model
        quiet_libraries()
    handler = {"train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate, "runs": cmd_runs,
               "export": cmd_export, "import": cmd_import, "push": cmd_push, "delete": cmd_delete}
    try:
        if args.runs_dir is None:  # inside the try: a malformed SYMPTOMGEN_* number is one line, not a traceback
            args.runs_dir = current().runs_dir
        return handler[args.command](args)
    except BrokenPipeError:  # the reader went away (`runs | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second complaint at exit
        return 0
    except UserError as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk that is full, a folder that is not writable: the machine's, not a bug
        print(f"error: could not read or write a file: {exc.strerror or first_line(exc)}"
              f"{f' ({exc.filename})' if exc.filename else ''}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: one line here, the traceback in a log file for the report
        print(f"error: {internal_error_line(exc).replace('the server log', _log_traceback(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
