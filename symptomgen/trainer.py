"""Fine-tuning with ``transformers.Trainer`` and a callback that reports each epoch.

``run_training`` is synchronous: it calls ``on_event`` with ``RunStarted`` once the run
folder exists, a ``Progress`` record after each optimizer step, an ``EpochResult`` after
each epoch (``reporter.EpochReporter`` measures it) and the ``RunSummary`` last; the server
runs it in a child process (``jobs.JobManager``).  An event passed as ``stop`` (anything with
``is_set()``) is honoured within one optimizer step.  The best-validation weights are saved
to ``runs/<id>/best``.  Whatever exception ends a run, its record says "failed" and why.

Under torchrun every rank trains and only the main process (``settings.is_main_process``)
writes the run folder.  ``TrainingHooks`` are the explicit ways in for measurements
and experiments (the benchmark), so nothing here needs monkeypatching.
"""
from __future__ import annotations

import gc
import json
import math
import os
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from . import cputune, outcomes
from . import lora as lora_mod
from . import runs as runs_mod
from .batching import (
    Deferred,
    EncodedDataset,
    PackCollator,
    PadCollator,
    ShuffledPhrases,
    encode_frame,
    packing_is_exact,
    plain_backend,
)
from .config import DataConfig, TrainConfig, is_scratch
from .data import PreparedData, format_example, prepare
from .epochscore import EpochScorer
from .errors import InvalidInput, TrainingFailed, UserError, is_disk_full
from .errors import first_line as _first_line
from .events import EpochResult, Event, Progress, RunStarted, RunSummary
from .hub import looks_like_hub_id
from .layout import DEFAULT_RUNS_DIR
from .lmloss import LabelledLossTrainer
from .modeling import count_parameters, load_for_training, load_pretrained
from .records import RunRecord, RunStatus
from .reporter import EpochReporter, device_name
from .scoring import LIST
from .settings import is_main_process, world_size
from .store import RunStore

__all__ = ["EpochReporter", "EpochResult", "Event", "Progress", "RunSummary", "TrainingHooks", "run_training",
           "training_arguments"]


@dataclass(frozen=True)
class TrainingHooks:
    """Explicit ways in for measurements and experiments; the defaults are what the app and CLI run."""

    callbacks: tuple[TrainerCallback, ...] = ()
    """Extra Trainer callbacks, called after ``EpochReporter`` for each Trainer event."""
    args_overrides: Mapping[str, Any] = field(default_factory=dict)
    """``TrainingArguments`` fields set on top of ``training_arguments()``."""
    make_collator: Callable[[int], Callable[[list[dict]], dict]] | None = None
    """Builds the training batches' collator from the pad token id (validation batches its own rows).  None (the
    default): ``PackCollator`` (padding-free, rows in random order) when ``packing_is_exact`` holds for the model,
    else ``PadCollator`` (length grouping as ``TrainConfig.group_by_length`` says)."""
    prepare_model: Callable[[Any], None] | None = None
    """Called with the model right after it is loaded (e.g. to pick an attention implementation)."""
    phase: Callable[[str], AbstractContextManager] = nullcontext
    """Wraps the reporter's ``"eval"`` (validation pass) and ``"save_best"`` (best-model save), e.g. to time them."""
    trainer_class: type[Trainer] = LabelledLossTrainer
    """The Trainer to build (a subclass may change e.g. its sampler, for an experiment).  The default,
    ``lmloss.LabelledLossTrainer``, runs the LM head and the loss over labelled positions only and never builds the
    whole batch's logits (``bench/RESULTS.md``, section ``chunked_loss``); ``transformers.Trainer`` is the model's
    own loss."""
    clock: Callable[[], float] = time.monotonic
    """Seconds, read once per optimizer step for the time budget (``max_minutes``) and the time-left estimate."""


