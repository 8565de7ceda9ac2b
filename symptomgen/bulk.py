"""Bulk generation, the synthetic-data workflow: many disease names in, one CSV row per name out.

Names come from a list (one per line; ``parse_names``) or from a run's own table (``table_names``: its training and
validation names).  ``generate_many`` writes each name's generated text beside the reference where the name is in
the run's data (or, for a base model, in the bundled sample) and the score that fits the run's target
(``scoring``: phrase F1 for comma lists, ROUGE-L for free text).  A ``stop`` flag is checked before each name;
what was generated until then is kept.  No gradio here: the Generate tab and ``generate --names-file`` call it.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .config import GenerationSettings
from .data import squash_spaces
from .errors import InvalidInput
from .runs import Run
from .scoring import LIST

COLUMNS = ("name", "generated", "reference", "score")
SCORE_NAMES = {LIST: "phrase F1", "text": "ROUGE-L"}
"""What ``score`` holds, by the run's target kind: shared phrases (comma lists) or ROUGE-L (free text), 0 to 1."""
_SCORE_KEYS = {LIST: "f1", "text": "rougeL"}


@dataclass
class BulkResult:
    """The rows generated (``COLUMNS``), whether a stop ended it early, and what ``score`` measures."""

    rows: list[dict] = field(default_factory=list)
    total: int = 0
    stopped: bool = False
    score_name: str = SCORE_NAMES[LIST]

    def summary(self) -> str:
        known = sum(r["reference"] != "" for r in self.rows)
        how = (f"Stopped after {len(self.rows)} of {self.total}" if self.stopped
               else f"Generated for {self.total}")
        return (f"{how} name(s); {known} had a reference in the data, scored by {self.score_name} "
                "(0 to 1, higher shares more with the reference).")


def _key(name: str) -> str:
    return squash_spaces(name).lower()


def parse_names(text: str, cap: int | None = None) -> list[str]:
    """The names in ``text``, one per line: blank lines and repeats (spacing and case aside) left out; each checked
    as a disease name; more than ``cap`` refused in one sentence."""
    from .generation import clean_name

    names, seen = [], set()
    for line in str(text or "").splitlines():
        if not line.strip() or _key(line) in seen:
            continue
        seen.add(_key(line))
        names.append(clean_name(line))
        if cap is not None and len(names) > cap:
            raise InvalidInput(f"More than {cap} names: generate for at most {cap} at a time.")
    if not names:
        raise InvalidInput("Give at least one disease name, one per line.")
    return names


def table_names(run: Run, cap: int | None = None) -> list[str]:
    """A run's own names (training then validation split), each once, refused past ``cap``."""
    train, val = run.split_frames()
    names = "\n".join(str(n) for frame in (train, val) for n in frame["prompt"])
    try:
        return parse_names(names, cap)
    except InvalidInput:
        if cap is None:
            raise
        raise InvalidInput(f"Run {run.run_id}'s table has more than {cap} names: give a list of at most {cap} "
                           "instead.") from None


def generate_many(model, tokenizer, names: list[str], settings: GenerationSettings, run: Run | None = None,
                  stop: threading.Event | None = None,
                  on_row: Callable[[int, int, dict], None] | None = None) -> BulkResult:
    """One row per name: its generated text (one sequence of ``settings``), the reference where known and its score.
    ``on_row(done, total, row)`` follows each row; ``stop``, checked before each name, ends it early."""
    from .catalog import reference_for, target_kind
    from .generation import generate
    from .scoring import score_text

    kind = target_kind(run)
    extra = run.record().extra_target_column if run is not None else None
    settings = settings.with_(num_return_sequences=1)
    result = BulkResult(total=len(names), score_name=SCORE_NAMES[kind])
    for name in names:
        if stop is not None and stop.is_set():
            result.stopped = True
            break
        text = generate(model, tokenizer, name, settings)[0]
        ref = reference_for(run, name)
        score = "" if ref is None else round(score_text(text, ref[0], kind, extra)[_SCORE_KEYS[kind]], 4)
        row = {"name": name, "generated": text, "reference": "" if ref is None else ref[0], "score": score}
        result.rows.append(row)
        if on_row is not None:
            on_row(len(result.rows), result.total, row)
    return result


def write_csv(result: BulkResult, path: Path | str) -> Path:
    """The rows as a CSV file (``COLUMNS``; empty reference and score where the name is not in the data)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(result.rows)
    return path
