"""Read no more than the cap: archives and tables are refused by their headers, before a library parses them whole.

Each hostile file here is small on disk but would cost gigabytes or minutes once parsed; the refusal must come from
the shape check (its own sentence), and fast enough that the parse never happened.
"""

from __future__ import annotations

import json
import struct
import time
import zipfile

import pandas as pd
import pytest
from test_share import _rewritten

from symptomgen import settings
from symptomgen.data import load_records
from symptomgen.errors import DataError
from symptomgen.limits import check_zip_directory
from symptomgen.share import ShareError, import_run_zip
from symptomgen.store import RunStore


def _forge_entry_count(path, entries: int) -> None:
    """Rewrite a zip's end record to claim ``entries`` entries (what a directory of a million entries says)."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    data[at + 8:at + 12] = struct.pack("<HH", entries, entries)
    path.write_bytes(bytes(data))


def test_a_zip_listing_too_many_entries_is_refused_from_its_end_record(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(600):
            zf.writestr(f"f{i}.txt", "")
    with pytest.raises(DataError, match="many.zip lists 600 files; a run archive holds at most 500"):
        check_zip_directory(path, "many.zip", 500)
    small = tmp_path / "small.zip"
    with zipfile.ZipFile(small, "w") as zf:
        zf.writestr("a.txt", "x")
    check_zip_directory(small, "small.zip", 500)  # within the cap: no complaint


def test_an_import_claiming_sixty_thousand_entries_is_refused_before_zipfile_reads_them(exported, tmp_path):
    path = tmp_path / "claims.zip"
    path.write_bytes(exported.read_bytes())
    _forge_entry_count(path, 60_000)
    started = time.perf_counter()
    with pytest.raises(ShareError, match="claims.zip lists 60,000 files; a run archive holds at most 500"):
        import_run_zip(path, RunStore(tmp_path / "runs"))
    assert time.perf_counter() - started < 30  # generous: the point is the message, from the end record


def test_a_csv_with_twenty_thousand_columns_is_refused_by_its_header(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(5_000)) + "\n" + ",".join("x" for _ in range(5_000)) + "\n")
    with pytest.raises(DataError, match="wide.csv has 5,000 columns; a table here has at most 64"):
        load_records(str(path))
    wider = tmp_path / "wider.csv"  # a header past 64 KB: counted as far as it was read
    wider.write_text(",".join(f"c{i}" for i in range(20_000)) + "\n" + ",".join("x" for _ in range(20_000)) + "\n")
    with pytest.raises(DataError, match=r"wider.csv has more than 1\d,\d{3} columns; a table here has at most 64"):
        load_records(str(wider))
    endless = tmp_path / "endless.csv"
    endless.write_text("a" * 200_000)  # no line break at all: the header is never found
    with pytest.raises(DataError, match="endless.csv: the header line is longer than 64 KB"):
        load_records(str(endless))


def test_parquet_is_refused_by_its_footer_rows_columns_and_nesting(tmp_path):
    rows = tmp_path / "rows.parquet"
    pd.DataFrame({"Name": ["Flu"] * 5000, "Symptoms": ["fever"] * 5000}).to_parquet(rows)
    with settings.override(max_rows=1000), pytest.raises(DataError, match="rows.parquet has 5,000 rows; the limit"):
        load_records(str(rows))
    nested = tmp_path / "nested.parquet"
    pd.DataFrame({"Name": ["Flu", "Cold"], "Symptoms": [["fever", "cough"], ["sneezing"]]}).to_parquet(nested)
    with pytest.raises(DataError, match="column 'Symptoms' holds nested values"):
        load_records(str(nested))
    wide = tmp_path / "wide.parquet"
    pd.DataFrame({f"c{i}": ["x"] for i in range(100)}).to_parquet(wide)
    with pytest.raises(DataError, match="wide.parquet has 100 columns"):
        load_records(str(wide))
    fine = tmp_path / "fine.parquet"
    pd.DataFrame({"Name": ["Flu"], "Symptoms": ["fever"]}).to_parquet(fine)
    assert list(load_records(str(fine)).columns) == ["Name", "Symptoms"]


def test_json_wider_than_the_column_cap_is_refused(tmp_path):
    path = tmp_path / "wide.json"
    path.write_text(json.dumps([{f"c{i}": "x" for i in range(100)}]))
    with pytest.raises(DataError, match="wide.json has 100 columns"):
        load_records(str(path))


def test_a_run_record_with_large_unknown_fields_is_refused_at_import(exported, tmp_path):
    bloated = _rewritten(exported, tmp_path / "bloated.zip", {"padding": [[] for _ in range(10_000)]})
    with pytest.raises(ShareError, match=r"run.json carries 1 field\(s\) this app does not know \(padding\)"):
        import_run_zip(bloated, RunStore(tmp_path / "runs"))
    small = _rewritten(exported, tmp_path / "small.zip", {"note": "from a newer version"})
    assert import_run_zip(small, RunStore(tmp_path / "runs")).record().extra.get("note") == "from a newer version"


def test_a_run_split_or_metrics_table_too_wide_is_refused_at_import(exported, tmp_path):
    wide = ",".join(["epoch", "validation_loss"] + [f"c{i}" for i in range(5000)]) + "\n"
    bad = _rewritten(exported, tmp_path / "wide-metrics.zip", {}, metrics=wide + "1,0.5" + ",0" * 5000 + "\n")
    with pytest.raises(ShareError, match="metrics.csv has 5,002 columns; a table here has at most 64"):
        import_run_zip(bad, RunStore(tmp_path / "runs"))


def test_a_huge_run_record_is_refused_by_its_size_before_it_is_parsed(exported, tmp_path):
    huge = _rewritten(exported, tmp_path / "huge.zip", {"padding": [[] for _ in range(200_000)]})  # ~800 KB
    with pytest.raises(ShareError, match=r"run.json unpacks to more than the 256 KB allowed for such a file"):
        import_run_zip(huge, RunStore(tmp_path / "runs"))
    assert not RunStore(tmp_path / "runs").list()