def training_arguments(cfg: TrainConfig, output_dir: Path,
                       overrides: Mapping[str, Any] | None = None) -> TrainingArguments:
    """The Trainer settings for a run (mixed precision on CUDA, length grouping, epoch logging).

    ``overrides`` (``TrainingHooks.args_overrides``) replaces fields on top, for experiments.
    """
    check_tracker(cfg.report_to)
    cuda = torch.cuda.is_available()
    # CPUs with native bf16 (AVX512-BF16/AMX) train ~2x faster under bf16 autocast; fp32 master weights stay.
    cpu_bf16 = not cuda and cputune.native_bf16()
    bf16 = (cuda and torch.cuda.is_bf16_supported()) or cpu_bf16
    if not cuda:
        cputune.keep_freed_memory()  # opt-in: fewer page faults per step for more RSS (bench/RESULTS.md)
    # Without CUDA, accelerate only goes data-parallel when told to use the CPU; otherwise every torchrun
    # rank trains alone, and each believes it is rank 0 (world size 1).  Single-process runs keep MPS.
    cpu_ddp = not cuda and world_size() > 1
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=("constant_with_warmup" if cfg.warmup_ratio else "constant")
        if cfg.scheduler == "constant" else cfg.scheduler,
        max_grad_norm=1.0,
        label_smoothing_factor=cfg.label_smoothing,
        seed=cfg.seed,
        data_seed=cfg.seed,
        eval_strategy="no",  # we validate per real token ourselves in EpochReporter
        logging_strategy="epoch",
        save_strategy="epoch" if cfg.save_checkpoints else "no",
        save_total_limit=1,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        bf16=bf16,
        fp16=cuda and not bf16,
        report_to=cfg.report_to,  # "none", or a tracker checked by check_tracker (event files: the run's logs/)
        **({"project": "symptomgen"} if cfg.report_to == "trackio" else {}),  # trackio's project name
        label_names=["labels"],  # a PeftModel's forward(**kwargs) hides it from the Trainer's own detection
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_pin_memory=cuda,
        log_level="error",
        logging_nan_inf_filter=False,  # a NaN loss must surface, not be averaged away
        use_cpu=cpu_ddp or cpu_bf16,  # accelerate applies CPU autocast only with use_cpu
        ddp_backend="gloo" if cpu_ddp else None,
        ddp_find_unused_parameters=False,  # every GPT-2 weight is used; True costs an extra graph walk per step
    )
    return replace(args, **overrides) if overrides else args


TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",)}


def check_tracker(report_to: str) -> None:
    """Refuse, in one sentence, a tracker whose package is not installed (before any run folder exists)."""
    import importlib.util

    packages = TRACKER_PACKAGES.get(report_to, ())
    if packages and not any(importlib.util.find_spec(p) is not None for p in packages):
        raise InvalidInput(f"Experiment tracking with {report_to} needs the {' or '.join(packages)} package, which "
                           f"is not installed here (pip install {packages[-1]}); choose 'none' to train without it.")


def _shared_run_id(cfg: TrainConfig, store: RunStore, data: DataConfig | None = None) -> str:
    """One run id for all ranks of a torchrun job (rank 0 picks, the others receive); it names the data and the
    model."""
    run_id = store.new_id(cfg.model, data.source if data is not None else None)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [run_id]
        torch.distributed.broadcast_object_list(box, src=0)
        run_id = box[0]
    return run_id


@dataclass(frozen=True)
class _BestSoFar:
    """The best validation so far and the epochs since it (a resumed run goes on counting patience)."""

    val_loss: float = math.inf
    epoch: int | None = None
    bad_epochs: int = 0


@dataclass
class _Setup:
    """Everything a run needs before its Trainer is built, new or resumed."""

    run: runs_mod.Run
    train_cfg: TrainConfig
    model: Any
    tokenizer: Any
    train_df: pd.DataFrame
    val_df: pd.DataFrame
    args: TrainingArguments
    checkpoint: Path | None = None
    best: _BestSoFar = _BestSoFar()
    prior_seconds: float = 0.0
    """Seconds the run trained before this session (a resumed run's summary counts the whole run)."""


