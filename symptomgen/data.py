"""Data: load a table, map its columns to (prompt, target), validate, split.

Pure functions over pandas DataFrames.  The one text template the model sees
(``format_example``/``format_prompt``) lives here too, so training and
generation cannot disagree about it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .config import SAMPLE_SOURCE, DataConfig
from .errors import DataError, HubUnreachableError, first_line
from .hub import hub_reachable, looks_like_hub_id, unreachable_message
from .limits import check_delimited_header, check_frame, check_parquet
from .phrases import extra_section, symptoms_only  # noqa: F401 (public here too: part of the target's format)
from .scoring import KIND_WORDS, LIST, SCORE_WORDS, detect_target_kind
from .settings import current
from .splits import SplitStats, split_rows

SAMPLE_PATH = Path(__file__).parent / "sample_data" / "diseases_sample.csv"
SEPARATOR = " |"
MAX_CELL_CHARS = 2000
FILE_SUFFIXES = {".csv", ".tsv", ".json", ".jsonl", ".parquet"}



def squash_spaces(name: str) -> str:
    """A name with its runs of whitespace collapsed: the form training, generation and lookups agree on."""
    return " ".join(str(name).split())


def format_prompt(name: str) -> str:
    """The generation prompt for a disease name: ``"Kidney Failure |"`` (spacing squashed, as
    ``generation.clean_name`` does, so a name in the data and the same name typed in agree)."""
    return f"{squash_spaces(name)}{SEPARATOR}"


def format_target(target: str) -> str:
    """The continuation the model learns after the prompt (leading space, as BPE likes)."""
    return f" {target.strip()}"


def format_example(name: str, target: str) -> str:
    """Training text without EOS: ``"Kidney Failure | Fatigue, ..."`` (the seed's format)."""
    return format_prompt(name) + format_target(target)


@dataclass(frozen=True)
class PreparedData:
    """Rows ready for training, with an account of what was dropped and why."""

    train: pd.DataFrame
    val: pd.DataFrame
    source: str
    rows_read: int
    dropped: dict[str, int] = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    split_stats: SplitStats | None = None
    """How the rows were split (mode, names, rows per name, overlap) and why."""
    target_kind: str = LIST
    """``list`` or ``text`` (``scoring.detect_target_kind``): how generations of this data are scored."""

    @property
    def kept(self) -> int:
        return len(self.train) + len(self.val)

    def summary(self) -> str:
        drop = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n) or "none"
        text = (f"{self.rows_read} rows read from {public_source(self.source)}; kept {self.kept} "
                f"(dropped: {drop}); train {len(self.train)}, validation {len(self.val)}.")
        if self.split_stats is not None:
            text += " " + self.split_stats.describe()
        return text + (f" Targets read as {KIND_WORDS[self.target_kind]}, so generations are scored with "
                       f"{SCORE_WORDS[self.target_kind]}.")


def source_kind(source: str) -> Literal["sample", "file", "hub"]:
    """What a data source names, decided in this one place: the bundled sample, a local file (a file suffix, an
    existing path, or anything that is not a Hub id), or a Hub dataset id."""
    source = str(source).strip()
    if source == SAMPLE_SOURCE:
        return "sample"
    path = Path(source).expanduser()
    if path.suffix.lower() in FILE_SUFFIXES or path.exists() or not looks_like_hub_id(source):
        return "file"
    return "hub"


def public_source(source: str) -> str:
    """The data source as shown to people: a local file by its name only (an upload's server path is noise,
    and a model card must not publish a path)."""
    source = str(source)
    return Path(source).name if source_kind(source) == "file" else source


