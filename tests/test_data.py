"""Data loading, column mapping, validation and the seeded split."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from symptomgen.config import DataConfig
from symptomgen.data import DataError, format_example, format_prompt, load_records, prepare
from symptomgen.splits import split_rows


def test_bundled_sample_has_the_real_schema_and_enough_rows():
    df = load_records("sample")
    assert list(df.columns) == ["Code", "Name", "Symptoms", "Treatments"]
    assert len(df) >= 60
    assert "Kidney Failure" in set(df["Name"])
    assert df["Name"].is_unique


def test_template_is_shared_by_training_and_prompting():
    assert format_prompt("  Kidney Failure ") == "Kidney Failure |"
    text = format_example("Kidney Failure", "Fatigue, nausea")
    assert text == "Kidney Failure | Fatigue, nausea"
    assert text.startswith(format_prompt("Kidney Failure"))


def test_split_is_reproducible_and_disjoint_by_name():
    cfg = DataConfig(source="sample", seed=7)
    a, b = prepare(cfg), prepare(cfg)
    assert list(a.val["prompt"]) == list(b.val["prompt"])
    assert not set(a.train["prompt"]) & set(a.val["prompt"])
    assert len(a.val) == pytest.approx(0.2 * a.kept, abs=1)
    other = prepare(cfg.with_(seed=8))
    assert list(other.val["prompt"]) != list(a.val["prompt"])


def test_duplicate_names_stay_on_one_side_of_the_split():
    df = pd.DataFrame({"prompt": ["A", "a", "B", "C", "D", "E"], "target": list("xyzwvu")})
    train, val, _ = split_rows(df, 0.4, seed=1)
    assert {"A", "a"} <= set(train["prompt"]) or {"A", "a"} <= set(val["prompt"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "parquet"])
def test_local_files_with_other_column_names(tmp_path, fmt):
    df = pd.DataFrame({"label": [f"Disease {i}" for i in range(10)], "text": [f"fever, cough {i}" for i in range(10)]})
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    elif fmt == "json":
        path.write_text(json.dumps(df.to_dict(orient="records")))
    else:
        df.to_parquet(path)
    prepared = prepare(DataConfig(source=str(path), prompt_column="label", target_column="text"))
    assert prepared.kept == 10
    assert set(prepared.train["prompt"]) | set(prepared.val["prompt"]) == set(df["label"])


def test_missing_columns_name_the_file_and_both_column_lists(tmp_path):
    path = tmp_path / "mine.csv"
    pd.DataFrame({"label": ["a", "b"], "text": ["x", "y"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"mine\.csv.*Name.*found columns: label, text.*expected"):
        prepare(DataConfig(source=str(path)))


def test_empty_rows_are_dropped_and_counted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("Name,Symptoms\nFlu,fever\n,cough\nCold,\nMigraine,headache\nGout,joint pain\n")
    prepared = prepare(DataConfig(source=str(path)))
    assert prepared.kept == 3
    assert prepared.dropped["empty prompt"] == 1 and prepared.dropped["empty target"] == 1
    assert "dropped: 1 empty prompt, 1 empty target" in prepared.summary()


def test_treatments_can_join_the_target():
    prepared = prepare(DataConfig(source="sample", extra_target_column="Treatments"))
    assert prepared.train["target"].str.contains("; Treatments: ").all()


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"Name,Symptoms\n", "header but no rows"),
    (b"Name,Symptoms\nFlu,fever\n", "at least 2 are needed"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary file"),
])
def test_unusable_files_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        prepare(DataConfig(source=str(path)))


def test_one_name_splits_by_row_but_not_by_name(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("Name,Symptoms\nFlu,fever\nFlu,cough\n")
    prepared = prepare(DataConfig(source=str(path)))  # auto: the name repeats, so its rows go to both sides
    assert (len(prepared.train), len(prepared.val), prepared.split_stats.mode) == (1, 1, "by-row")
    with pytest.raises(DataError, match="2 distinct prompts"):
        prepare(DataConfig(source=str(path), split_by="by-name"))


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_records(str(tmp_path / "nope.csv"))
    (tmp_path / "x.xlsx").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        load_records(str(tmp_path / "x.xlsx"))


def test_hub_source_fails_fast_offline():
    from symptomgen.errors import HubUnreachableError

    with pytest.raises(HubUnreachableError, match="offline mode"):
        load_records("QuyenAnhDE/Diseases_Symptoms")


@pytest.mark.parametrize("bad", [dict(val_fraction=0), dict(val_fraction=1.0), dict(seed="x"), dict(source=" ")])
def test_data_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        DataConfig(**bad)


def test_real_dataset_when_present(real_data_path):
    prepared = prepare(DataConfig(source=str(real_data_path)))
    assert prepared.rows_read == 405
    assert prepared.kept == 405
    assert 70 <= len(prepared.val) <= 90


@pytest.mark.parametrize("layout", ["records", "columns", "records-bom", "lines-in-.json", "one-record"])
def test_json_files_in_every_common_layout(tmp_path, layout):
    frame = pd.DataFrame({"Name": ["Flu", "Cold"], "Symptoms": ["fever, cough", "sneezing"]})
    path = tmp_path / "diseases.json"
    if layout == "records":
        frame.to_json(path, orient="records")
    elif layout == "columns":
        frame.to_json(path)  # pandas' default: {"Name": {"0": ...}, ...}
    elif layout == "records-bom":  # a Windows export
        path.write_bytes(b"\xef\xbb\xbf" + frame.to_json(orient="records").encode())
    elif layout == "one-record":  # a single JSON-lines record with a nested value: one row, not a table
        path.write_text(json.dumps({"Name": "Flu", "Symptoms": "fever, cough", "meta": {"src": "x", "year": 2020}}))
        frame = frame.head(1)
    else:
        frame.to_json(path, orient="records", lines=True)
    got = load_records(str(path))
    assert list(got.columns)[:2] == ["Name", "Symptoms"] and got["Name"].tolist() == frame["Name"].tolist()


def test_a_name_with_odd_spacing_gets_the_prompt_generation_uses():
    from symptomgen.generation import clean_name

    typed = "  Kidney   Failure "
    assert format_prompt(typed) == format_prompt(clean_name(typed)) == "Kidney Failure |"
    assert format_example("Kidney\tFailure", "fatigue").startswith("Kidney Failure | ")
