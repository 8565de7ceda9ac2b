"""Time you can plan: how long an epoch will take, known before Start.

``estimate_epoch_seconds(prepared, cfg)`` counts the tokens one epoch trains on (and validates on) and divides by
a speed: one the caller measured (``tokens_per_sec``: a finished run's ``metrics.csv`` column of the same name, for
the same model and machine) or, without one, a short timed probe: a randomly initialised model of the run's shape
takes a few optimizer steps on a batch like the run's, under the same precision training would use.
``planned_seconds`` turns that into the run's length under its epochs and time budget.  While a run trains,
``events.Progress`` carries the measured ``seconds_per_step`` and ``seconds_left``.

The model shapes live here once: ``KNOWN_SHAPES`` (the GPT-2 family, for when the Hub cannot be asked) and
``model_config``; ``estimated_step_seconds`` scales a distilgpt2 step by a shape's parameter count, for a GPU that
cannot be probed from here (``zerogpu.plan``).
"""

from __future__ import annotations

import math
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from .config import TrainConfig, is_scratch
from .data import PreparedData, format_example
from .errors import InvalidInput, first_line
from .hub import hub_reachable, looks_like_hub_id

CHARS_PER_TOKEN = 4.0
"""Byte-level BPE (GPT-2's, or the scratch tokenizer trained on the rows) averages about 4 characters of English a
token; the scratch tokenizer's is a little better on its own rows, so the estimate errs long."""
VALIDATION_COST = 1 / 3
"""A validation token costs about a third of a training token (a forward pass, no backward or update)."""
KNOWN_SHAPES = {  # the GPT-2 family's shapes, for when the Hub cannot be asked
    "distilgpt2": {"n_layer": 6, "n_embd": 768, "n_head": 12}, "gpt2": {"n_layer": 12, "n_embd": 768, "n_head": 12},
    "gpt2-medium": {"n_layer": 24, "n_embd": 1024, "n_head": 16},
    "gpt2-large": {"n_layer": 36, "n_embd": 1280, "n_head": 20},
    "gpt2-xl": {"n_layer": 48, "n_embd": 1600, "n_head": 25},
}
GPT2_VOCAB, GPT2_POSITIONS = 50257, 1024
"""The GPT-2 family's vocabulary and context length (every shape in ``KNOWN_SHAPES`` has them)."""
ESTIMATED_STEP_SECONDS = 0.25
"""GPU seconds per optimizer step (validation and saves included) assumed for distilgpt2 before one is measured."""


def known_shape(model: str) -> dict | None:
    """The ``KNOWN_SHAPES`` entry of a model name (``openai-community/gpt2-medium`` → gpt2-medium's), else of the
    longest known name inside it (``me/gpt2-medium-ft`` → gpt2-medium's); None when neither."""
    short = model.strip().split("/")[-1].lower()
    if short in KNOWN_SHAPES:
        return KNOWN_SHAPES[short]
    inside = [name for name in KNOWN_SHAPES if name in short]
    return KNOWN_SHAPES[max(inside, key=len)] if inside else None


def shape_parameters(n_layer: int, n_embd: int, vocab_size: int = GPT2_VOCAB, n_positions: int = GPT2_POSITIONS,
                     **_: object) -> int:
    """About how many parameters a GPT-2 of this shape has: 12·d² per layer (attention and MLP) plus the token
    and position embeddings (the LM head is tied); within 1% of the real count for the family."""
    return 12 * n_layer * n_embd * n_embd + (vocab_size + n_positions) * n_embd


def estimated_step_seconds(cfg: TrainConfig) -> float:
    """GPU seconds per optimizer step before one has been measured: distilgpt2's ``ESTIMATED_STEP_SECONDS`` scaled
    by the model's parameters (a model of unknown shape counts as distilgpt2; ``scratch`` as a quarter of it, the
    floor a small model's step costs on a GPU)."""
    if is_scratch(cfg.model):
        return ESTIMATED_STEP_SECONDS / 4
    shape = known_shape(cfg.model)
    scale = shape_parameters(**shape) / shape_parameters(**KNOWN_SHAPES["distilgpt2"]) if shape else 1.0
    return ESTIMATED_STEP_SECONDS * scale


def approx_tokens(frame: pd.DataFrame, max_length: int) -> int:
    """Tokens the model sees for these rows: each example's characters / ``CHARS_PER_TOKEN`` plus its end token,
    capped at ``max_length`` (as training truncates)."""
    return int(sum(min(max_length, math.ceil(len(format_example(p, t)) / CHARS_PER_TOKEN) + 1)
                   for p, t in zip(frame["prompt"], frame["target"])))


