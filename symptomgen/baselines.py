"""Baselines beside every score: what a model must beat to have learned anything (no torch, no model: seconds).

Two answers built from a run's own training rows only, scored with the model's scorer (``scoring.score_text``) on
the very rows the model is scored on:

- ``constant``: one answer for every row.  For comma lists, the ``k`` phrases found in the most training rows,
  ``k`` the median number of phrases per training row ("fatigue, swelling, fever, nausea" on the real disease
  table).  For free text, the training text most typical of the others: every text is ranked by the words it
  shares with the rest (document frequencies, O(rows × words)), and the best ``TEXT_CANDIDATES`` of them are
  re-ranked by their mean ROUGE-L against a seeded sample of ``TEXT_SAMPLE`` other training texts.
- ``lookup``: the training target of the same name (names compared as everywhere: spacing collapsed, case
  ignored; a name's first training row) where the name was taught; otherwise that of the most similar taught
  name by ``difflib`` ratio.  Above ``FULL_SCAN_NAMES`` taught names, the ratio is only taken for the
  ``SHORTLIST`` names sharing the most character trigrams with the query, so a table of 100 000 names costs a
  bincount per unseen name, not 100 000 ratios.

``verdict`` turns an evaluation (``evaluation.evaluate_run``'s result or its saved ``evaluation.json``) into the
one sentence shown above the scores in the CLI, the Evaluate tab and the model card.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter

import numpy as np
import pandas as pd

from .phrases import phrase_pieces, symptoms_only
from .scoring import LIST, METRIC_KEYS, TEXT, score_text
from .splits import name_keys

CONSTANT, LOOKUP = "constant", "lookup"
BASELINES = (CONSTANT, LOOKUP)
BASELINE_WORDS = {CONSTANT: "a constant answer", LOOKUP: "a lookup"}
BASELINE_LABELS = {CONSTANT: "constant answer", LOOKUP: "lookup"}
"""Column titles in the tab, the card and the CLI table."""
MAIN_METRIC = {LIST: "f1", TEXT: "rougeL"}
METRIC_NAMES = {"f1": "F1", "precision": "precision", "recall": "recall", "rouge1": "ROUGE-1", "rougeL": "ROUGE-L"}
LEVEL = 0.005
"""Scores closer than this are called level (the tables show two or four decimals)."""
TEXT_CANDIDATES = 12
TEXT_SAMPLE = 48
FULL_SCAN_NAMES = 2000
SHORTLIST = 200


# -- constant ---------------------------------------------------------------------------------
def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def constant_list_answer(targets, extra_column: str | None = None) -> str:
    """The ``k`` phrases in the most targets (ties: the first seen), ``k`` the median phrase count per target."""
    counts: Counter[str] = Counter()
    per_row = []
    for cell in targets:
        found = {norm for _, norm in phrase_pieces(symptoms_only(cell, extra_column)) if norm}
        per_row.append(len(found))
        counts.update(sorted(found))
    if not counts:
        return ""
    seen = {p: i for i, p in enumerate(counts)}  # a Counter keeps the order phrases were first counted
    k = max(1, _half_up(float(np.median(per_row))))
    ranked = sorted(counts, key=lambda p: (-counts[p], seen[p]))
    return ", ".join(ranked[:k])


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def constant_text_answer(targets, extra_column: str | None = None, seed: int = 0) -> str:
    """The training text most typical of the others (see the module docstring): highest mean ROUGE-L against a
    seeded sample of the other texts, among the ``TEXT_CANDIDATES`` that share the most words with the rest."""
    texts = [symptoms_only(t, extra_column).strip() for t in targets]
    texts = [t for t in texts if t]
    if len(texts) <= 1:
        return texts[0] if texts else ""
    bags = [_words(t) for t in texts]
    df: Counter[str] = Counter()
    for bag in bags:
        df.update(bag)
    n, mean_len = len(texts), float(np.mean([len(b) for b in bags]))
    # Expected unigram F1 against a random other text: shared words over the mean of the two lengths.
    rough = np.array([2 * sum(df[w] - 1 for w in bag) / (n - 1) / (len(bag) + mean_len) if bag else 0.0
                      for bag in bags])
    candidates = np.argsort(-rough, kind="stable")[:TEXT_CANDIDATES]
    rng = np.random.default_rng(seed)
    sample = rng.permutation(n)[: TEXT_SAMPLE + 1]
    best, best_score = int(candidates[0]), -1.0
    for c in candidates:
        others = [texts[j] for j in sample if j != c][:TEXT_SAMPLE]
        score = float(np.mean([score_text(texts[c], o, TEXT)["rougeL"] for o in others]))
        if score > best_score:
            best, best_score = int(c), score
    return texts[best]


def constant_answer(targets, kind: str, extra_column: str | None = None) -> str:
    """The one answer given to every row, from the training targets, for the run's target ``kind``."""
    return (constant_text_answer if kind == TEXT else constant_list_answer)(list(targets), extra_column)


