"""Typed, validated settings for data, training and generation.

Every range and default lives here so the UI sliders, the CLI flags and the tests
read the same numbers and cannot drift apart.  Each dataclass is frozen and checks
itself in ``__post_init__``, raising ``ValueError`` with one human sentence.
"""

from __future__ import annotations

from .errors import InvalidInput

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

DEFAULT_DATASET = "QuyenAnhDE/Diseases_Symptoms"
DEFAULT_MODEL = "distilgpt2"
SAMPLE_SOURCE = "sample"
SCRATCH_MODEL = "scratch"

# (min, max, default) — shared by UI sliders, CLI help and validation.
TOP_K_RANGE = (0, 200, 8)
TOP_P_RANGE = (0.01, 1.0, 0.95)
TEMPERATURE_RANGE = (0.0, 2.0, 0.5)
REPETITION_PENALTY_RANGE = (1.0, 2.0, 1.2)
MAX_NEW_TOKENS_RANGE = (1, 256, 48)
NUM_SEQUENCES_RANGE = (1, 5, 1)
MAX_PROMPT_CHARS = 200

EPOCHS_RANGE = (1, 100, 10)
BATCH_SIZE_RANGE = (1, 256, 8)
LEARNING_RATE_RANGE = (1e-6, 1e-1, 5e-4)
MAX_LENGTH_RANGE = (8, 1024, 128)
VAL_FRACTION_RANGE = (0.05, 0.5, 0.2)
GRAD_ACCUM_RANGE = (1, 64, 1)
PATIENCE_RANGE = (0, 100, 0)
LOSS_MODES = ("target", "full")


def _number(name: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> None:
    """Raise ValueError unless ``value`` is a finite number (an int if asked) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number, got {value!r}.")
    if integer and not float(value).is_integer():
        raise InvalidInput(f"{name} must be a whole number, got {value!r}.")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo:g} and {hi:g}, got {value!r}.")


def _text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty text, got {value!r}.")


class _Settings:
    """Shared helpers: dict round-trip and copy-with-changes."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_(self, **changes):
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class DataConfig(_Settings):
    """Where the examples come from and how rows become (prompt, target) pairs."""

    source: str = SAMPLE_SOURCE
    """A Hub dataset id, a path to a CSV/JSON/JSONL/Parquet file, or ``"sample"``."""
    prompt_column: str = "Name"
    """Column holding the disease name (the prompt)."""
    target_column: str = "Symptoms"
    """Column holding the text to learn (the target)."""
    extra_target_column: str | None = None
    """Optional second target column appended as ``"; Treatments: ..."`` (e.g. ``"Treatments"``)."""
    split: str = "train"
    """Split to read from a Hub dataset."""
    val_fraction: float = VAL_FRACTION_RANGE[2]
    """Share of rows held out for validation."""
    seed: int = 42
    """Seed of the train/validation split: same seed, same split, on every machine."""

    def __post_init__(self) -> None:
        _text("Data source", self.source)
        _text("Prompt column", self.prompt_column)
        _text("Target column", self.target_column)
        if self.extra_target_column is not None:
            _text("Extra target column", self.extra_target_column)
        _number("Validation fraction", self.val_fraction, *VAL_FRACTION_RANGE[:2])
        _number("Split seed", self.seed, 0, 2**32 - 1, integer=True)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "val_fraction", float(self.val_fraction))


