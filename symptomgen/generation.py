"""Generate symptom text for a disease name with validated sampling settings.

Prompts come from ``data.format_prompt`` (the training template).  Results are the
generated continuation only, cut at the first EOS.  ``stream`` yields the texts
of all ``num_return_sequences`` samples as tokens arrive, from one batched call.

The building blocks (``generation_kwargs``, ``encode_prompt``, ``decode_continuation``,
``sampling_rng``) are public so that ``explain`` generates exactly the same text.
"""

from __future__ import annotations

import queue
import re
import secrets
import threading
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import torch
from transformers.generation.logits_process import LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from .config import (
    MAX_PROMPT_CHARS,
    SAMPLE_SOURCE,
    SCRATCH_MODEL,
    DataConfig,
    GenerationSettings,
    TrainConfig,
    is_scratch,
)
from .data import SEPARATOR, format_example, format_prompt, prepare, squash_spaces
from .errors import InvalidInput
from .modeling import MODEL_BUILD_LOCK, build_scratch_model, build_scratch_tokenizer, load_pretrained, place

_seed_lock = threading.Lock()  # torch's global RNG is shared: one seeded call at a time


def clean_name(name) -> str:
    """The disease name as the model should see it, or a ValueError saying what is wrong."""
    if not isinstance(name, str):
        raise InvalidInput("The disease name must be text.")
    text = squash_spaces("".join(ch if ch.isprintable() else " " for ch in name))
    if not text:
        raise InvalidInput("Please enter a disease name.")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"The disease name is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}.")
    return text


def context_window(model) -> int:
    """How many tokens (prompt and continuation) the model can attend to."""
    return getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 1024)


def generation_kwargs(model, tokenizer, settings: GenerationSettings, prompt_len: int) -> dict:
    """``model.generate`` keyword arguments for ``settings`` (new tokens capped by the context window)."""
    max_new = min(settings.max_new_tokens, context_window(model) - prompt_len)
    if max_new < 1:
        raise InvalidInput("The disease name is too long for this model's context window.")
    kwargs = dict(max_new_tokens=max_new, num_return_sequences=settings.num_return_sequences,
                  repetition_penalty=settings.repetition_penalty, pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id, use_cache=True)
    if settings.no_repeat_ngram_size:  # 0 = off (transformers treats 0 as off too; left out, defaults stay clean)
        kwargs["no_repeat_ngram_size"] = settings.no_repeat_ngram_size
    if settings.greedy:
        kwargs.update(do_sample=False, top_k=None, top_p=None, temperature=None)
    elif settings.top_k:  # sample among the k best only: transformers' search then takes the one token left
        sampler = TopKSampler(settings.top_k, settings.top_p, settings.temperature)
        kwargs.update(do_sample=False, top_k=None, top_p=None, temperature=None,
                      logits_processor=LogitsProcessorList([sampler]))
    else:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                      top_k=settings.top_k or None)
    return kwargs