def run_training(data_cfg: DataConfig, train_cfg: TrainConfig, store: RunStore | Path | str = DEFAULT_RUNS_DIR,
                 on_event: Callable[[Event], None] = lambda e: None, stop: threading.Event | None = None,
                 prepared: PreparedData | None = None, resume: str | None = None,
                 hooks: TrainingHooks | None = None) -> RunSummary:
    """Train one run to the end (or stop/early stop) and return how it ended.

    ``store`` holds the runs (a folder is taken as its store: ``jobs.py`` passes one).  ``resume`` names a run to
    continue from its last checkpoint (its saved settings replace ``data_cfg``/``train_cfg``).  ``hooks`` are for
    measurements and experiments only.
    """
    started = time.perf_counter()
    store = RunStore.at(store)
    hooks = hooks or TrainingHooks()
    marked: list[runs_mod.Run] = []  # the run folder, once this call has marked it running

    def running(run: runs_mod.Run) -> None:
        marked.append(run)
        on_event(RunStarted(run.path))  # first: a follower can mark the run should this process die

    try:
        setup = (_resume_run(store, resume, hooks, running) if resume
                 else _start_new_run(data_cfg, train_cfg, store, prepared, hooks, running))
        return _run_setup(setup, hooks, started, on_event, stop)
    except BaseException as exc:
        failure = _failed(marked[0] if marked else None, exc)
        if failure is exc:
            raise
        raise failure from exc


def _failed(run: runs_mod.Run | None, exc: BaseException) -> BaseException:
    """Record why the run ended on ``exc`` (a run never stays "running" after an exception), and return what to
    raise: a user's error as is, a full disk or another file or memory problem as ``TrainingFailed`` (one sentence,
    no path), anything else (a bug) as is, for its traceback."""
    outcome = outcomes.of_exception(exc)
    if run is not None and is_main_process():
        try:
            if run.record().status is RunStatus.RUNNING:
                run.update(status=outcome.status, message=outcome.message)
        except OSError:
            pass  # e.g. the disk is still full: the record keeps this process's id, which reads as interrupted
    if outcome.status is RunStatus.INTERRUPTED or isinstance(exc, UserError):
        return exc
    if is_disk_full(exc) or isinstance(exc, (OSError, MemoryError)):
        return TrainingFailed(outcome.message)
    return exc


def _run_setup(setup: _Setup, hooks: TrainingHooks, started: float, on_event: Callable[[Event], None],
               stop: threading.Event | None) -> RunSummary:
    """Train a run whose folder is ready, from its setup to its summary."""
    cfg = setup.train_cfg
    rec = setup.run.record()
    kind = rec.target_kind or LIST
    # Rows are encoded as batches draw them: nothing is tokenized before the first step (issue 25).
    train_ds = (ShuffledPhrases(setup.tokenizer, setup.train_df, cfg.max_length, cfg.loss_on, cfg.seed,
                                rec.extra_target_column) if cfg.shuffle_phrases and kind == LIST
                else EncodedDataset(setup.tokenizer, setup.train_df, cfg.max_length, cfg.loss_on))
    train_tokens, val_rows = _after_first_step(setup, train_ds)
    reporter = EpochReporter(setup.run if is_main_process() else None, setup.tokenizer, val_rows,
                             train_tokens, cfg, on_event, stop, setup.best.val_loss, setup.best.epoch,
                             setup.best.bad_epochs, phase=hooks.phase, clock=hooks.clock,
                             scorer=EpochScorer(setup.train_df, setup.val_df, cfg.score_rows, kind,
                                                rec.extra_target_column) if cfg.score_rows else None)
    if setup.checkpoint is not None:  # resumed: the epochs before the checkpoint count as done
        reporter.epochs_done = int(round(_checkpoint_epoch(setup.checkpoint)))
    if setup.checkpoint is not None and cfg.keep in ("last", "score"):  # resumed: best/ holds the epoch it kept
        reporter.kept_epoch = setup.run.best_info().epoch
        reporter.best_score = _kept_score(setup.run, reporter.kept_epoch)
    # The Trainer is built inside the call, so its optimizer state is freed as soon as training ends.
    oom = _train(_build_trainer(setup, train_ds, reporter, hooks), setup)
    return _finish(setup, reporter, oom, started, on_event)


EAGER_ROWS = 2000
"""Tables up to this many rows (training and validation) count and encode for the reporter before the first step
(milliseconds); larger ones after it, in threads."""