@dataclass(frozen=True)
class TrainConfig(_Settings):
    """Model and optimisation settings for one fine-tuning run."""

    model: str = DEFAULT_MODEL
    """A Hub causal-LM id, a local ``save_pretrained`` folder, or ``"scratch"``."""
    epochs: int = EPOCHS_RANGE[2]
    """Passes over the training rows."""
    batch_size: int = BATCH_SIZE_RANGE[2]
    """Examples per device per step."""
    learning_rate: float = LEARNING_RATE_RANGE[2]
    """Peak learning rate of AdamW."""
    max_length: int = MAX_LENGTH_RANGE[2]
    """Longest example in tokens; longer ones are truncated (the EOS is kept)."""
    seed: int = 42
    """Seed for model init, shuffling and dropout."""
    warmup_ratio: float = 0.0
    """Fraction of steps with linearly rising learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_accum: int = GRAD_ACCUM_RANGE[2]
    """Micro-batches accumulated per optimizer step."""
    scheduler: str = "constant"
    """Learning-rate schedule: ``constant`` (as the seed) or ``linear``/``cosine``."""
    loss_on: str = "target"
    """``target``: loss on the symptoms (and EOS) only; ``full``: on the whole text (seed)."""
    patience: int = PATIENCE_RANGE[2]
    """Stop after this many epochs without validation improvement (0 = never)."""
    group_by_length: bool = True
    """Batch rows of similar length together so little compute goes to padding."""
    save_checkpoints: bool = True
    """Keep a resumable Trainer checkpoint of the last epoch (for resume after a crash)."""
    scratch_layers: int = 4
    """Layers of the ``scratch`` model."""
    scratch_width: int = 256
    """Hidden width of the ``scratch`` model."""
    scratch_vocab: int = 4000
    """Vocabulary size of the ``scratch`` tokenizer."""

    def __post_init__(self) -> None:
        _text("Model", self.model)
        _number("Epochs", self.epochs, *EPOCHS_RANGE[:2], integer=True)
        _number("Batch size", self.batch_size, *BATCH_SIZE_RANGE[:2], integer=True)
        _number("Learning rate", self.learning_rate, *LEARNING_RATE_RANGE[:2])
        _number("Max length", self.max_length, *MAX_LENGTH_RANGE[:2], integer=True)
        _number("Seed", self.seed, 0, 2**32 - 1, integer=True)
        _number("Warmup ratio", self.warmup_ratio, 0.0, 0.5)
        _number("Weight decay", self.weight_decay, 0.0, 1.0)
        _number("Gradient accumulation", self.grad_accum, *GRAD_ACCUM_RANGE[:2], integer=True)
        _number("Patience", self.patience, *PATIENCE_RANGE[:2], integer=True)
        _number("Scratch layers", self.scratch_layers, 1, 24, integer=True)
        _number("Scratch width", self.scratch_width, 16, 2048, integer=True)
        _number("Scratch vocabulary", self.scratch_vocab, 300, 60000, integer=True)
        if self.scratch_width % 4:
            raise InvalidInput("Scratch width must be a multiple of 4 (it is split over 4 heads).")
        if self.loss_on not in LOSS_MODES:
            raise InvalidInput(f"Loss mode must be one of {', '.join(LOSS_MODES)}, got {self.loss_on!r}.")
        if self.scheduler not in ("constant", "linear", "cosine"):
            raise InvalidInput(f"Scheduler must be constant, linear or cosine, got {self.scheduler!r}.")
        for name in ("epochs", "batch_size", "max_length", "seed", "grad_accum", "patience",
                     "scratch_layers", "scratch_width", "scratch_vocab"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("learning_rate", "warmup_ratio", "weight_decay"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class GenerationSettings(_Settings):
    """Sampling settings; defaults are the seed notebook's values."""

    top_k: int = TOP_K_RANGE[2]
    """Sample from the k most likely tokens (0 = no limit)."""
    top_p: float = TOP_P_RANGE[2]
    """Nucleus sampling: smallest token set with this much probability."""
    temperature: float = TEMPERATURE_RANGE[2]
    """Softmax temperature (0 = greedy, deterministic)."""
    repetition_penalty: float = REPETITION_PENALTY_RANGE[2]
    """Penalty on tokens already generated (1.0 = none)."""
    max_new_tokens: int = MAX_NEW_TOKENS_RANGE[2]
    """Upper bound on generated tokens (the prompt is not counted)."""
    num_return_sequences: int = NUM_SEQUENCES_RANGE[2]
    """Independent samples, produced in one batched call."""
    seed: int | None = 0
    """Seed for sampling; ``None`` draws a fresh one."""

    def __post_init__(self) -> None:
        _number("top_k", self.top_k, *TOP_K_RANGE[:2], integer=True)
        _number("top_p", self.top_p, *TOP_P_RANGE[:2])
        _number("temperature", self.temperature, *TEMPERATURE_RANGE[:2])
        _number("repetition_penalty", self.repetition_penalty, *REPETITION_PENALTY_RANGE[:2])
        _number("max_new_tokens", self.max_new_tokens, *MAX_NEW_TOKENS_RANGE[:2], integer=True)
        _number("num_return_sequences", self.num_return_sequences, *NUM_SEQUENCES_RANGE[:2], integer=True)
        if self.seed is not None:
            _number("seed", self.seed, 0, 2**32 - 1, integer=True)
            object.__setattr__(self, "seed", int(self.seed))
        for name in ("top_k", "max_new_tokens", "num_return_sequences"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("top_p", "temperature", "repetition_penalty"):  # transformers rejects an int 2 here
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.temperature == 0 and self.num_return_sequences > 1:
            raise InvalidInput("Greedy decoding (temperature 0) has only one answer: set the number of sequences "
                             "to 1, or raise the temperature to sample several.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


# Named presets.  "seed-notebook" reproduces the Colab notebook's choices.
TRAIN_PRESETS: dict[str, TrainConfig] = {
    "seed-notebook": TrainConfig(model=DEFAULT_MODEL, epochs=10, batch_size=8, learning_rate=5e-4,
                                 max_length=128, loss_on="full", scheduler="constant"),
    # Measured on the bundled sample: smaller scratch models or fewer epochs only learn to emit commas.
    "quick-cpu": TrainConfig(model=SCRATCH_MODEL, epochs=10, batch_size=8, learning_rate=1e-3,
                             max_length=96, scheduler="linear", warmup_ratio=0.05, save_checkpoints=False),
}
GENERATION_PRESETS: dict[str, GenerationSettings] = {
    "seed-notebook": GenerationSettings(),
    "greedy": GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.2),
    "creative": GenerationSettings(top_k=50, top_p=0.95, temperature=1.0, repetition_penalty=1.3),
}