def _read_json(path: Path, head: bytes, suffix: str) -> pd.DataFrame:
    """Records (``[{...}, ...]``), pandas' column layout (``{"col": {...}}``) or JSON lines; a BOM is fine."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if suffix == ".json" and text.startswith(b"["):
        return pd.read_json(path, dtype=False, encoding="utf-8-sig")
    if suffix == ".json" and text.startswith(b"{"):
        try:
            whole = json.loads(path.read_text(encoding="utf-8-sig"))
        except ValueError:
            whole = None  # "{...}\n{...}": JSON lines in a .json file
        # pandas' column layout maps every column to {row: value}; one object of plain values is one record.
        if isinstance(whole, dict) and whole and all(isinstance(v, (dict, list)) for v in whole.values()):
            return pd.read_json(path, dtype=False, encoding="utf-8-sig")
    return pd.read_json(path, lines=True, dtype=False, encoding="utf-8-sig")


def _read_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"{path.name}: unsupported file type {suffix or '(none)'}; "
                        f"use one of {', '.join(sorted(FILE_SUFFIXES))}.")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name} is empty.")
    limits = current()
    if size > limits.max_file_bytes:
        raise DataError(f"{path.name} is {size / 2**20:.0f} MB; the limit is {limits.max_file_bytes / 2**20:.0f} MB.")
    try:
        frame = _parse_file(path, suffix, limits)
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise DataError(f"{path.name} could not be read as {suffix[1:].upper()}: {first_line(exc)}") from exc
    check_frame(frame, path.name)
    return frame


def _parse_file(path: Path, suffix: str, limits) -> pd.DataFrame:
    """The table in ``path``, its shape checked from its header or footer first where the format states it."""
    if suffix == ".parquet":
        check_parquet(path, path.name, limits.max_rows)
        return pd.read_parquet(path)
    with open(path, "rb") as fh:
        head = fh.read(8192)  # the first bytes only: never the whole file to sniff it
    if b"\x00" in head:
        raise DataError(f"{path.name} looks like a binary file, not {suffix[1:].upper()} text.")
    if suffix in (".json", ".jsonl"):
        return _read_json(path, head, suffix)
    sep = "\t" if suffix == ".tsv" else ","
    check_delimited_header(path, path.name, sep)
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, nrows=limits.max_rows + 1,
                           encoding="utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheet exports are often Windows-1252; latin-1 decodes any byte.
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, nrows=limits.max_rows + 1,
                           encoding="latin-1")


def _read_hub(dataset_id: str, split: str) -> pd.DataFrame:
    if not hub_reachable():
        raise HubUnreachableError(unreachable_message(f"dataset '{dataset_id}'"))
    import datasets  # heavy import, only when needed

    try:
        return datasets.load_dataset(dataset_id, split=split).to_pandas()
    except Exception as exc:
        raise DataError(f"Hub dataset '{dataset_id}' (split '{split}') could not be loaded: "
                        f"{first_line(exc)}") from exc


def load_records(source: str = SAMPLE_SOURCE, split: str = "train") -> pd.DataFrame:
    """Read a raw table from ``"sample"``, a local file, or a Hub dataset id."""
    source = str(source).strip()
    kind = source_kind(source)
    if kind == "sample":
        return _read_file(SAMPLE_PATH)
    if kind == "file":
        return _read_file(Path(source).expanduser())
    return _read_hub(source, split)


def _names(names, most: int = 12, chars: int = 60) -> str:
    """Column names for a message: the first ``most``, each cut to ``chars``, then how many more (a table of
    20,000 columns, or a caller's megabyte of a name, is not quoted whole)."""
    names = list(names)
    cut = [str(n) if len(str(n)) <= chars else str(n)[:chars] + "…" for n in names[:most]]
    return ", ".join(cut) + (f" and {len(names) - most} more" if len(names) > most else "")


def _clean(series: pd.Series) -> pd.Series:
    """Cells as stripped strings; NaN/None become empty strings."""
    return series.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())


def select_columns(df: pd.DataFrame, cfg: DataConfig, label: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Map columns to ``prompt``/``target``, drop unusable rows, count why."""
    if df.empty and len(df.columns) == 0:
        raise DataError(f"{label} has no columns or rows.")
    wanted = [cfg.prompt_column, cfg.target_column] + ([cfg.extra_target_column] if cfg.extra_target_column else [])
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise DataError(f"{label} is missing column(s) {_names(missing)}; found columns: "
                        f"{_names(df.columns) or 'none'}; expected prompt column '{_names([cfg.prompt_column])}' "
                        f"and target column '{_names([cfg.target_column])}'.")
    max_rows = current().max_rows
    if len(df) > max_rows:
        raise DataError(f"{label} has more than {max_rows} rows; the limit is {max_rows}.")
    prompt = _clean(df[cfg.prompt_column])
    target = _clean(df[cfg.target_column])
    if cfg.extra_target_column:
        extra = _clean(df[cfg.extra_target_column])
        target = target.where(extra == "", target + extra_section(cfg.extra_target_column, extra))
    # Control characters would confuse the tokenizer and the page; keep tabs as spaces.
    prompt = prompt.str.replace(r"[\x00-\x1f\x7f]+", " ", regex=True).str.strip()
    target = target.str.replace(r"[\x00-\x1f\x7f]+", " ", regex=True).str.strip()
    empty_prompt = prompt == ""
    empty_target = ~empty_prompt & (target == "")
    too_long = ~empty_prompt & ~empty_target & ((prompt.str.len() > 200) | (target.str.len() > MAX_CELL_CHARS))
    keep = ~(empty_prompt | empty_target | too_long)
    dropped = {"empty prompt": int(empty_prompt.sum()), "empty target": int(empty_target.sum()),
               "over-long cell": int(too_long.sum())}
    out = pd.DataFrame({"prompt": prompt[keep], "target": target[keep]}).reset_index(drop=True)
    return out, dropped


def prepare(cfg: DataConfig, frame: pd.DataFrame | None = None) -> PreparedData:
    """Load (unless ``frame`` is given), map columns, validate and split."""
    label = "The bundled sample" if cfg.source == SAMPLE_SOURCE else Path(cfg.source).name or cfg.source
    raw = load_records(cfg.source, cfg.split) if frame is None else frame
    if len(raw) == 0:
        raise DataError(f"{label} has a header but no rows." if len(raw.columns) else f"{label} is empty.")
    rows, dropped = select_columns(raw, cfg, label)
    if len(rows) < 2:
        raise DataError(f"{label} has {len(rows)} usable row(s) after dropping empty cells; at least 2 are needed.")
    train, val, stats = split_rows(rows, cfg.val_fraction, cfg.seed, cfg.split_by)
    return PreparedData(train=train, val=val, source=cfg.source, rows_read=len(raw), dropped=dropped,
                        split_stats=stats, target_kind=detect_target_kind(rows["target"], cfg.extra_target_column))
