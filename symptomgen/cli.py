"""Command line: ``python -m symptomgen train|generate|evaluate|runs|export|import|push``.

Errors a user can fix (``errors.UserError``) print one line on stderr and exit with status 2; a file or disk
problem prints one line and exits 1; a bug prints an "internal error" line (the traceback goes to a log file).
Under ``torchrun`` only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from pathlib import Path

from . import config as C
from .catalog import ModelSpec, find_run, generation_target
from .errors import UserError, first_line, internal_error_line
from .events import EpochResult
from .gguf_export import DEFAULT_GGUF_TYPE, GGUF_TYPES
from .runs import Run, run_label
from .settings import current, is_main_process
from .store import RunStore


def _dest(s: C.Spec) -> str:
    """The attribute argparse stores a setting's flag under (``--lr`` → ``lr``)."""
    return s.cli_flag[2:].replace("-", "_")


# Flags are built from the settings' metadata (config.Spec): a setting with a flag gets one, named after it.
SAMPLING_FLAGS = tuple(s for s in C.settings_of(C.GenerationSettings) if s.flag is not None)
TRAIN_FLAGS = tuple(s for s in C.settings_of(C.TrainConfig) if s.flag is not None)
DATA_FLAGS = tuple(s for s in C.settings_of(C.DataConfig) if s.flag is not None)
# evaluate's --limit: the Evaluate tab's "rows" setting, so the page and the CLI score the same sample by default.
EVAL_ROWS = C.setting(C.EvaluationSettings, "rows")
# Defaults of the train command's data flags (a resumed run names those that differ: they are not used).
# The CLI trains on the real dataset by default; the library's default source is the bundled sample.
DATA_DEFAULTS = {_dest(s): C.DEFAULT_DATASET if s.name == "source" else s.default for s in DATA_FLAGS}
# Flags whose default is None/False: set on the command line, they would be silently unused by --resume.
RESUME_IGNORES = ("preset", *(_dest(s) for s in TRAIN_FLAGS), "with_treatments")


class CliError(UserError):
    """A user-facing error of the command line itself: printed as one line."""


def plain(text: str) -> str:
    """Help text as a terminal shows it: reStructuredText literals and roles (double backticks, ``:func:``) and
    Markdown code spans become the plain text inside them."""
    return re.sub(r"(?::\w+:)?`{1,2}([^`]+)`{1,2}", r"\1", text)


