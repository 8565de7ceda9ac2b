"""Symptom phrases: how generated text is compared with a reference (no torch here: the page imports it).

A text is cut on commas, semicolons and the word "and"; each piece is lower-cased, its spaces collapsed and its
end punctuation trimmed.  ``overlap`` scores two texts by the phrases they share; ``phrase_pieces`` keeps the
separators so a page can highlight the matched phrases in the original text.  How an extra column is appended
to a target (``extra_section``) and cut off again (``symptoms_only``) lives here too, so this module imports
nothing of the package (``data`` builds on it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATORS = re.compile(r"([,;]|\band\b)", re.IGNORECASE)


def extra_section(column: str, text):
    """How an optional column is appended to the target: ``"; Treatments: rest, fluids"``."""
    return f"; {column}: " + text


def symptoms_only(text: str, extra_column: str | None) -> str:
    """A target (or generated text) without the ``"; <extra_column>: ..."`` section a run appended to it."""
    text = str(text)
    return text.split(extra_section(extra_column, ""), 1)[0] if extra_column else text


def normalise_phrase(part: str) -> str:
    """How a phrase is compared: lower-case, spaces collapsed, end punctuation and quotes trimmed."""
    return re.sub(r"\s+", " ", part.lower()).strip(" .\t\"'")


def phrase_pieces(text: str) -> list[tuple[str, str | None]]:
    """``text`` cut into pieces that join back to it: (piece, its normalised phrase), or (separator, None)."""
    parts = _SEPARATORS.split(str(text))
    return [(part, normalise_phrase(part) if i % 2 == 0 else None) for i, part in enumerate(parts)]


def phrases(text: str) -> set[str]:
    """Normalised symptom phrases: split on commas/semicolons/'and', lower-case, trimmed."""
    return {norm for _, norm in phrase_pieces(text) if norm}


@dataclass(frozen=True)
class Overlap:
    precision: float
    recall: float
    f1: float
    matched: tuple[str, ...] = ()


def overlap(generated: str, reference: str, extra_column: str | None = None) -> Overlap:
    """Symptom phrases shared by the two texts.  A run that also learned ``extra_column`` appends it
    (``"; Treatments: …"``): that section is not symptoms, so it is left out on both sides."""
    gen, ref = phrases(symptoms_only(generated, extra_column)), phrases(symptoms_only(reference, extra_column))
    hit = gen & ref
    p = len(hit) / len(gen) if gen else 0.0
    r = len(hit) / len(ref) if ref else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Overlap(p, r, f1, tuple(sorted(hit)))
