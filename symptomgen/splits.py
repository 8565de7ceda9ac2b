"""Train/validation splits that fit the data, their statistics, and evaluation rows spread over names.

Two ways to split, both seeded with NumPy's PCG64 generator (``default_rng``), whose stream is fixed across
platforms and versions, so the same table, fraction and seed give the same split on every machine:

- ``by-row``: stratified by name.  Each name with two or more rows puts ``round(rows × fraction)`` of them
  (at least 1, at most all but 1) in validation, so every such name is on both sides in about the asked
  proportion; names with a single row are pooled and split by the fraction.  Validation then asks "new text for a
  name the model has seen", which is what a table of many descriptions per name is for.
- ``by-name``: whole names go to one side (validation names are unseen in training): the old behaviour, and the
  right test when each name has one row, or when the question is how the model does on names it never saw.

``auto`` picks ``by-row`` when names repeat — the typical (median) name has 2 rows or more — and ``by-name``
otherwise, so a table with a handful of duplicate names (the real disease table has 8 among 397) keeps its
by-name split.  Names are compared as prompts are matched everywhere: spacing collapsed, case ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DataError

AUTO, BY_ROW, BY_NAME = "auto", "by-row", "by-name"
MODE_WORDS = {BY_ROW: "by row, stratified by name", BY_NAME: "by name"}


def name_keys(prompts: pd.Series) -> pd.Series:
    """Names as compared for splitting and sampling: runs of whitespace collapsed, lower-cased."""
    return prompts.map(lambda p: " ".join(str(p).split()).lower())


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


@dataclass(frozen=True)
class SplitStats:
    """What a split did, for the preview, the CLI, the run record and the model card."""

    mode: str
    """How the rows were split: ``by-row`` or ``by-name``."""
    requested: str
    """What was asked for: ``auto``, ``by-row`` or ``by-name``."""
    names: int
    rows_per_name_min: int
    rows_per_name_median: float
    rows_per_name_max: int
    val_names: int
    val_names_in_train: int
    """Validation names that also have rows in training (0 for by-name)."""
    reason: str
    """One sentence: why this mode, and what validation then measures."""

    def describe(self) -> str:
        """``"Split by row, stratified by name (auto): 21 names, 50 rows each; 21 of 21 validation names also in
        training. <reason>"``"""
        if self.rows_per_name_min == self.rows_per_name_max:
            rows = f"{self.rows_per_name_max} row{'s' if self.rows_per_name_max != 1 else ''} each"
        else:
            rows = (f"rows per name min {self.rows_per_name_min}, median {self.rows_per_name_median:g}, "
                    f"max {self.rows_per_name_max}")
        return (f"Split {MODE_WORDS[self.mode]} ({self.requested}): {self.names} names, {rows}; "
                f"{self.val_names_in_train} of {self.val_names} validation names also in training. {self.reason}")


def choose_mode(keys: pd.Series, requested: str) -> tuple[str, str]:
    """(mode used, the one-sentence reason) for ``requested`` on these name keys."""
    median = float(np.median(keys.value_counts().to_numpy())) if len(keys) else 0.0
    if requested == BY_NAME:
        return BY_NAME, ("Split by name as chosen: validation tests names the model never saw, which is harder; "
                         "its loss may rise after the first epochs while the training loss falls.")
    if requested == BY_ROW:
        return BY_ROW, ("Split by row as chosen: each name with 2 or more rows has rows on both sides, so "
                        "validation measures new text for names the model has seen.")
    if requested != AUTO:
        raise DataError(f"Split by must be one of {AUTO}, {BY_ROW}, {BY_NAME}, got {requested!r}.")
    if median >= 2:
        return BY_ROW, (f"Names repeat (a typical name has {median:g} rows), so each name's rows are split between "
                        "training and validation and validation measures new text for names the model has seen "
                        "(choose by-name to validate on unseen names).")
    return BY_NAME, ("Names rarely repeat, so the split is by name: validation names are unseen in training.")


def _by_name(keys: pd.Series, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    names = np.array(sorted(keys.unique()))
    if len(names) < 2:
        raise DataError(f"Need at least 2 distinct prompts to split by name into train and validation, got "
                        f"{len(names)}; split by row instead.")
    order = rng.permutation(len(names))
    n_val = min(len(names) - 1, max(1, int(round(len(names) * val_fraction))))  # as before: same splits as ever
    return keys.isin(set(names[order[:n_val]])).to_numpy()


def _by_row(keys: pd.Series, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    is_val = np.zeros(len(keys), dtype=bool)
    groups = pd.Series(np.arange(len(keys))).groupby(keys.to_numpy(), sort=True).indices
    singles = []
    for key in sorted(groups):
        rows = groups[key]
        if len(rows) == 1:
            singles.append(rows[0])
            continue
        n_val = min(len(rows) - 1, max(1, _half_up(len(rows) * val_fraction)))
        is_val[rows[rng.permutation(len(rows))[:n_val]]] = True
    if singles:
        singles_arr = np.array(singles)
        n_val = _half_up(len(singles_arr) * val_fraction)
        if len(singles_arr) == len(keys):  # no repeated name: validation and training both need a row
            n_val = min(len(singles_arr) - 1, max(1, n_val))
        is_val[singles_arr[rng.permutation(len(singles_arr))[:n_val]]] = True
    return is_val


def split_rows(df: pd.DataFrame, val_fraction: float, seed: int,
               mode: str = AUTO) -> tuple[pd.DataFrame, pd.DataFrame, SplitStats]:
    """(train, validation, statistics) of ``df`` (``prompt``, ``target`` columns); rows keep their order."""
    if len(df) < 2:
        raise DataError(f"Need at least 2 rows to split into train and validation, got {len(df)}.")
    keys = name_keys(df["prompt"])
    used, reason = choose_mode(keys, mode)
    rng = np.random.default_rng(seed)
    is_val = (_by_row if used == BY_ROW else _by_name)(keys, val_fraction, rng)
    counts = keys.value_counts().to_numpy()
    val_names = set(keys[is_val])
    stats = SplitStats(mode=used, requested=mode, names=len(counts), rows_per_name_min=int(counts.min()),
                       rows_per_name_median=float(np.median(counts)), rows_per_name_max=int(counts.max()),
                       val_names=len(val_names), val_names_in_train=len(val_names & set(keys[~is_val])),
                       reason=reason)
    return df[~is_val].reset_index(drop=True), df[is_val].reset_index(drop=True), stats


def spread_sample(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of ``frame`` spread across names: names in a seeded order, then round-robin — each name's first
    (seeded) row, then each name's second, and so on — so ``n`` rows cover ``min(n, names)`` names.  All rows, in
    their order, when ``n`` covers them."""
    if n >= len(frame):
        return frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    groups = pd.Series(np.arange(len(frame))).groupby(name_keys(frame["prompt"]).to_numpy(), sort=True).indices
    names = sorted(groups)
    shuffled = [groups[names[i]][rng.permutation(len(groups[names[i]]))] for i in rng.permutation(len(names))]
    picked: list[int] = []
    for depth in range(max(len(g) for g in shuffled)):
        picked += [int(g[depth]) for g in shuffled if depth < len(g)]
        if len(picked) >= n:
            break
    return frame.iloc[picked[:n]].reset_index(drop=True)
