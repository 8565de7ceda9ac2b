"""Fine-tuning with ``transformers.Trainer`` and a callback that reports each epoch.

``run_training`` is synchronous and calls ``on_event`` with ``Progress`` (each
optimizer step) and ``EpochResult`` (each epoch) records; ``iter_training`` runs
the same thing in a worker thread and yields the records as they happen, for a
UI to stream.  A ``threading.Event`` passed as ``stop`` is honoured within one
optimizer step.  The best-validation weights are saved to ``runs/<id>/best``.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .errors import first_line as _first_line, TrainingFailed
from . import cputune
from . import runs as runs_mod
from .batching import EncodedDataset, PadCollator, encode_frame, mean_token_loss
from .config import SCRATCH_MODEL, DataConfig, TrainConfig
from .data import PreparedData, format_example, prepare
from .modeling import count_parameters, load_for_training, load_pretrained


@dataclass(frozen=True)
class Progress:
    """Position within training, sent after every optimizer step."""

    step: int
    total_steps: int
    epoch: float


@dataclass(frozen=True)
class EpochResult:
    """What one finished epoch achieved (losses are per real token)."""

    epoch: int
    train_loss: float
    val_loss: float
    epoch_seconds: float
    tokens_per_sec: float
    learning_rate: float
    is_best: bool

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.val_loss, 50.0))

    def to_dict(self) -> dict:
        return {**asdict(self), "perplexity": self.perplexity}


@dataclass(frozen=True)
class RunSummary:
    """How a run ended."""

    run_dir: Path
    status: str  # finished | stopped | early-stopped | failed
    epochs_done: int
    best_epoch: int | None
    best_val_loss: float | None
    seconds: float
    message: str = ""


Event = Progress | EpochResult | RunSummary


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


class EpochReporter(TrainerCallback):
    """Turns Trainer hooks into records; validates, keeps the best model, honours stop."""

    def __init__(self, run: runs_mod.Run | None, tokenizer, val_rows: list[dict], train_tokens: int,
                 cfg: TrainConfig, emit: Callable[[Event], None], stop: threading.Event | None,
                 best_val: float = math.inf, best_epoch: int | None = None, bad_epochs: int = 0):
        self.run, self.tokenizer, self.val_rows = run, tokenizer, val_rows
        self.train_tokens, self.cfg, self.emit, self.stop = train_tokens, cfg, emit, stop
        self.best_val, self.best_epoch = best_val, best_epoch
        self.bad_epochs = bad_epochs
        self.epochs_done = 0
        self.stopped = self.early_stopped = False
        self.error: str | None = None
        self._epoch_start = self._train_end = 0.0
        self._epoch_first_step = 0
        self._epoch_complete = False

    def on_epoch_begin(self, args, state, control, **kw):
        self._epoch_start = time.perf_counter()
        self._epoch_first_step = state.global_step
        self._epoch_complete = False

    def on_step_end(self, args, state, control, **kw):
        self.emit(Progress(state.global_step, state.max_steps, float(state.epoch or 0.0)))
        if self.stop is not None and self.stop.is_set():
            self.stopped = True
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kw):
        # A stop mid-epoch also ends the epoch loop; such a partial epoch is not reported.
        self._epoch_complete = not self.stopped
        self._train_end = time.perf_counter()

    def on_log(self, args, state, control, logs=None, model=None, **kw):
        if not logs or "loss" not in logs or not self._epoch_complete:
            return
        self._epoch_complete = False
        epoch = int(round(state.epoch or 0))
        train_loss = float(logs["loss"])
        val_loss = mean_token_loss(model, self.val_rows, self.tokenizer.pad_token_id, self.cfg.batch_size)
        model.train()
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            self.error = (f"Training diverged at epoch {epoch} (loss is not a number); try a lower learning "
                          "rate. The best earlier epoch is kept.")
            control.should_training_stop = True
            control.should_save = False
            return
        is_best = val_loss < self.best_val
        if is_best:
            self.best_val, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            if self.run is not None and state.is_world_process_zero:
                self.run.save_model(model, self.tokenizer)
        else:
            self.bad_epochs += 1
        seconds = time.perf_counter() - self._epoch_start
        train_seconds = max(self._train_end - self._epoch_start, 1e-9)
        # A resumed epoch runs only its remaining steps: count only their share of the epoch's tokens.
        steps_per_epoch = state.max_steps / max(args.num_train_epochs, 1)
        share = min(1.0, (state.global_step - self._epoch_first_step) / steps_per_epoch) if steps_per_epoch else 1.0
        result = EpochResult(epoch=epoch, train_loss=train_loss, val_loss=val_loss, epoch_seconds=seconds,
                             tokens_per_sec=self.train_tokens * share / train_seconds,
                             learning_rate=float(logs.get("learning_rate", self.cfg.learning_rate)),
                             is_best=is_best)
        self.epochs_done = epoch
        if self.run is not None and state.is_world_process_zero:
            self.run.append_metrics({
                **result.to_dict(), "training_loss": train_loss, "validation_loss": val_loss,
                "epoch_duration_sec": round(seconds, 3), "transformer": self.cfg.model,
                "batch_size": self.cfg.batch_size, "gpu": _device_name(), "tokens_per_sec": round(result.tokens_per_sec, 1),
            })
            self.run.update_config(best_epoch=self.best_epoch, best_val_loss=self.best_val, epochs_done=epoch)
        self.emit(result)
        if self.cfg.patience and self.bad_epochs >= self.cfg.patience:
            self.early_stopped = True
            control.should_training_stop = True


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    mps = getattr(torch.backends, "mps", None)
    return "Apple MPS" if mps is not None and mps.is_available() else "cpu"


def training_arguments(cfg: TrainConfig, output_dir: Path) -> TrainingArguments:
    """The Trainer settings for a run (mixed precision on CUDA, length grouping, epoch logging)."""
    cuda = torch.cuda.is_available()
    # CPUs with native bf16 (AVX512-BF16/AMX) train ~2x faster under bf16 autocast; fp32 master weights stay.
    cpu_bf16 = not cuda and cputune.native_bf16()
    bf16 = (cuda and torch.cuda.is_bf16_supported()) or cpu_bf16
    if not cuda:
        cputune.keep_freed_memory()  # opt-in: fewer page faults per step for more RSS (bench/RESULTS.md)
    # Without CUDA, accelerate only goes data-parallel when told to use the CPU; otherwise every torchrun
    # rank trains alone, and each believes it is rank 0 (world size 1).  Single-process runs keep MPS.
    cpu_ddp = not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
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
        seed=cfg.seed,
        data_seed=cfg.seed,
        eval_strategy="no",  # we validate per real token ourselves in EpochReporter
        logging_strategy="epoch",
        save_strategy="epoch" if cfg.save_checkpoints else "no",
        save_total_limit=1,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        bf16=bf16,
        fp16=cuda and not bf16,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_pin_memory=cuda,
        log_level="error",
        logging_nan_inf_filter=False,  # a NaN loss must surface, not be averaged away
        use_cpu=cpu_ddp or cpu_bf16,  # accelerate applies CPU autocast only with use_cpu
        ddp_backend="gloo" if cpu_ddp else None,
        ddp_find_unused_parameters=False,  # every GPT-2 weight is used; True costs an extra graph walk per step
    )


def _shared_run_id(cfg: TrainConfig, runs_dir: Path) -> str:
    """One run id for all ranks of a torchrun job (rank 0 picks, the others receive)."""
    run_id = runs_mod.new_run_id(cfg.model, runs_dir)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [run_id]
        torch.distributed.broadcast_object_list(box, src=0)
        run_id = box[0]
    return run_id


def run_training(data_cfg: DataConfig, train_cfg: TrainConfig, runs_dir: Path | str = runs_mod.DEFAULT_RUNS_DIR,
                 on_event: Callable[[Event], None] = lambda e: None, stop: threading.Event | None = None,
                 prepared: PreparedData | None = None, resume: str | None = None) -> RunSummary:
    """Train one run to the end (or stop/early stop) and return how it ended."""
    started = time.perf_counter()
    runs_dir = Path(runs_dir)
    best_val, best_epoch, checkpoint, bad_epochs = math.inf, None, None, 0
    if resume:
        run = runs_mod.resolve_run(runs_dir, resume)
        status_now = run.status()
        # Rank 0 only: under torchrun it marks the run "running" (its own pid) before slower ranks get here.
        if _rank() == 0 and run.is_live():
            raise TrainingFailed(f"Run {run.run_id} is still training (process {run.read_config().get('pid')}); "
                                 "stop it first, or wait for it to end.")
        if status_now in ("finished", "early-stopped"):
            raise TrainingFailed(f"Run {run.run_id} has already {status_now.replace('-', ' ')}; nothing to resume "
                                 "(start a new run to train longer).")
        saved = run.read_config()
        try:
            data_cfg = DataConfig.from_dict(saved["data"])
            train_cfg = TrainConfig.from_dict(saved["train"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingFailed(f"Run {run.run_id} has no usable saved settings to resume from "
                                 f"({_first_line(exc)}).") from None
        checkpoint = run.last_checkpoint()
        if checkpoint is None:
            raise TrainingFailed(f"Run {run.run_id} has no checkpoint to resume from.")
        train_df, val_df = run.split_frames()
        model, tokenizer = load_pretrained(checkpoint)
        done = int(round(_checkpoint_epoch(checkpoint)))
        metrics = run.metrics()
        metrics = metrics[metrics["epoch"] <= done] if len(metrics) else metrics
        if len(metrics):
            best_row = metrics.loc[metrics["validation_loss"].idxmin()]
            best_val, best_epoch = float(best_row["validation_loss"]), int(best_row["epoch"])
            bad_epochs = done - best_epoch  # epochs since the best one: patience goes on counting from there
        if _rank() == 0:  # a resumed torchrun job too: only rank 0 writes the run folder
            run.truncate_metrics(done)
            run.update_config(status="running", pid=os.getpid())
    else:
        prepared = prepared or prepare(data_cfg)
        train_df, val_df = prepared.train, prepared.val
        texts = [format_example(p, t) for p, t in zip(train_df["prompt"], train_df["target"])]
        try:
            model, tokenizer = load_for_training(train_cfg, texts)
        except (MemoryError, RuntimeError) as exc:
            if not _is_oom(exc):
                raise
            raise TrainingFailed("Out of memory while building the model: choose a smaller model.") from None
        # Continuing from an earlier run: record that run by name (a server path must not reach labels, model
        # cards or pushed repos), and keep a copy of its weights as this run's base, so the run stays whole
        # when the earlier one is deleted.
        parent = runs_mod.parent_run_id(train_cfg.model)
        if parent:
            train_cfg = train_cfg.with_(model=parent)
        args = training_arguments(train_cfg, runs_dir)  # initialises torch.distributed under torchrun
        run_id = _shared_run_id(train_cfg, runs_dir)
        run = None
        if args.process_index == 0:
            run = runs_mod.create_run(runs_dir, run_id, {
                "data": data_cfg.to_dict(), "train": train_cfg.to_dict(),
                "parameters": count_parameters(model), "world_size": args.world_size,
                "train_rows": len(train_df), "val_rows": len(val_df), "device": _device_name(),
                **({"parent_run": parent} if parent else {}),
            }, train_df, val_df, unique=args.world_size == 1)
            if train_cfg.model.lower() == SCRATCH_MODEL or parent:
                run.save_model(model, tokenizer, "base")  # the starting model, for before/after comparisons
        else:
            run = runs_mod.Run(runs_dir / run_id)
    is_main = _rank() == 0
    train_ds = EncodedDataset(encode_frame(tokenizer, train_df, train_cfg.max_length, train_cfg.loss_on))
    # Sorted by length, validation batches carry almost no padding (the loss is a sum over tokens: order-free).
    val_rows = sorted(encode_frame(tokenizer, val_df, train_cfg.max_length, train_cfg.loss_on),
                      key=lambda r: len(r["input_ids"]))
    if resume:
        args = training_arguments(train_cfg, run.checkpoints_dir)
    args.output_dir = str(run.checkpoints_dir)  # known only now: the run id is shared across ranks first
    reporter = EpochReporter(run if is_main else None, tokenizer, val_rows, train_ds.real_tokens, train_cfg,
                             on_event, stop, best_val, best_epoch, bad_epochs)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer,
                      data_collator=PadCollator(tokenizer.pad_token_id), callbacks=[reporter])
    # Records are reported through on_event; the Trainer's own printing would duplicate them.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    status, message = "finished", ""
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except (MemoryError, RuntimeError) as exc:
        if not _is_oom(exc):
            if is_main:
                run.update_config(status="failed", message=_first_line(exc))
            raise TrainingFailed(f"Training failed: {_first_line(exc)}") from exc
        status, message = "failed", OOM_MESSAGE
    finally:
        del trainer
    if reporter.error:
        status, message = "failed", reporter.error
    elif reporter.stopped:
        status, message = "stopped", ("Stopped on request; the best finished epoch is kept."
                                      if reporter.best_epoch is not None
                                      else "Stopped on request before the first epoch finished; nothing to keep.")
    elif reporter.early_stopped:
        status, message = "early-stopped", f"No validation improvement for {train_cfg.patience} epoch(s)."
    summary = RunSummary(run_dir=run.path, status=status, epochs_done=reporter.epochs_done,
                         best_epoch=reporter.best_epoch,
                         best_val_loss=None if reporter.best_epoch is None else reporter.best_val,
                         seconds=time.perf_counter() - started, message=message)
    if is_main:
        run.update_config(status=status, message=message, seconds=round(summary.seconds, 2))
    on_event(summary)
    return summary


OOM_MESSAGE = "Out of memory: lower the batch size or max length. The best finished epoch is kept."


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in text \
        or "can't allocate memory" in text or "failed to allocate" in text


def _checkpoint_epoch(checkpoint: Path) -> float:
    import json

    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return float(state.get("epoch", 0.0))


_DONE = object()


def iter_training(data_cfg: DataConfig, train_cfg: TrainConfig, runs_dir: Path | str = runs_mod.DEFAULT_RUNS_DIR,
                  stop: threading.Event | None = None, **kwargs) -> Iterator[Event]:
    """Yield ``Progress``/``EpochResult`` records as training runs, then the ``RunSummary``.

    Errors raised by training are re-raised here, in the consumer's thread.
    """
    events: queue.Queue = queue.Queue()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            run_training(data_cfg, train_cfg, runs_dir, events.put, stop, **kwargs)
        except BaseException as exc:  # handed to the consumer
            failure.append(exc)
        finally:
            events.put(_DONE)

    worker = threading.Thread(target=work, name="symptomgen-train", daemon=True)
    worker.start()
    while (item := events.get()) is not _DONE:
        yield item
    worker.join()
    if failure:
        raise failure[0]