class PlainHelp(argparse.HelpFormatter):
    """argparse's formatter, with every description and flag help passed through ``plain``: docstrings and
    settings' sentences are written for Sphinx and the page, ``--help`` is read in a terminal."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain(super()._expand_help(action))


class OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad argument is one ``error:`` line (and a pointer to --help), not the whole usage; help is
    plain text (``PlainHelp``), for every subcommand too (their parsers are made by this class)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", PlainHelp)
        super().__init__(*args, **kwargs)

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
    t.add_argument("--offline-fallback", action="store_true",
                   help="when the Hub cannot be reached, train the small scratch model and/or the bundled sample "
                   "instead of a Hub model or dataset that is not in the local cache (default: refuse, exit 2)")
    t.add_argument("--no-fallback", action="store_true", help=argparse.SUPPRESS)  # the old opt-out: now the default

    g = sub.add_parser("generate", help="generate symptoms for a disease name (or many: --names-file, --out CSV)")
    g.add_argument("name", nargs="?", help='disease name, e.g. "Kidney Failure"')
    g.add_argument("--model", required=True, help="run folder, run id, saved folder or Hub id")
    g.add_argument("--names-file", type=Path, help="bulk: a text file of disease names, one per line (use with --out)")
    g.add_argument("--whole-table", action="store_true", help="bulk: every name of the run's own data (use with --out)")
    g.add_argument("--out", type=Path, help="bulk: the CSV to write (name, generated, reference, score); progress "
                   "goes to stderr")
    _add_sampling(g)

    e = sub.add_parser("evaluate", help="loss, perplexity and overlap scores of a run (JSON): phrase P/R/F1 for "
                       "comma lists, ROUGE-L/ROUGE-1 for free text; on its validation rows (unseen) and on as many "
                       "of its training rows (taught), fine-tuned and base, beside a constant answer and a name "
                       "lookup from the training rows; the same scores as a table on stderr")
    e.add_argument("--model", required=True, help="run folder or run id")
    e.add_argument("--data", help="evaluate on this source's validation split instead of the run's own")
    size = e.add_mutually_exclusive_group()
    size.add_argument(EVAL_ROWS.cli_flag, metavar="N", type=int, default=EVAL_ROWS.default,
                      help=f"score N validation rows (unseen) and as many training rows (taught), each a seeded "
                      f"sample spread across names, as the Evaluate tab does; default {EVAL_ROWS.default} (the "
                      "Evaluate tab's)")
    size.add_argument("--all", action="store_true", help="score every validation row (and as many training rows) "
                      "instead of a sample: minutes on CPU for a larger table")
    e.add_argument("--no-base", action="store_true", help="skip the base-model comparison")
    sampled = e.add_argument_group("sampled pass", "Greedy decoding only by default, as on the Evaluate tab. Any "
                                   "of these flags adds a sampled pass with those settings (the others at generate's "
                                   "defaults); --temperature 0 keeps it greedy.")
    for s in SAMPLING_FLAGS:  # default None: only a flag given asks for the sampled pass
        _add_setting(sampled, s, shown=s.default)

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
    u = sub.add_parser("push", help="upload a run to the Hugging Face Hub (token from HF_TOKEN or a saved hf auth "
                                    "login)")
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
    from .memory import gib
    from .offline import with_offline_fallback
    from .trainer import EpochResult, Progress, run_training

    store = RunStore(a.output_dir) if a.output_dir else a.store
    if a.resume and Path(a.resume).is_dir():  # the "run folder:" line train printed works as well as the id
        store, a.resume = RunStore(Path(a.resume).resolve().parent), Path(a.resume).resolve().name
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
        train = train.with_(model=ModelSpec.parse(train.model, store, allow_paths=True).target)
        if a.offline_fallback:
            data, train, notices = with_offline_fallback(data, train)
            for n in notices:
                say(f"notice: {n}", file=sys.stderr)
        else:
            _refuse_missing_offline(data, train)
        prepared = prepare(data)
        say(prepared.summary())
    bar = tqdm(total=0, unit="step", leave=False, disable=None if is_main_process() else True)

    def on_event(ev) -> None:
        if isinstance(ev, Progress):
            bar.total = ev.total_steps
            bar.update(ev.step - bar.n)
            if ev.memory_bytes:  # live memory and tokens seen beside the step count
                bar.set_postfix_str(f"{gib(ev.memory_bytes)} in use, {ev.tokens_seen or 0:,} tokens seen",
                                    refresh=False)
        elif isinstance(ev, EpochResult):
            bar.clear()
            say(f"epoch {ev.epoch:>3}  train_loss {ev.train_loss:.4f}  val_loss {ev.val_loss:.4f}  "
                f"{_score_field(ev)}{ev.epoch_seconds:6.1f}s  {ev.tokens_per_sec:7.0f} tok/s  lr {ev.learning_rate:.2e}"
                f"{'  *best' if ev.is_best else ''}{'  kept' if ev.is_kept else ''}")

    stop = threading.Event()
    try:
        summary = run_training(data, train, store, on_event, stop, prepared=prepared, resume=a.resume)
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


def _refuse_missing_offline(data: C.DataConfig, train: C.TrainConfig) -> None:
    """The CLI trains what was asked or nothing: a Hub model or dataset that cannot be downloaded is refused in
    one sentence (exit 2, no run folder) unless ``--offline-fallback`` was given.  The page swaps in the scratch
    model and the sample instead, with a notice on screen; a command line in a script has no screen."""
    from .offline import missing_offline

    why, missing = missing_offline(data, train)
    if not missing:
        return
    model, dataset = missing.get("model"), missing.get("data")
    what = " and ".join(x for x in (model and f"the model '{model}'", dataset and f"the dataset '{dataset}'") if x)
    swap = " ".join(x for x in (model and "the small scratch model", dataset and "on the bundled sample") if x)
    flags = " ".join(x for x in (model and "--model scratch", dataset and "--data sample") if x)
    raise CliError(f"{why[0].upper()}{why[1:]}, so {what} cannot be downloaded; pass --offline-fallback to train "
                   f"{swap} instead, or {flags}.")


def _score_field(ev: EpochResult) -> str:
    """``score taught 0.412 unseen 0.105  ``: the per-epoch sample's greedy scores ("-" for a set not scored)."""
    if ev.taught_score is None and ev.unseen_score is None:
        return ""
    show = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    return f"score taught {show(ev.taught_score)} unseen {show(ev.unseen_score)}  "


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
    from .generation import generate, load_for_serving

    bulk = a.names_file is not None or a.whole_table
    if bulk == (a.name is not None) or bulk != (a.out is not None) or (a.names_file and a.whole_table):
        raise CliError("give a disease name, or --names-file FILE (or --whole-table) with --out CSV")
    settings = _sampling(a)
    target = generation_target(a.model, a.store, allow_paths=True)
    if a.whole_table and target.run is None:  # before loading (or downloading) a model it would not use
        raise CliError("--whole-table needs a run (its own data's names), not a Hub model or a model folder")
    model, tok = load_for_serving(target.model)  # as the app serves it (bf16 on CPUs with native bf16)
    if bulk:
        return _generate_many(a, model, tok, settings, target.run)
    for text in generate(model, tok, a.name, settings):
        print(f"{a.name} | {text}")
    return 0