class TopKSampler(LogitsProcessor):
    """Temperature, top-k and top-p sampling over the k best tokens only, as a logits processor.

    The same distribution as transformers' own warpers (temperature, then top-k keeping ties at the k-th score, then
    top-p keeping at least one token) followed by its multinomial draw, but the draw, the softmaxes and the top-p sort
    see k scores per row rather than the whole vocabulary: with three rows those full-vocabulary passes cost about a
    quarter of each step on CPU (bench/RESULTS.md).  It returns scores that are 0 at the drawn token and -inf
    elsewhere, so ``generate`` runs with ``do_sample=False`` and its argmax takes the drawn token.  ``recorded``, when
    set to a list, collects each step's filtered scores (what the warpers would have produced) for ``explain``.
    """

    def __init__(self, top_k: int, top_p: float, temperature: float):
        self.top_k, self.top_p, self.temperature = top_k, top_p, temperature
        self.recorded: list[torch.Tensor] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.top_k, scores.shape[-1])
        values, index = scores.topk(k, dim=-1)  # best first
        kth = values[:, -1:]  # transformers keeps every score equal to the k-th (-inf ones have no chance anyway)
        ties = int(((scores >= kth) & kth.isfinite()).sum(-1).max())
        if ties > k:
            values, index = scores.topk(ties, dim=-1)
            values = values.masked_fill(values < values[:, k - 1:k], -float("inf"))
        if self.temperature != 1.0:
            values = values / self.temperature
        if self.top_p < 1.0:  # drop the least likely while their mass stays within 1 - top_p; the best always stays
            drop = values.flip(-1).softmax(-1).cumsum(-1) <= 1 - self.top_p
            drop[:, -1] = False
            values = values.masked_fill(drop.flip(-1), -float("inf"))
        drawn = index.gather(-1, torch.multinomial(values.softmax(-1), 1))
        if self.recorded is not None:
            self.recorded.append(torch.full_like(scores, -float("inf")).scatter_(-1, index, values))
        return torch.full_like(scores, -float("inf")).scatter_(-1, drawn, 0.0)


def repeat_rows(inputs: dict, kwargs: dict) -> tuple[dict, dict]:
    """``(inputs, kwargs)`` for ``generate`` with one prompt row per requested sequence when the call does not sample
    in transformers (``TopKSampler``): its non-sampling search refuses ``num_return_sequences`` > 1, so the prompt
    is repeated here as ``generate`` repeats it when it samples."""
    n = kwargs.get("num_return_sequences", 1)
    if n == 1 or kwargs.get("do_sample", True):
        return inputs, kwargs
    return {k: v.repeat_interleave(n, dim=0) for k, v in inputs.items()}, {**kwargs, "num_return_sequences": 1}


def encode_prompt(tokenizer, name: str, device) -> dict:
    """The training template's prompt for ``name`` (cleaned), as ``generate`` inputs on ``device``."""
    enc = tokenizer(format_prompt(clean_name(name)), return_tensors="pt", add_special_tokens=False)
    return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


# Control and invisible format characters (a browser draws most of them as boxes); newlines and tabs stay.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def decode_continuation(tokenizer, ids: list[int]) -> str:
    """The text of generated ``ids``, cut at the first EOS or at the prompt separator (``|``: the model began
    another "Name | ..." example), without control characters."""
    eos = tokenizer.eos_token_id
    if eos in ids:
        ids = ids[: ids.index(eos)]
    # Byte-level BPE can end mid-character (or, untrained, emit invalid UTF-8): drop the replacement marks.
    text = _UNPRINTABLE.sub("", tokenizer.decode(ids, skip_special_tokens=True).replace("\ufffd", ""))
    bar = SEPARATOR.strip()
    return text.strip().lstrip(bar).split(bar, 1)[0].strip()  # a stray bar first is dropped, not cut at


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block with torch's RNG seeded, and restore the RNG afterwards (reproducible sampling)."""
    # The global RNG is shared: hold the lock while this seeded call samples.
    with _seed_lock, torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(seed)
        yield


def sampling_rng(settings: GenerationSettings, device: torch.device):
    """The random state a generate call samples from.  Greedy search draws nothing.  Every sampled call, seeded
    or not, runs on its own seeded fork of torch's RNG under one lock (an unseeded call takes a fresh random
    seed): an unseeded call can never draw from the stream of a seeded call running in another thread, so a
    seed gives the same text whatever else the server is doing."""
    if settings.greedy:
        return nullcontext()
    return seeded(settings.seed if settings.seed is not None else secrets.randbits(63), device)


@torch.inference_mode()
def generate(model, tokenizer, name: str, settings: GenerationSettings = GenerationSettings()) -> list[str]:
    """Generated symptom texts (prompt stripped), one per requested sequence."""
    return list(stream(model, tokenizer, name, settings))[-1]