# -- lookup -----------------------------------------------------------------------------------
def _trigrams(key: str) -> set[str]:
    padded = f"  {key} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


class NameLookup:
    """Taught name → its first training target; any other name → the target of the most similar taught name."""

    def __init__(self, names, targets):
        self.index: dict[str, str] = {}
        for key, target in zip(name_keys(pd.Series(list(names), dtype=object)), targets):
            self.index.setdefault(key, str(target))
        self.keys = list(self.index)
        self._nearest: dict[str, str] = {}
        self._postings: dict[str, np.ndarray] | None = None

    def _shortlist(self, key: str) -> list[str]:
        if len(self.keys) <= FULL_SCAN_NAMES:
            return self.keys
        if self._postings is None:
            lists: dict[str, list[int]] = {}
            for i, k in enumerate(self.keys):
                for g in _trigrams(k):
                    lists.setdefault(g, []).append(i)
            self._postings = {g: np.array(v, dtype=np.int64) for g, v in lists.items()}
            self._sizes = np.array([len(_trigrams(k)) for k in self.keys], dtype=float)
        grams = _trigrams(key)
        hits = [self._postings[g] for g in grams if g in self._postings]
        if not hits:
            return self.keys[:SHORTLIST]
        shared = np.bincount(np.concatenate(hits), minlength=len(self.keys))
        dice = 2 * shared / (len(grams) + self._sizes)
        top = np.argpartition(-dice, SHORTLIST)[:SHORTLIST]
        return [self.keys[i] for i in sorted(top)]  # in table order, so ties go to the first taught name

    def nearest(self, key: str) -> str:
        """The taught name (a key) most similar to ``key`` by difflib ratio; ties: the first taught."""
        if key in self.index:
            return key
        if key not in self._nearest:
            matcher = difflib.SequenceMatcher()
            matcher.set_seq2(key)
            best, best_score = None, -1.0
            for name in self._shortlist(key):
                matcher.set_seq1(name)
                # The quick upper bounds skip names that cannot beat the best so far (as get_close_matches does).
                if matcher.real_quick_ratio() <= best_score or matcher.quick_ratio() <= best_score:
                    continue
                score = matcher.ratio()
                if score > best_score:
                    best, best_score = name, score
            self._nearest[key] = best if best is not None else self.keys[0]
        return self._nearest[key]

    def answers(self, names) -> list[str]:
        """The lookup's answer for each name ("" when nothing was taught)."""
        if not self.keys:
            return ["" for _ in names]
        return [self.index[self.nearest(k)] for k in name_keys(pd.Series(list(names), dtype=object))]


# -- scores -----------------------------------------------------------------------------------
def _mean_scores(answers, references, kind: str, extra_column: str | None) -> dict:
    rows = [score_text(a, r, kind, extra_column) for a, r in zip(answers, references)]
    return {k: round(float(np.mean([r[k] for r in rows])) if rows else 0.0, 4) for k in METRIC_KEYS[kind]}


def baseline_scores(train: pd.DataFrame, sets: dict[str, pd.DataFrame], kind: str,
                    extra_column: str | None = None) -> tuple[str, dict[str, dict[str, dict]]]:
    """(the constant answer, ``{set: {"constant": scores, "lookup": scores}}``) on each set's rows (``prompt``,
    ``target``), built from ``train`` only; scores are ``METRIC_KEYS[kind]`` means, and the lookup's also count
    its ``same_name_rows`` (rows whose name was taught)."""
    answer = constant_answer(train["target"], kind, extra_column)
    lookup = NameLookup(train["prompt"], train["target"])
    out = {}
    for name, frame in sets.items():
        refs = list(frame["target"])
        same = int(name_keys(frame["prompt"]).isin(set(lookup.keys)).sum())
        out[name] = {CONSTANT: {**_mean_scores([answer] * len(refs), refs, kind, extra_column), "rows": len(refs)},
                     LOOKUP: {**_mean_scores(lookup.answers(frame["prompt"]), refs, kind, extra_column),
                              "rows": len(refs), "same_name_rows": same}}
    return answer, out