def _after_first_step(setup: _Setup, train_ds: EncodedDataset) -> tuple[Deferred[int], Deferred[list[dict]]]:
    """The training rows' token count (tokens seen, tokens/s) and the validation rows, encoded and sorted by length
    (validation batches then carry almost no padding; the loss is a sum over tokens, so order-free).  The reporter
    needs neither before the first step: for a large table they are worked out in threads it starts after that step
    (80,000 + 20,000 rows: about 7 s of encoding, which used to come first), each with its own copy of a fast
    tokenizer's backend (``plain_backend``: its batch calls free the GIL, so training steps are not held up)."""
    cfg = setup.train_cfg

    def count() -> int:
        return sum(train_ds.count_lengths(plain_backend(setup.tokenizer)))

    def val_rows() -> list[dict]:
        rows = encode_frame(setup.tokenizer, setup.val_df, cfg.max_length, cfg.loss_on, plain_backend(setup.tokenizer))
        return sorted(rows, key=lambda r: len(r["input_ids"]))

    make = Deferred.now if len(setup.train_df) + len(setup.val_df) <= EAGER_ROWS else Deferred
    return make(count), make(val_rows)


def _kept_score(run: runs_mod.Run, epoch: int | None) -> float | None:
    """The per-epoch sample score (taught and unseen mean) recorded for ``epoch``, or None (older runs)."""
    metrics = run.metrics()
    row = metrics[metrics["epoch"] == epoch] if epoch is not None and len(metrics) else metrics.iloc[:0]
    if not len(row):
        return None
    found = [float(row[c].iloc[0]) for c in ("taught_score", "unseen_score") if pd.notna(row[c].iloc[0])]
    return sum(found) / len(found) if found else None


def _start_new_run(data_cfg: DataConfig, train_cfg: TrainConfig, store: RunStore, prepared: PreparedData | None,
                   hooks: TrainingHooks, running: Callable[[runs_mod.Run], None] = lambda run: None) -> _Setup:
    """Load the starting model and make the run folder (the main process; the other ranks share its id)."""
    prepared = prepared or prepare(data_cfg)
    train_df, val_df = prepared.train, prepared.val
    try:
        model, tokenizer = load_for_training(
            train_cfg, lambda: [format_example(p, t) for p, t in zip(train_df["prompt"], train_df["target"])])
    except (MemoryError, RuntimeError) as exc:
        if not _is_oom(exc):
            raise
        raise TrainingFailed("Out of memory while building the model: choose a smaller model.") from None
    if hooks.prepare_model:
        hooks.prepare_model(model)
    # Continuing from an earlier run: record that run by name (a server path must not reach labels, model
    # cards or pushed repos), and keep a copy of its weights as this run's base, so the run stays whole
    # when the earlier one is deleted.
    parent = runs_mod.parent_run_id(train_cfg.model)
    if parent:
        train_cfg = train_cfg.with_(model=parent)
    # LoRA: the adapters apply to a Hub model by id, to anything else through a copy in the run's base/.
    lora_base = None
    if train_cfg.lora:
        lora_mod.check_targets(model, train_cfg)  # a mistyped layer name fails before the run folder exists
        own = is_scratch(train_cfg.model) or parent or not looks_like_hub_id(train_cfg.model) \
            or Path(train_cfg.model).expanduser().exists()
        lora_base = lora_mod.OWN_BASE if own else train_cfg.model
    # Initialises torch.distributed under torchrun; the output folder is known only once the id is shared.
    args = training_arguments(train_cfg, store.root, hooks.args_overrides)
    run_id = _shared_run_id(train_cfg, store, data_cfg)
    if is_main_process():
        run = store.create(run_id, RunRecord(
            data=data_cfg, train=train_cfg, parameters=count_parameters(model), world_size=args.world_size,
            train_rows=len(train_df), val_rows=len(val_df), device=device_name(), parent_run=parent,
            lora_base=lora_base, target_kind=prepared.target_kind,
            split_by=prepared.split_stats.mode if prepared.split_stats is not None else None,
        ), train_df, val_df, unique=args.world_size == 1)
        running(run)
        if is_scratch(train_cfg.model) or parent or lora_base == lora_mod.OWN_BASE:
            run.save_model(model, tokenizer, "base")  # the starting model, for before/after comparisons
    else:
        run = store.get(run_id, must_exist=False)  # rank 0 makes it
    if train_cfg.lora:  # after base/ is saved: wrapping injects the adapters into the model's own layers
        model = lora_mod.apply_lora(model, train_cfg, None if lora_base == lora_mod.OWN_BASE else lora_base)
    args.run_name = run_id  # trackio's run name
    args.output_dir = str(run.checkpoints_dir)
    return _Setup(run, train_cfg, model, tokenizer, train_df, val_df, args)


