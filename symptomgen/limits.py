"""A file's shape, checked from its headers before it is parsed: read no more than the cap.

Size caps alone are not enough: a 2 MB zip whose central directory lists a million entries, a 49 MB CSV of 20 000
columns or a small Parquet file of 100 000 nested rows all pass a byte cap and then cost gigabytes and minutes once a
library parses them whole.  Each check here reads a bounded number of bytes (a zip's end-of-central-directory
record, a table's header line, a Parquet footer) and refuses with one sentence before the expensive parse:

- ``check_zip_directory``: entry count and central-directory size from the EOCD record (and its ZIP64 twin);
- ``check_delimited_header``: the column count of a CSV/TSV from its first line;
- ``check_parquet``: rows, columns and nesting from the Parquet footer (``pyarrow.parquet.read_metadata``);
- ``check_frame``: columns and cell length of any table once read (JSON cannot say before parsing).
"""

from __future__ import annotations

import csv
import io
import struct
from pathlib import Path

from .errors import DataError

MAX_COLUMNS = 64
"""Most columns a data table, a run's split or its metrics table may have (ours have at most a dozen)."""
MAX_SPLIT_CELL_CHARS = 20_000
"""Longest text in one cell of an imported run's split (its own runs keep targets under data.MAX_CELL_CHARS)."""
MAX_HEADER_LINE_BYTES = 64 * 1024
"""Longest header line read to count a delimited file's columns."""
MAX_ZIP_ENTRY_BYTES = 46 + 1024 + 256  # a central-directory entry: fixed part, a long name, some extra fields

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


def check_zip_directory(path: Path, label: str, max_entries: int, error: type[Exception] = DataError) -> None:
    """Refuse a zip whose central directory lists more than ``max_entries`` entries (or is larger than that many
    entries can need), read from its end record: at most 64 KB + 20 bytes of the file, before ``zipfile`` builds
    its list of every entry."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        tail_len = min(size, 22 + 65_535 + 20)  # the EOCD record, its comment, and the ZIP64 locator before it
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        at = tail.rfind(_EOCD)
        if at < 0 or at + 22 > len(tail):
            return  # not a zip: the caller's own check says so
        entries, cd_size = struct.unpack("<HI", tail[at + 10:at + 16])  # total entries, directory bytes
        locator = tail[at - 20:at] if at >= 20 else b""
        if locator[:4] == _EOCD64_LOCATOR:  # ZIP64: the real counts sit in the ZIP64 end record
            (offset,) = struct.unpack("<Q", locator[8:16])
            if offset + 56 <= size:
                fh.seek(offset)
                record = fh.read(56)
                if record[:4] == _EOCD64:
                    entries, cd_size = struct.unpack("<Q", record[32:40])[0], struct.unpack("<Q", record[40:48])[0]
    if entries > max_entries:
        raise error(f"{label} lists {entries:,} files; a run archive holds at most {max_entries}.")
    if cd_size > max_entries * MAX_ZIP_ENTRY_BYTES:
        raise error(f"{label} has a file directory of {cd_size >> 10:,} KB, more than {max_entries} files need.")


def check_delimited_header(path: Path, label: str, sep: str = ",", max_columns: int = MAX_COLUMNS,
                           error: type[Exception] = DataError) -> None:
    """Refuse a CSV/TSV with more than ``max_columns`` columns, counted from its header line alone."""
    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER_LINE_BYTES + 1)
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) > MAX_HEADER_LINE_BYTES:
        seen = line.count(sep.encode()) + 1
        if seen > max_columns:
            raise error(f"{label} has more than {seen:,} columns; a table here has at most {max_columns}.")
        raise error(f"{label}: the header line is longer than {MAX_HEADER_LINE_BYTES >> 10} KB; a table here has at "
                    f"most {max_columns} columns.")
    text = line.decode("utf-8", errors="replace").removeprefix("\ufeff")
    try:
        columns = len(next(csv.reader(io.StringIO(text), delimiter=sep), []))
    except csv.Error:
        columns = text.count(sep) + 1
    if columns > max_columns:
        raise error(f"{label} has {columns:,} columns; a table here has at most {max_columns}.")


def check_parquet(path: Path, label: str, max_rows: int, max_columns: int = MAX_COLUMNS,
                  error: type[Exception] = DataError) -> None:
    """Refuse a Parquet file by its footer: more than ``max_rows`` rows or ``max_columns`` columns, or a nested
    column (lists, structs, maps: a table here holds text)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
        raise error(f"{label} could not be read as PARQUET: {str(exc).splitlines()[0][:200] if str(exc) else exc}")
    if meta.num_columns > max_columns:
        raise error(f"{label} has {meta.num_columns:,} columns; a table here has at most {max_columns}.")
    if meta.num_rows > max_rows:
        raise error(f"{label} has {meta.num_rows:,} rows; the limit is {max_rows:,}.")
    schema = meta.schema.to_arrow_schema()
    nested = [f.name for f in schema if f.type.num_fields > 0 or str(f.type).startswith(("list", "large_list",
                                                                                         "map", "struct"))]
    if nested:
        raise error(f"{label}: column {nested[0][:80]!r} holds nested values (lists or records); a table here holds "
                    "text in each cell.")


def check_frame(frame, label: str, max_columns: int = MAX_COLUMNS, max_cell_chars: int | None = None,
                error: type[Exception] = DataError) -> None:
    """Refuse a table that was read but is wider than ``max_columns`` or (when ``max_cell_chars`` is given) holds a
    cell longer than that (formats such as JSON cannot say their shape before they are parsed).  A data table's
    over-long cells are not refused here: ``prepare`` drops those rows and counts them."""
    if frame.shape[1] > max_columns:
        raise error(f"{label} has {frame.shape[1]:,} columns; a table here has at most {max_columns}.")
    for column in frame.columns if max_cell_chars else ():
        values = frame[column]
        if values.dtype != object:
            continue
        lengths = values.map(lambda v: len(v) if isinstance(v, str) else len(str(v)) if v is not None else 0)
        if len(lengths) and int(lengths.max()) > max_cell_chars:
            raise error(f"{label}: column {str(column)[:80]!r} holds a value of {int(lengths.max()):,} characters; "
                        f"the limit is {max_cell_chars:,}.")