# -- the sentence -----------------------------------------------------------------------------
def _set_words(set_name: str, scored: dict) -> str:
    if set_name == "taught":
        return "taught names"
    return "unseen names" if not scored.get("names_in_training") else "unseen rows"


def verdict(result: dict) -> str:
    """One plain sentence: on taught and on unseen rows, the model against the best of its base model, the
    constant answer and the lookup, by the kind's main greedy score.  "" for an evaluation without baselines."""
    kind = result.get("target_kind") if result.get("target_kind") in MAIN_METRIC else LIST
    key, metric = MAIN_METRIC[kind], METRIC_NAMES[MAIN_METRIC[kind]]
    others = [(CONSTANT, BASELINE_WORDS[CONSTANT]), (LOOKUP, BASELINE_WORDS[LOOKUP]), ("base", "its base model")]
    clauses = []
    for set_name in ("taught", "unseen"):
        scored = result.get(set_name)
        if not isinstance(scored, dict) or not any(isinstance(scored.get(b), dict) for b in BASELINES):
            continue
        model = (scored.get("fine_tuned") or {}).get(key)
        rivals = [(words, (scored.get(k) or {}).get(key)) for k, words in others if isinstance(scored.get(k), dict)]
        rivals = [(words, v) for words, v in rivals if isinstance(v, (int, float))]
        if not isinstance(model, (int, float)) or not rivals:
            continue
        below = [(w, v) for w, v in rivals if v > model + LEVEL]
        level = [(w, v) for w, v in rivals if abs(v - model) <= LEVEL]
        subject = "the model" if not clauses else "it"
        if below:
            words, v = max(below, key=lambda wv: wv[1])
            how = f"{subject} scores below {words} ({metric} {model:.2f} vs {v:.2f})"
        elif level:
            words, v = level[0]
            how = f"{subject} scores level with {words} ({metric} {model:.2f})"
        else:
            words, v = max(rivals, key=lambda wv: wv[1])
            how = f"{subject} beats {words} ({metric} {model:.2f} vs {v:.2f})"
        clauses.append(f"on {_set_words(set_name, scored)} {how}")
    if not clauses:
        return ""
    sentence = "; ".join(clauses)
    return sentence[0].upper() + sentence[1:] + "."


def score_rows(result: dict) -> list[list]:
    """The kind's greedy scores per set of rows: ``[set, metric, fine-tuned, base, constant, lookup]`` (None where
    missing), taught then unseen, the main metric first."""
    kind = result.get("target_kind") if result.get("target_kind") in METRIC_KEYS else LIST
    keys = [MAIN_METRIC[kind]] + [k for k in METRIC_KEYS[kind] if k != MAIN_METRIC[kind]]
    rows = []
    for set_name in ("taught", "unseen"):
        scored = result.get(set_name)
        if not isinstance(scored, dict):
            continue
        for key in keys:
            cells = [(scored.get(side) or {}).get(key) for side in ("fine_tuned", "base", CONSTANT, LOOKUP)]
            rows.append([set_name, f"{METRIC_NAMES[key]} (greedy)", *cells])
    return rows


def format_table(result: dict) -> str:
    """``verdict`` above a plain-text table of ``score_rows`` (the CLI prints it)."""
    head = ["rows", "metric", "fine-tuned", "base model", BASELINE_LABELS[CONSTANT], BASELINE_LABELS[LOOKUP]]
    body = [[str(c) if not isinstance(c, float) else f"{c:.4f}" for c in
             [*r[:2], *("-" if v is None else float(v) for v in r[2:])]] for r in score_rows(result)]
    widths = [max(len(str(row[i])) for row in [head] + body) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body]
    sentence = verdict(result)
    return "\n".join(([sentence, ""] if sentence else []) + lines)