def model_config(cfg: TrainConfig, positions: int):
    """A ``PretrainedConfig`` of the model ``cfg`` trains (scratch: built; otherwise its own config.json, read from
    the local cache or folder, or the known GPT-2 shapes)."""
    from transformers import AutoConfig, GPT2Config

    from .modeling import scratch_config

    if is_scratch(cfg.model):
        return scratch_config(cfg, vocab_size=cfg.scratch_vocab, eos_token_id=0, positions=positions)
    try:
        return AutoConfig.from_pretrained(cfg.model, local_files_only=True, trust_remote_code=False)
    except Exception:  # noqa: BLE001 - not cached, not a folder: the GPT-2 family's shapes are known
        pass
    short = cfg.model.strip().split("/")[-1].lower()
    if short in KNOWN_SHAPES:
        return GPT2Config(n_positions=GPT2_POSITIONS, vocab_size=GPT2_VOCAB, **KNOWN_SHAPES[short])
    if looks_like_hub_id(cfg.model) and not Path(cfg.model).expanduser().exists() and hub_reachable():
        # A Hub model the training would download: read its config.json (a few KB) now, into a throw-away
        # cache (the model counts as cached, for the offline checks, only once the training has downloaded it).
        with tempfile.TemporaryDirectory(prefix="symptomgen-config-") as cache:
            try:
                return AutoConfig.from_pretrained(cfg.model, cache_dir=cache, trust_remote_code=False)
            except Exception as exc:  # noqa: BLE001 - no such repo, not a transformers model: one sentence
                raise InvalidInput(f"Could not read the config of '{cfg.model[:80]}' from the Hugging Face Hub: "
                                   f"{first_line(exc)}") from None
    raise InvalidInput(f"The speed of '{cfg.model[:80]}' cannot be probed here (its config is not cached); "
                       "pass a measured tokens per second instead.")


def probe_tokens_per_second(cfg: TrainConfig, seq_len: int = 64, steps: int = 3) -> float:
    """Training tokens per second of a random-init model shaped as ``cfg`` trains it, timed over ``steps``
    optimizer steps (after one untimed warm-up) on ``cfg.batch_size`` rows of ``seq_len`` tokens, with the mixed
    precision training uses (bf16 autocast on CUDA or on CPUs with native bf16)."""
    import torch
    from transformers import AutoModelForCausalLM

    from . import cputune

    seq_len = max(8, min(int(seq_len), cfg.max_length))
    config = model_config(cfg, seq_len)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).to(device).train()
        ids = torch.randint(0, config.vocab_size, (cfg.batch_size, seq_len), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    bf16 = (cuda and torch.cuda.is_bf16_supported()) or (not cuda and cputune.native_bf16())
    dtype = torch.bfloat16 if bf16 else torch.float16

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype) if bf16 or cuda else nullcontext():
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocation and kernel choice are not the steady speed
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(max(1, steps)):
        step()
    if cuda:
        torch.cuda.synchronize()
    return cfg.batch_size * seq_len * max(1, steps) / max(time.perf_counter() - started, 1e-9)


def estimate_epoch_seconds(prepared: PreparedData, cfg: TrainConfig, *, tokens_per_sec: float | None = None,
                           probe_steps: int = 3) -> float:
    """Seconds one epoch of this run should take: training plus its validation pass, before Start.

    ``prepared``: the data as training will see it (``data.prepare``); ``cfg``: the run's settings (model, batch
    size, max length).  ``tokens_per_sec``: a measured training speed for this model on this machine (e.g. the
    ``tokens_per_sec`` column of an earlier run's ``metrics.csv``); when None, ``probe_tokens_per_second`` times
    ``probe_steps`` steps of a same-shaped model (a few seconds for distilgpt2 on 2 CPU cores).  The figure is
    ``train tokens / speed + validation tokens × VALIDATION_COST / speed``, tokens counted by ``approx_tokens``;
    it leaves out model loading, the scratch tokenizer's training and checkpoint saving (seconds, once per run or
    epoch).  Raises ``InvalidInput`` when the model's shape cannot be known offline and no speed is given.
    """
    train_tokens = approx_tokens(prepared.train, cfg.max_length)
    val_tokens = approx_tokens(prepared.val, cfg.max_length)
    if tokens_per_sec is None:
        rows = max(1, len(prepared.train))
        tokens_per_sec = probe_tokens_per_second(cfg, seq_len=math.ceil(train_tokens / rows), steps=probe_steps)
    if not tokens_per_sec > 0:
        raise InvalidInput(f"Tokens per second must be positive, got {tokens_per_sec!r}.")
    return (train_tokens + VALIDATION_COST * val_tokens) / tokens_per_sec


def planned_seconds(epoch_seconds: float, cfg: TrainConfig) -> float:
    """How long the run will train: its epochs at ``epoch_seconds`` each, or its time budget if that is shorter."""
    total = epoch_seconds * cfg.epochs
    return min(total, 60 * cfg.max_minutes) if cfg.max_minutes else total
