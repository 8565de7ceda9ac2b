"""Memory you can plan: a run's peak RAM (VRAM on a GPU) before Start, and what a running job uses now.

``estimate_peak_bytes`` adds up what a training process holds at its peak, from the model's shape and the run's
settings, no model built:

- the process itself (torch, transformers and the tokenizer loaded: ``PROCESS_BYTES``);
- the weights (fp32 master copy), their gradients and AdamW's two moments for every *trainable* parameter (LoRA
  trains a few; its frozen base still has its weights, and a merged copy is made to save the best epoch);
- the activations one optimizer step keeps for the backward pass: about ``ACTIVATION_VALUES_PER_TOKEN_LAYER`` values
  of the model's width per token per layer (GPT-2 with PyTorch's SDPA), for the step's tokens;
- the LM head's logits and their gradient for the step's tokens (the Trainer's default loss builds them all).

``check_fits`` refuses a run whose estimate exceeds the memory this machine has free, with both numbers.
``bench/memory_bench.py`` records the estimate's error against the measured peak for the benchmark's shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig
from .errors import InvalidInput
from .timing import shape_parameters

MB = 1024 * 1024
PROCESS_BYTES = 850 * MB
"""A training process before any model's weights: Python, torch, transformers, tokenizers, pandas, the data and a
tiny model (``bench/memory_bench.py``: 887 MB peak for a 2-layer, width-64 run)."""
ACTIVATION_VALUES_PER_TOKEN_LAYER = 18
"""Saved activations per token per layer, in units of the model's width (attention inputs and outputs, the MLP's
4× hidden layer and its GELU input, two layer norms): 34 bytes·d in fp16 by Megatron's count, ~18 values here."""
LORA_TRAINABLE_FRACTION = 0.02
"""LoRA's trainable share of the parameters at the ranks offered (2·r·d per adapted matrix): an upper bound."""


@dataclass(frozen=True)
class MemoryEstimate:
    """A run's estimated peak, in bytes, with its parts (for the sentence that explains it)."""

    process: int
    weights: int
    optimizer: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        return self.process + self.weights + self.optimizer + self.activations + self.logits

    def sentence(self) -> str:
        return (f"about {gib(self.total)} of memory at its peak (weights {gib(self.weights)}, gradients and "
                f"optimizer {gib(self.optimizer)}, activations and logits {gib(self.activations + self.logits)})")


def gib(n: float) -> str:
    return f"{n / 1024 ** 3:.1f} GB" if n >= 1024 ** 3 else f"{n / MB:.0f} MB"


def estimate_peak_bytes(n_layer: int, n_embd: int, vocab_size: int, parameters: int, cfg: TrainConfig,
                        tokens_per_step: int) -> MemoryEstimate:
    """The peak of a training process for a GPT-2 of this shape under ``cfg`` (batch, sequence length, LoRA),
    training ``tokens_per_step`` real tokens per optimizer step (packed: no padding)."""
    trainable = int(parameters * LORA_TRAINABLE_FRACTION) if cfg.lora_rank else parameters
    weights = 4 * parameters * (2 if cfg.lora_rank else 1)  # LoRA: its base, and the merged copy saved as best/
    optimizer = 4 * trainable * 3  # gradients and AdamW's two moments, fp32
    activations = 4 * ACTIVATION_VALUES_PER_TOKEN_LAYER * n_layer * n_embd * tokens_per_step
    logits = 4 * 2 * tokens_per_step * vocab_size
    return MemoryEstimate(PROCESS_BYTES, weights, optimizer, activations, logits)


def estimate_for(cfg: TrainConfig, mean_row_tokens: float) -> MemoryEstimate:
    """``estimate_peak_bytes`` for the model ``cfg`` trains (its config as ``timing.model_config`` reads it, no
    model built), with batches of ``cfg.batch_size`` rows of ``mean_row_tokens`` tokens (the longest batch is
    budgeted at twice the mean)."""
    from .timing import model_config

    config = model_config(cfg, cfg.max_length)
    n_layer, n_embd = config.n_layer, config.n_embd
    params = shape_parameters(n_layer, n_embd, config.vocab_size, config.n_positions)
    tokens = int(2 * cfg.batch_size * min(mean_row_tokens, cfg.max_length))
    return estimate_peak_bytes(n_layer, n_embd, config.vocab_size, params, cfg, tokens)


def mean_row_tokens(frame, max_length: int) -> float:
    """Tokens per training row, about (``timing.approx_tokens``), for ``estimate_for``."""
    from .timing import approx_tokens

    return approx_tokens(frame, max_length) / max(len(frame), 1)


def available_bytes() -> int | None:
    """Memory a new training process can have now: free GPU memory where training runs on CUDA, else the
    machine's ``MemAvailable``; None where it cannot be read."""
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0])
    except Exception:  # noqa: BLE001 - a driver that cannot answer: fall back to RAM
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no psutil, or a sandbox that hides it: no check rather than a wrong one
        return None


def check_fits(estimate: MemoryEstimate, available: int | None = None) -> None:
    """Refuse a run whose estimated peak exceeds the memory free now, in one sentence with both numbers."""
    available = available_bytes() if available is None else available
    if available is not None and estimate.total > available:
        raise InvalidInput(f"This run needs {estimate.sentence()}, but this machine has {gib(available)} free: "
                           "choose a smaller model, batch size or maximum length, or LoRA.")


def process_rss(pid: int | None) -> int | None:
    """Resident memory of process ``pid`` now, in bytes (None when it has ended or cannot be read)."""
    if not pid:
        return None
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # noqa: BLE001 - the process ended between the question and the answer
        return None
