"""A score while it trains: after every epoch, a small fixed sample is generated greedily and scored.

The sample is chosen once per run, seeded and spread across names (``splits.spread_sample``): ``rows`` training
rows ("taught") and ``rows`` validation rows ("unseen").  Each epoch generates them with evaluation's greedy
settings and scores them with evaluation's scorer (``scoring.score_text``: phrase F1 for comma lists, ROUGE-L for
free text), so the per-epoch numbers and ``evaluate``'s are the same measure on fewer rows.  The constant answer
(``baselines``) is scored once on the same unseen rows: the line a chart draws to beat.

Generation costs time on a CPU, so it is batched (``CHUNK`` taught and ``CHUNK`` unseen rows per ``generate`` call,
the prompts padded on the left) and capped: chunks are generated while the epoch's scoring has used less than
``SCORE_SECONDS`` (the first chunk always); an epoch that runs over scores the rows it finished and shrinks the
sample to them for the epochs after it (the same rows each epoch, so epochs stay comparable).
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Callable

import pandas as pd

from .baselines import MAIN_METRIC, constant_answer
from .scoring import LIST, score_text
from .splits import spread_sample

CHUNK = 16
"""Rows of each set per batched ``generate`` call: the cap is checked between calls.  16 + 16 rows (the default
sample) in one call took 4.4 s against 7.7 s in two calls of 8 + 8 (distilgpt2 shape, 2 cores, bench/RESULTS.md)."""
SCORE_SECONDS = 20.0
"""Most seconds one epoch's sample may take to generate; past it the sample shrinks (see the module docstring)."""


class EpochScorer:
    """Scores a model on a run's fixed per-epoch sample; ``score(model, tokenizer)`` → (taught, unseen).

    The sample and the constant answer are picked when first used (the first epoch's end), not before the first
    step: over 80,000 rows they take over a second."""

    def __init__(self, train: pd.DataFrame, val: pd.DataFrame, rows: int, kind: str = LIST,
                 extra_column: str | None = None, seconds: float = SCORE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.kind, self.extra_column, self.seconds, self.clock = kind, extra_column, seconds, clock
        self.metric = MAIN_METRIC.get(kind, "f1")
        self._train, self._val, self._rows = train, val, rows

    @cached_property
    def taught(self) -> pd.DataFrame:
        return spread_sample(self._train, self._rows) if self._rows and len(self._train) else self._train.iloc[:0]

    @cached_property
    def unseen(self) -> pd.DataFrame:
        return spread_sample(self._val, self._rows) if self._rows and len(self._val) else self._val.iloc[:0]

    @cached_property
    def answer(self) -> str:
        return constant_answer(self._train["target"], self.kind, self.extra_column) if len(self._train) else ""

    @cached_property
    def constant(self) -> float | None:
        return self._constant()

    def _constant(self) -> float | None:
        """The constant answer's mean score on the unseen sample (None without unseen rows)."""
        return self._mean([self.answer] * len(self.unseen), list(self.unseen["target"]))

    def _mean(self, generated: list[str], references: list[str]) -> float | None:
        if not generated:
            return None
        scores = [score_text(g, r, self.kind, self.extra_column)[self.metric] for g, r in zip(generated, references)]
        return float(sum(scores) / len(scores))

    def score(self, model, tokenizer) -> tuple[float | None, float | None]:
        """Greedy scores of the taught and the unseen sample (None for a set with no row done under the cap)."""
        sets = [self.taught, self.unseen]  # picked before the clock starts (the first time: over a second)
        start = self.clock()
        done: list[list[str]] = [[], []]
        over = False
        for i in range(0, max(len(s) for s in sets), CHUNK):
            if i and self.clock() - start > self.seconds:  # the first chunk always: a sample never shrinks to 0
                over = True
                break
            names = [list(s["prompt"].iloc[i:i + CHUNK]) for s in sets]
            texts = generate_batch(model, tokenizer, names[0] + names[1])
            done[0] += texts[:len(names[0])]
            done[1] += texts[len(names[0]):]
        if over:  # keep the rows that fit, for every later epoch
            self.taught, self.unseen = self.taught.iloc[:len(done[0])], self.unseen.iloc[:len(done[1])]
            self.constant = self._constant()
        return (self._mean(done[0], list(self.taught["target"].iloc[:len(done[0])])),
                self._mean(done[1], list(self.unseen["target"].iloc[:len(done[1])])))


def generate_batch(model, tokenizer, names: list[str]) -> list[str]:
    """Evaluation's greedy text for several names in one ``generate`` call (prompts padded on the left, so each
    row's text is what ``generation.generate`` gives it alone: the attention mask hides the padding)."""
    import torch

    from .data import format_prompt
    from .evaluation import GREEDY
    from .generation import clean_name, decode_continuation, generation_kwargs

    if not names:
        return []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer([format_prompt(clean_name(n)) for n in names], return_tensors="pt", padding=True,
                        add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    device = next(model.parameters()).device
    width = enc["input_ids"].shape[1]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model.generate(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
                                 **generation_kwargs(model, tokenizer, GREEDY, width))
    finally:
        model.train(was_training)
    return [decode_continuation(tokenizer, row[width:].tolist()) for row in out]