def _generate_many(a: argparse.Namespace, model, tok, settings: C.GenerationSettings, run: Run | None) -> int:
    import time

    from .bulk import generate_many, parse_names, table_names, write_csv

    if a.whole_table:
        names = table_names(run)  # a run: cmd_generate refused anything else
    else:
        try:
            names = parse_names(a.names_file.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise CliError(f"{a.names_file} is not UTF-8 text (one disease name per line)") from None
    shown = [0.0]

    def progress(done: int, total: int, row: dict) -> None:
        if done == total or time.monotonic() - shown[0] >= 1.0:  # about once a second, and the last one
            shown[0] = time.monotonic()
            say(f"generated {done} of {total} names", file=sys.stderr)

    result = generate_many(model, tok, names, settings, run, on_row=progress)
    say(f"{result.summary()} CSV: {write_csv(result, a.out)}")
    return 0


def _run(spec: str, store: RunStore) -> Run:
    """A run by its folder (or its ``best/``) or by its name in ``store``, opened for use."""
    run = find_run(spec, store, allow_paths=True)
    store.repair(run)
    return run


def _evaluation_bar(a: argparse.Namespace, sampling: C.GenerationSettings | None):
    """``(progress callback for evaluate_run, close)``: a line on stderr saying how many rows are scored and how
    to change that, then a bar of generations (stderr too, even in a log: stdout is the JSON)."""
    import time

    from tqdm.auto import tqdm

    state: dict = {}

    def progress(ev) -> None:
        if ev.done == 0:
            sample = ("a sample; --all for every row, --limit N for another size" if ev.unseen < ev.available
                      else "every validation row; --limit N for a sample")
            passes = "greedy" + (" and sampled" if sampling is not None else "")
            models = "fine-tuned and base model" if not a.no_base else "fine-tuned model"
            say(f"Scoring {ev.unseen} unseen + {ev.taught} taught rows ({sample}): {passes}, {models}, "
                f"{ev.total} generations.", file=sys.stderr)
            state["started"] = time.monotonic()
            state["bar"] = tqdm(total=ev.total, unit="gen", desc="evaluate", file=sys.stderr, dynamic_ncols=True)
        else:
            state["bar"].update(ev.done - state["bar"].n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()
            say(f"Scored in {time.monotonic() - state['started']:.1f} s.", file=sys.stderr)

    return progress, close


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .baselines import format_table
    from .data import prepare
    from .evaluation import evaluate_run

    run = _run(a.model, a.store)
    frame = None
    if a.data:
        saved = run.record().data
        if saved is None:
            raise CliError(f"Run {run.run_id} has no usable data settings to read {a.data} with.")
        frame = prepare(saved.with_(source=a.data)).val
    given = {s.name: getattr(a, _dest(s)) for s in SAMPLING_FLAGS if getattr(a, _dest(s)) is not None}
    sampling = C.GenerationSettings(**given) if given else None
    if sampling is not None and sampling.greedy:
        sampling = None
    progress, close = _evaluation_bar(a, sampling)
    try:
        result = evaluate_run(run.path, frame, sampling=sampling, include_base=not a.no_base,
                              limit=None if a.all else a.limit, progress=progress)
    finally:
        close()
    result.pop("table"), result.pop("taught_table")
    print(json.dumps(result, indent=2))
    print(format_table(result), file=sys.stderr)  # for people; stdout stays one JSON document
    return 0


def cmd_delete(a: argparse.Namespace) -> int:
    print(a.store.delete(a.run))
    return 0


def cmd_runs(a: argparse.Namespace) -> int:
    runs = a.store.list()
    for r in runs:
        print(run_label(r))
    if not runs:
        print(f"no runs in {a.store.root}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .share import export_run_zip

    if a.format == "gguf":
        return _export_gguf(a)
    run = _run(a.run, a.store)
    say(f"Exporting run {run.run_id}{' (LoRA merged into its base)' if a.merged else ''} to {a.out} …",
        file=sys.stderr)
    print(f"exported: {export_run_zip(run, a.out, merged=a.merged)}")
    return 0


def _export_gguf(a: argparse.Namespace) -> int:
    from .gguf_export import estimate_run, export_run_gguf

    run = _run(a.run, a.store)
    print(f"estimate: {estimate_run(run.path, a.gguf_type).text()}", flush=True)
    path = export_run_gguf(run.path, a.out, a.gguf_type)
    print(f"exported: {path} ({path.stat().st_size:,} bytes)")
    print(f"Ollama: ollama create {run.run_id.lower()} -f {path.with_suffix('.Modelfile')}")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    from .share import hub_token, import_run_from_hub, import_run_zip

    src = Path(a.source).expanduser()
    if src.exists() or src.suffix.lower() == ".zip":
        say(f"Importing {src} (checking every file before anything is written) …", file=sys.stderr)
        run = import_run_zip(src, a.store)
    else:
        say(f"Downloading {a.source} from the Hugging Face Hub …", file=sys.stderr)
        run = import_run_from_hub(a.source, a.store, token=hub_token())  # the owner's own door
    print(f"imported run {run.run_id}: {run.path}")
    return 0


def cmd_push(a: argparse.Namespace) -> int:
    from .share import hub_token, push_run_to_hub

    run = _run(a.run, a.store)
    say(f"Uploading run {run.run_id} to {a.repo_id} on the Hugging Face Hub …", file=sys.stderr)
    url = push_run_to_hub(run, a.repo_id, token=hub_token(), private=not a.public,
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
        args.store = RunStore(args.runs_dir)  # the one owner of the runs folder, for every command
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
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in a log file for the report
        print(f"error: {internal_error_line(exc).replace('the server log', _log_traceback(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