class _BatchStreamer(BaseStreamer):
    """Collects new token ids per sequence and publishes the decoded texts."""

    def __init__(self, tokenizer, n: int):
        self.tokenizer, self.ids = tokenizer, [[] for _ in range(n)]
        self.updates: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        tokens = value.reshape(len(self.ids), -1).tolist()
        for seq, new in zip(self.ids, tokens):
            seq.extend(new)
        self.updates.put([decode_continuation(self.tokenizer, s) for s in self.ids])

    def end(self) -> None:
        self.updates.put(None)


def stream(model, tokenizer, name: str, settings: GenerationSettings = GenerationSettings()) -> Iterator[list[str]]:
    """Yield the list of texts so far after each new token; the last item is final."""
    device = next(model.parameters()).device
    inputs = encode_prompt(tokenizer, name, device)
    inputs, kwargs = repeat_rows(inputs, generation_kwargs(model, tokenizer, settings, inputs["input_ids"].shape[1]))
    streamer = _BatchStreamer(tokenizer, settings.num_return_sequences)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                with sampling_rng(settings, device):
                    model.generate(**inputs, **kwargs, streamer=streamer)
        except BaseException as exc:  # noqa: BLE001 - any library error becomes one sentence
            failure.append(exc)
            streamer.end()

    model.eval()
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    produced = False
    while (texts := streamer.updates.get()) is not None:
        produced = True
        yield texts
    worker.join()
    if failure:
        raise failure[0]
    if not produced:
        yield [""] * settings.num_return_sequences


def untrained_scratch():
    """(model, tokenizer) of ``scratch`` before any training: the tokenizer trained on the bundled sample's
    training rows and the default-size GPT-2 with seeded random weights, as a scratch run starts.  It needs no
    download, so an offline page has a model to show before the first run (its text is gibberish, and says so)."""
    train = prepare(DataConfig(source=SAMPLE_SOURCE)).train
    cfg = TrainConfig(model=SCRATCH_MODEL)
    tok = build_scratch_tokenizer([format_example(p, t) for p, t in zip(train["prompt"], train["target"])],
                                  cfg.scratch_vocab)
    return build_scratch_model(tok, cfg), tok


def load_for_serving(spec: str | Path):
    """(model, tokenizer) for ``spec`` (``scratch``, a folder or a Hub id) placed as the app and the CLI serve it:
    ``place(serving=True)``, so bf16 weights on CPUs with native bf16 (faster tokens, same greedy text)."""
    with MODEL_BUILD_LOCK:  # one build at a time in this process (see modeling.MODEL_BUILD_LOCK)
        model, tok = untrained_scratch() if is_scratch(spec) else load_pretrained(spec)
    return place(model, serving=True), tok


class ModelCache:
    """A few loaded models, most recently used kept; keyed by resolved path or id."""

    def __init__(self, capacity: int = 3):
        self.capacity, self._items, self._lock = capacity, OrderedDict(), threading.Lock()

    @staticmethod
    def _key(spec: str | Path) -> tuple:
        """A folder by its path and its weights file's identity: a run resumed or re-imported under the same
        name has new weights, and must not be served from the old ones."""
        path = Path(str(spec))
        if not path.exists():
            return (str(spec),)
        weights = [path / n for n in ("model.safetensors", "adapter_model.safetensors") if (path / n).exists()]
        try:
            st = weights[0].stat()  # a LoRA run's best/ holds its adapter's weights
            version = (st.st_ino, st.st_mtime_ns)
        except (OSError, IndexError):
            version = ()
        return (str(path.resolve()), *version)

    def get(self, spec: str | Path):
        key = self._key(spec)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        model, tok = load_for_serving(spec)
        with self._lock:
            for stale in [k for k in self._items if k[0] == key[0] and k != key]:
                self._items.pop(stale)  # the same folder's older weights: replaced, not kept
            self._items[key] = (model, tok)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return model, tok
