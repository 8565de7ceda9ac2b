"""Token ids, labels, and padding-free (packed) or dynamically padded batches.

Labels are made by hand: padding positions are ``-100`` (ignored by the loss),
the single EOS at the end of each example stays a target so the model learns
to stop, and with ``loss_on="target"`` the prompt tokens are ignored too.
(``DataCollatorForLanguageModeling`` with ``pad = eos`` would mask every EOS.)

Training batches are packed by default (``PackCollator``): the batch's rows are
concatenated into one sequence with ``position_ids`` restarting at every row, so no
token is padding.  ``batch_size`` still means rows per optimizer step.  Models whose
attention builds the block-causal mask from ``position_ids`` (GPT-2 and the other
``create_causal_mask`` models of transformers 5, *without a KV cache*) keep every row
to itself; ``packing_is_exact`` checks that on the actual model before a run uses it.
"""

from __future__ import annotations

import copy
import random
import threading
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

import torch

from .data import format_prompt, format_target
from .phrases import extra_section

IGNORE = -100
T = TypeVar("T")


def encode_example(tokenizer, name: str, target: str, max_length: int, loss_on: str = "target") -> dict:
    """``{"input_ids", "labels"}`` for one row; prompt and target are tokenized apart.

    Tokenizing the prompt on its own gives exactly the ids generation feeds the
    model, so the boundary between prompt and target is the same in both.
    """
    prompt_ids = tokenizer(format_prompt(name), add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(format_target(target), add_special_tokens=False)["input_ids"]
    return _join(prompt_ids, target_ids, tokenizer.eos_token_id, max_length, loss_on)


def _join(prompt_ids: list[int], target_ids: list[int], eos: int, max_length: int, loss_on: str) -> dict:
    prompt_ids = prompt_ids[: max(1, max_length // 2)]
    room = max_length - len(prompt_ids) - 1
    ids = prompt_ids + target_ids[: max(room, 0)] + [eos]
    if loss_on == "full":
        labels = list(ids)
    else:
        labels = [IGNORE] * len(prompt_ids) + ids[len(prompt_ids):]
    return {"input_ids": ids, "labels": labels}


ENCODE_CHUNK = 2048
"""Rows per batched tokenizer call in ``encode_frame`` (the fast tokenizers encode a list in one call)."""


def encode_frame(tokenizer, frame, max_length: int, loss_on: str = "target", backend=None) -> list[dict]:
    """``encode_example`` for every row of ``frame`` (its ``prompt`` and ``target`` columns), the same rows, with
    the tokenizer called on ``ENCODE_CHUNK`` texts at a time (about 1.5x faster than row by row).  ``backend``: a
    ``plain_backend`` of the tokenizer, called directly (for a thread: its batch calls hold the GIL far less)."""
    names, targets = list(frame["prompt"]), list(frame["target"])
    rows: list[dict] = []
    for start in range(0, len(names), ENCODE_CHUNK):
        prompts = [format_prompt(n) for n in names[start:start + ENCODE_CHUNK]]
        texts = [format_target(t) for t in targets[start:start + ENCODE_CHUNK]]
        if backend is not None:
            prompt_ids, target_ids = ([e.ids for e in backend.encode_batch(x, add_special_tokens=False)]
                                      for x in (prompts, texts))
        else:
            prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
            target_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        rows += [_join(p, t, tokenizer.eos_token_id, max_length, loss_on) for p, t in zip(prompt_ids, target_ids)]
    return rows


def plain_backend(tokenizer):
    """A copy of a fast tokenizer's own (Rust) tokenizer with truncation and padding off, as ``encode_example``'s
    calls set them; None for a tokenizer without one.  A copy: the padding settings are state its users share."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    backend = copy.deepcopy(backend)
    backend.no_truncation()
    backend.no_padding()
    return backend


class EncodedDataset(torch.utils.data.Dataset):
    """A table's training rows, each encoded (``encode_example``) when it is first drawn and kept.

    Nothing is tokenized up front, so the first step does not wait for the whole table (issue 25: 80,000 rows
    took 6 s to encode before it).  ``lengths`` and ``real_tokens`` encode every row (in batches) the first time
    they are asked for; the trainer asks for them off the first step's path (``Deferred``)."""

    def __init__(self, tokenizer, frame, max_length: int, loss_on: str = "target"):
        self.tokenizer, self.max_length, self.loss_on = tokenizer, max_length, loss_on
        self.pairs = list(zip(frame["prompt"].tolist(), frame["target"].tolist()))  # 3x faster than iterating
        self._rows: list[dict | None] = [None] * len(self.pairs)
        self._lengths: list[int] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        row = self._rows[i]
        if row is None:
            name, target = self.pairs[i]
            row = self._rows[i] = encode_example(self.tokenizer, name, target, self.max_length, self.loss_on)
        return row

    def frame(self) -> dict[str, list[str]]:
        """The rows as written, as ``encode_frame`` takes them."""
        return {"prompt": [p for p, _ in self.pairs], "target": [t for _, t in self.pairs]}

    def count_lengths(self, backend=None) -> list[int]:
        """Every row's length in tokens, encoded in batches (``backend``: as ``encode_frame`` takes it, for a
        thread); kept for ``lengths``."""
        if self._lengths is None:
            rows = encode_frame(self.tokenizer, self.frame(), self.max_length, self.loss_on, backend)
            self._lengths = [len(r["input_ids"]) for r in rows]
        return self._lengths

    @property
    def lengths(self) -> list[int]:
        return self.count_lengths()

    @property
    def real_tokens(self) -> int:
        return sum(self.lengths)


def shuffle_phrases(target: str, rng: random.Random, extra_column: str | None = None) -> str:
    """A comma list's phrases in a new order (``"Fever, cough, fatigue"`` → ``"Cough, fatigue, fever"``; the first
    letter stays capitalised, the rest keep their own case); an appended extra column stays at the end."""
    tail = ""
    if extra_column and extra_section(extra_column, "") in target:
        target, rest = target.split(extra_section(extra_column, ""), 1)
        tail = extra_section(extra_column, rest)
    parts = [p.strip() for p in target.split(",") if p.strip()]
    if len(parts) < 2:
        return target + tail
    capital = parts[0][:1].isupper() and not parts[0][1:2].isupper()  # "Fever" yes, "HIV" no
    if capital:
        parts[0] = parts[0][:1].lower() + parts[0][1:]
    rng.shuffle(parts)
    if capital and not parts[0][1:2].isupper():
        parts[0] = parts[0][:1].upper() + parts[0][1:]
    return ", ".join(parts) + tail


class ShuffledPhrases(EncodedDataset):
    """Training rows whose comma-list targets come in a new order each time a row is drawn (a symptom list is a
    set, so the model should not spend itself learning one order).  The order is seeded by (seed, row, how many
    times the row was drawn): the same seed gives the same epochs.  ``lengths`` (for length grouping and the
    token count) are those of the rows as written; a shuffled row's length differs by a token or two at most."""

    def __init__(self, tokenizer, frame, max_length: int, loss_on: str, seed: int, extra_column: str | None = None):
        super().__init__(tokenizer, frame, max_length, loss_on)
        self.seed, self.extra_column = seed, extra_column
        self.draws = [0] * len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        self.draws[i] += 1
        rng = random.Random(f"{self.seed}:{i}:{self.draws[i]}")
        name, target = self.pairs[i]
        return encode_example(self.tokenizer, name, shuffle_phrases(target, rng, self.extra_column),
                              self.max_length, self.loss_on)


class Deferred(Generic[T]):
    """A value worked out away from the first step: ``start()`` computes it in a daemon thread, ``get()`` waits for
    it (or computes it in the caller when never started), ``peek()`` gives it once it is there, else None.  An
    exception in the thread is raised by ``get()``."""

    def __init__(self, compute: Callable[[], T]):
        self._compute, self._thread, self._done = compute, None, False
        self._value: T | None = None
        self._error: BaseException | None = None

    @classmethod
    def now(cls, compute: Callable[[], T]) -> Deferred[T]:
        """Computed at once (e.g. a small table's: milliseconds)."""
        deferred = cls(compute)
        deferred._run()
        return deferred

    def _run(self) -> None:
        try:
            self._value = self._compute()
        except BaseException as exc:  # noqa: BLE001 (handed to the caller of get())
            self._error = exc
        self._done = True

    def start(self) -> None:
        if self._thread is None and not self._done:
            self._thread = threading.Thread(target=self._run, name="symptomgen-deferred", daemon=True)
            self._thread.start()

    def peek(self) -> T | None:
        return self._value if self._done and self._error is None else None

    def get(self) -> T:
        if self._thread is None and not self._done:
            self._run()
        elif self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass
class PadCollator:
    """Pads a batch to its own longest row (right padding, mask 0, label -100)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    packed = False  # a class attribute: the trainer shuffles packed batches and honours length grouping otherwise

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass
class PackCollator:
    """Padding-free batches: rows concatenated into one ``[1, total_tokens]`` sequence.

    transformers' ``DataCollatorWithFlattening`` does the concatenation: ``position_ids``
    restart at 0 for each row and the label of each row's first token becomes ``-100``,
    so the last token of one row never predicts the first of the next (that label is
    never predicted in a padded batch either).  Our own labels are kept otherwise (the
    prompt masked unless ``loss_on="full"``, the EOS a target).  ``use_cache=False`` is
    part of the batch: with a KV cache GPT-2 ignores ``position_ids`` for its mask and
    rows would attend to each other.  ``pad_token_id`` is unused (nothing is padded); it
    keeps the ``make_collator(pad_token_id)`` signature of ``PadCollator``.
    """

    pad_token_id: int | None = None
    packed = True

    def __post_init__(self):
        from transformers import DataCollatorWithFlattening

        self._flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)

    def __call__(self, rows: list[dict]) -> dict:
        batch = self._flatten([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
        batch["use_cache"] = False
        return batch


@torch.no_grad()
def packing_is_exact(model, atol: float = 1e-3) -> bool:
    """True when ``model`` keeps packed rows apart: the logits of two rows packed by ``PackCollator`` equal
    those of each row alone (a few tokens, fp32, milliseconds).  False for a model whose attention ignores
    ``position_ids`` — training then pads instead."""
    was_training = model.training
    model.eval()
    try:
        vocab = model.get_input_embeddings().weight.shape[0]
        gen = torch.Generator().manual_seed(0)
        a, b = (torch.randint(0, vocab, (n,), generator=gen).tolist() for n in (5, 4))
        device = next(model.parameters()).device
        packed = PackCollator()([{"input_ids": a, "labels": a}, {"input_ids": b, "labels": b}])
        packed = {k: v.to(device) if torch.is_tensor(v) else v for k, v in packed.items() if k != "labels"}
        together = model(**packed).logits[0].float()
        alone = torch.cat([model(input_ids=torch.tensor([x], device=device), use_cache=False).logits[0].float()
                           for x in (a, b)])
        return together.shape == alone.shape and bool(torch.allclose(together, alone, atol=atol, rtol=1e-3))
    except (TypeError, ValueError, RuntimeError):  # e.g. a forward without position_ids
        return False
    finally:
        model.train(was_training)


def labelled_loss_sum(model, batch: dict) -> torch.Tensor:
    """The summed next-token cross-entropy of ``batch`` (a ``PadCollator`` or ``PackCollator`` batch) over its
    labelled positions.  A plain GPT-2 head runs on those positions only (``lmloss.labelled_loss_total``): padding
    and, with ``loss_on="target"``, the prompt get no logits; any other model computes its full logits."""
    from .lmloss import labelled_loss_total, split_head

    features = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
    parts = split_head(model)
    if parts is not None:
        body, weight = parts
        return labelled_loss_total(body(**features, use_cache=False).last_hidden_state, weight, batch["labels"])[0]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = model(**features, use_cache=False).logits[:, :-1][keep]
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")


@torch.no_grad()
def mean_token_loss(model, rows: list[dict], pad_token_id: int, batch_size: int = 16) -> float:
    """Cross-entropy averaged over every labelled token (not over batches).  Rows are padded in ``batch_size``
    groups (sorted by length, they carry little padding); packing them instead measured slower here (the
    block-causal mask of a long packed sequence costs more than the padding it saves: bench/RESULTS.md)."""
    model.eval()
    device = next(model.parameters()).device
    collate = PadCollator(pad_token_id)
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size]).items()}
        total += labelled_loss_sum(model, batch).item()
        count += int((batch["labels"][:, 1:] != IGNORE).sum())
    return total / max(count, 1)