def _resume_run(store: RunStore, resume: str, hooks: TrainingHooks,
                running: Callable[[runs_mod.Run], None] = lambda run: None) -> _Setup:
    """Reload a stopped or interrupted run from its last checkpoint, with its saved settings and best epoch."""
    run = store.get(resume)
    store.repair(run)  # a kill in the middle of saving best/ (never while its trainer lives)
    # Main process only checks liveness: under torchrun it marks the run "running" before slower ranks get here.
    problem = run.resume_problem(check_live=is_main_process())
    if problem:
        raise TrainingFailed(problem)
    saved, checkpoint = run.record(), run.last_checkpoint()
    train_df, val_df = run.split_frames()
    # A LoRA checkpoint holds the adapters only: build the base and fresh adapters, the Trainer loads their state.
    model, tokenizer = load_pretrained(lora_mod.base_for_run(run.path, saved.lora_base) if saved.train.lora
                                       else checkpoint)
    if hooks.prepare_model:
        hooks.prepare_model(model)
    if saved.train.lora:
        model = lora_mod.apply_lora(model, saved.train, None if saved.lora_base == lora_mod.OWN_BASE
                                    else saved.lora_base)
    done = int(round(_checkpoint_epoch(checkpoint)))
    metrics = run.metrics()
    metrics = metrics[metrics["epoch"] <= done] if len(metrics) else metrics
    best = _BestSoFar()
    if len(metrics):
        row = metrics.loc[metrics["validation_loss"].idxmin()]
        # Epochs since the best one: patience goes on counting from there.
        best = _BestSoFar(float(row["validation_loss"]), int(row["epoch"]), done - int(row["epoch"]))
    # The time already spent: the record's (a stopped run's), else its finished epochs' (a killed one).
    prior = saved.seconds if saved.seconds else float(metrics["epoch_duration_sec"].sum()) if len(metrics) else 0.0
    if is_main_process():
        run.truncate_metrics(done)
        run.truncate_steps(done)
        run.update(status=RunStatus.RUNNING, pid=os.getpid())
        running(run)
    args = training_arguments(saved.train, run.checkpoints_dir, hooks.args_overrides)
    return _Setup(run, saved.train, model, tokenizer, train_df, val_df, args, checkpoint, best, float(prior))


def _build_trainer(setup: _Setup, train_ds: EncodedDataset, reporter: EpochReporter,
                   hooks: TrainingHooks) -> Trainer:
    """The Trainer for this run: the reporter first, then any extra callbacks."""
    collator = training_collator(setup.model, setup.tokenizer.pad_token_id, hooks.make_collator)
    if getattr(collator, "packed", False) and "train_sampling_strategy" not in hooks.args_overrides:
        # Packed batches carry no padding whatever their rows' lengths: length grouping would only make batches
        # less random, so rows are shuffled (batch_size rows per step, as before).
        setup.args.train_sampling_strategy = "random"
    trainer = hooks.trainer_class(model=setup.model, args=setup.args, train_dataset=train_ds,
                                  processing_class=setup.tokenizer, data_collator=collator,
                                  callbacks=[reporter, *hooks.callbacks])
    _report_step_losses(trainer, reporter)
    _report_grad_norms(trainer, reporter)
    # Records are reported through on_event; the Trainer's own printing would duplicate them.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    for cb in trainer.callback_handler.callbacks:  # TensorBoard writes into the run (default: checkpoints/runs/)
        if type(cb).__name__ == "TensorBoardCallback":
            cb.logging_dir = str(setup.run.path / "logs")
    return trainer


