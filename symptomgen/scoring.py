"""Scores that fit the target: phrase overlap for comma lists, ROUGE for free text (no torch: the page imports it).

A run learns one of two kinds of target, decided from its data by ``detect_target_kind`` and stored in its record:

- ``list``: short phrases separated by commas ("Fever, dry cough, fatigue").  Scored by the phrases the generated
  text shares with the reference (``phrases.overlap``): precision, recall, F1.
- ``text``: sentences ("For three days I have had a fever and my chest hurts when I breathe.").  Phrase overlap
  cannot score those (two people never cut a sentence into the same phrases), so they get ROUGE-1 (shared words)
  and ROUGE-L (longest common word subsequence), F-measure, from Google's ``rouge-score`` package.

The rule, on the target cells (an appended extra column left out): cut each cell into phrases as ``phrases``
does (commas, semicolons, "and"); the table is a ``list`` when its typical (median) cell has at least
``LIST_MIN_PHRASES`` phrases and its typical cell's longest phrase has at most ``LIST_MAX_PHRASE_WORDS`` words,
and ``text`` otherwise.  Symptom lists have short phrases (the real dataset: median longest phrase 4 words);
a sentence nearly always has a stretch of 7 or more words between two commas.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from .phrases import overlap, phrase_pieces, symptoms_only

LIST, TEXT = "list", "text"
TARGET_KINDS = (LIST, TEXT)
LIST_MIN_PHRASES = 2
LIST_MAX_PHRASE_WORDS = 6
METRIC_KEYS = {LIST: ("precision", "recall", "f1"), TEXT: ("rouge1", "rougeL")}
"""The per-row scores of each kind, as ``score_text`` returns them (and evaluation reports them)."""
KIND_WORDS = {LIST: "a comma-separated list", TEXT: "free text"}
SCORE_WORDS = {LIST: "phrase precision/recall/F1", TEXT: "ROUGE-1 and ROUGE-L"}
EVALUATION_FILE = "evaluation.json"
"""In a run folder: its last evaluation on its own split (``evaluation.evaluate_run`` writes it, the card reads it)."""


def detect_target_kind(targets: Iterable[str], extra_column: str | None = None) -> str:
    """``"list"`` or ``"text"`` for a column of target cells, by the rule in the module docstring."""
    counts, longest = [], []
    for cell in targets:
        words = [len(piece.split()) for piece, norm in phrase_pieces(symptoms_only(cell, extra_column)) if norm]
        if words:
            counts.append(len(words))
            longest.append(max(words))
    if not counts:
        return LIST
    is_list = np.median(counts) >= LIST_MIN_PHRASES and np.median(longest) <= LIST_MAX_PHRASE_WORDS
    return LIST if is_list else TEXT


class _Words:
    """ROUGE's tokenizer: lower-cased words of any script (rouge-score's own keeps only a-z and 0-9, which scores
    every non-English text 0), English words longer than 3 letters Porter-stemmed as rouge-score does."""

    def __init__(self):
        from nltk.stem import porter  # comes with rouge-score; pure code, no downloaded data

        self._stem = porter.PorterStemmer().stem

    def tokenize(self, text: str) -> list[str]:
        words = re.findall(r"\w+", str(text).lower())
        return [self._stem(w) if len(w) > 3 and w.isascii() and w.isalpha() else w for w in words]


@functools.cache
def _scorer():
    from rouge_score import rouge_scorer  # imported when first scoring: about half a second (nltk)

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], tokenizer=_Words())


def rouge(generated: str, reference: str) -> tuple[float, float]:
    """(ROUGE-1, ROUGE-L) F-measures of ``generated`` against ``reference``; 0 when either has no words."""
    scores = _scorer().score(str(reference), str(generated))  # rouge-score takes (target, prediction)
    return float(scores["rouge1"].fmeasure), float(scores["rougeL"].fmeasure)


def score_text(generated: str, reference: str, kind: str, extra_column: str | None = None) -> dict:
    """One row's scores for a run's kind: ``matched`` (the shared phrases, lists only; "" for text) and the
    ``METRIC_KEYS[kind]`` numbers.  An appended extra column is left out on both sides."""
    if kind == TEXT:
        r1, rl = rouge(symptoms_only(generated, extra_column), symptoms_only(reference, extra_column))
        return {"matched": "", "rouge1": r1, "rougeL": rl}
    o = overlap(generated, reference, extra_column)
    return {"matched": ", ".join(o.matched), "precision": o.precision, "recall": o.recall, "f1": o.f1}


def saved_evaluation(run_dir: Path | str) -> dict | None:
    """The last evaluation of a run on its own split, as ``evaluation.evaluate_run`` kept it, or None."""
    try:
        data = json.loads((Path(run_dir) / EVALUATION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