def _tap(owner, name: str, sink: Callable) -> None:
    """Replace ``owner.name`` with a wrapper that also hands each result to ``sink`` (and returns it unchanged)."""
    original = getattr(owner, name)

    def tapped(*args, **kwargs):
        result = original(*args, **kwargs)
        sink(result)
        return result

    setattr(owner, name, tapped)


def _report_step_losses(trainer: Trainer, reporter: EpochReporter) -> None:
    """Hand each micro-batch's loss to the reporter (for the step curve): callbacks are not given it, and
    ``training_step`` is the Trainer's public per-batch method whose result is that loss."""
    _tap(trainer, "training_step", reporter.add_step_loss)


def _report_grad_norms(trainer: Trainer, reporter: EpochReporter) -> None:
    """Hand each optimizer step's gradient norm (before clipping) to the reporter.  The Trainer computes it with
    accelerate's public ``Accelerator.clip_grad_norm_`` (``max_grad_norm`` is 1.0; at 0 it still asks it, with an
    infinite limit) and keeps it in a local variable that callbacks see only in the epoch's ``on_log``; the result
    is a tensor the Trainer already made, kept as is (the reporter syncs once per window, with the loss)."""
    _tap(trainer.accelerator, "clip_grad_norm_", reporter.add_grad_norm)


def training_collator(model, pad_token_id: int,
                      make_collator: Callable[[int], Callable[[list[dict]], dict]] | None = None):
    """The training batches' collator: ``make_collator``'s if given; else padding-free ``PackCollator`` when the
    model keeps packed rows apart (checked on the model itself), else ``PadCollator``."""
    if make_collator is not None:
        return make_collator(pad_token_id)
    return PackCollator(pad_token_id) if packing_is_exact(model) else PadCollator(pad_token_id)


def _train(trainer: Trainer, setup: _Setup) -> bool:
    """Run the Trainer; True when it ran out of memory (the best finished epoch is kept).

    Any other error marks the run failed and is raised as ``TrainingFailed``.
    """
    # The Trainer starts with a full garbage collection (accelerate's free_memory): 0.25 s before the first step
    # over the objects that already exist (the table, the tokenizer, the libraries).  Frozen, they are skipped;
    # what they leave cyclic is collected once training ends.
    gc.freeze()
    try:
        trainer.train(resume_from_checkpoint=str(setup.checkpoint) if setup.checkpoint else None)
    except (MemoryError, RuntimeError) as exc:
        if not _is_oom(exc):
            if is_main_process():
                setup.run.update(status=RunStatus.FAILED, message=_first_line(exc))
            raise outcomes.RunFailed(_first_line(exc)) from exc
        return True
    finally:
        gc.unfreeze()
    return False


def _finish(setup: _Setup, reporter: EpochReporter, oom: bool, started: float,
            on_event: Callable[[Event], None]) -> RunSummary:
    """How the run ended, recorded in its folder (main process) and reported as the last event."""
    outcome = outcomes.of_training(reporter, setup.train_cfg, oom, len(setup.train_df), setup.run.record().split_by)
    status, message = outcome.status, outcome.message
    summary = RunSummary(run_dir=setup.run.path, status=status, epochs_done=reporter.epochs_done,
                         best_epoch=reporter.best_epoch,
                         best_val_loss=None if reporter.best_epoch is None else reporter.best_val,
                         seconds=setup.prior_seconds + time.perf_counter() - started, message=message,
                         kept_epoch=reporter.kept_epoch)
    if is_main_process():
        setup.run.update(status=status, message=message, seconds=round(summary.seconds, 2))
        if status.completed:  # it can never resume: its checkpoint's optimizer state is dead weight
            setup.run.drop_resume_state()
    on_event(summary)
    return summary


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in text \
        or "can't allocate memory" in text or "failed to allocate" in text


def _checkpoint_epoch(checkpoint: Path) -> float:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return float(state.get("epoch", 0.0))

