"""Bulk generation: many names → one CSV row each (generated text, reference where known, score), stoppable; the core,
the CLI twin (``generate --names-file``) and the Generate tab's handlers, on the shared tiny run."""

from __future__ import annotations

import csv
import threading
from types import SimpleNamespace

import pytest

from symptomgen import cli
from symptomgen.bulk import COLUMNS, generate_many, parse_names, table_names, write_csv
from symptomgen.config import GenerationSettings
from symptomgen.errors import InvalidInput
from symptomgen.modeling import load_pretrained
from symptomgen.runs import Run

GREEDY = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=12)
UNKNOWN = "Quite Unheard Of Syndrome"


@pytest.fixture(scope="module")
def tiny(trained_run):
    run = Run(trained_run.run_dir)
    model, tok = load_pretrained(run.best_dir)
    train, val = run.split_frames()
    return run, model, tok, [str(train["prompt"].iloc[0]), str(val["prompt"].iloc[0]), str(train["prompt"].iloc[1])]


def _read(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_one_row_per_name_with_reference_and_score_where_the_name_is_in_the_runs_data(tiny, tmp_path):
    run, model, tok, known = tiny
    names = parse_names("\n".join([known[0], "  ", UNKNOWN, known[1], known[0].upper(), known[2]]))
    assert names == [known[0], UNKNOWN, known[1], known[2]]  # blank lines and repeats left out
    result = generate_many(model, tok, names, GREEDY, run)
    assert not result.stopped and result.score_name == "phrase F1"
    rows = _read(write_csv(result, tmp_path / "out.csv"))
    assert list(rows[0]) == list(COLUMNS) == ["name", "generated", "reference", "score"]
    assert [r["name"] for r in rows] == names
    train, val = run.split_frames()
    refs = dict(zip(val["prompt"], val["target"])) | dict(zip(train["prompt"], train["target"]))
    for row in rows:
        if row["name"] == UNKNOWN:
            assert row["reference"] == "" and row["score"] == ""
        else:
            assert row["reference"] == refs[row["name"]] and 0.0 <= float(row["score"]) <= 1.0
    assert rows[0]["generated"] == generate_many(model, tok, [known[0]], GREEDY, run).rows[0]["generated"]
    assert "3 had a reference" in result.summary()


def test_names_are_checked_and_capped_in_one_sentence(tiny):
    run = tiny[0]
    with pytest.raises(InvalidInput, match="More than 3 names: generate for at most 3 at a time."):
        parse_names("a\nb\nc\nd", cap=3)
    with pytest.raises(InvalidInput, match="at least one disease name"):
        parse_names(" \n\n")
    with pytest.raises(InvalidInput, match="limit is 200"):
        parse_names("x" * 201)
    every = table_names(run)
    train, val = run.split_frames()
    assert len(every) == len({*train["prompt"], *val["prompt"]}) > 3
    with pytest.raises(InvalidInput, match="table has more than 3 names"):
        table_names(run, cap=3)


def test_stop_ends_it_after_the_current_name_and_keeps_the_rows_so_far(tiny):
    run, model, tok, _ = tiny
    names = table_names(run)
    stop = threading.Event()
    result = generate_many(model, tok, names, GREEDY, run, stop,
                           on_row=lambda done, total, row: stop.set() if done == 2 else None)
    assert result.stopped and len(result.rows) == 2 and result.total == len(names)
    assert result.summary().startswith(f"Stopped after 2 of {len(names)} name(s)")


def test_the_cli_twin_writes_the_csv_with_progress_on_stderr(tiny, tmp_path, capsys):
    run, _, _, known = tiny
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join([*known, UNKNOWN]) + "\n", encoding="utf-8")
    out = tmp_path / "bulk.csv"
    code = cli.main(["--runs-dir", str(run.path.parent), "generate", "--model", run.run_id, "--names-file",
                     str(names_file), "--out", str(out), "--temperature", "0", "--max-new-tokens", "12"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "generated 4 of 4 names" in printed.err and str(out) in printed.out
    rows = _read(out)
    assert [r["name"] for r in rows] == [*known, UNKNOWN] and rows[0]["reference"]

    whole = tmp_path / "whole.csv"
    assert cli.main(["--runs-dir", str(run.path.parent), "generate", "--model", str(run.path), "--whole-table",
                     "--out", str(whole), "--max-new-tokens", "4"]) == 0
    assert len(_read(whole)) == len(table_names(run))
    capsys.readouterr()
    assert cli.main(["--runs-dir", str(run.path.parent), "generate", "--model", run.run_id, "--names-file",
                     str(names_file)]) == 2
    assert "error: give a disease name, or --names-file FILE" in capsys.readouterr().err


def test_the_generate_tabs_stop_returns_the_rows_so_far_as_the_csv(trained_run):
    from symptomgen.store import RunStore
    from symptomgen.ui.bulk_panel import BulkPanel
    from symptomgen.ui.context import PageContext

    panel = BulkPanel(PageContext.create(RunStore(trained_run.run_dir.parent)))
    visitor, other = SimpleNamespace(session_hash="visitor"), SimpleNamespace(session_hash="other")
    total = len(table_names(Run(trained_run.run_dir)))
    views = panel.generate_many(trained_run.run_dir.name, "", True, 8, 0.95, 0.5, 1.2, 48, 0, 0, request=visitor)
    status, _ = next(views)
    assert status == f"Generating 0 of {total} names…"
    while status.startswith("Generating 0 of"):  # stop once a row is done
        status, _ = next(views)
    assert panel.stop_many(other) == "Nothing is generating for many names now."  # another visitor's Stop
    assert panel.stop_many(visitor).startswith("Stopping after the current name")
    status, path = list(views)[-1]
    rows = _read(path)
    assert 0 < len(rows) < total and f"Stopped after {len(rows)} of {total} name(s)" in status, status
    assert panel.stop_many(visitor) == "Nothing is generating for many names now."


def test_the_page_serves_the_csv_through_its_api(tiny):
    from conftest import launch
    from gradio_client import Client

    from symptomgen.ui import build_demo

    run, _, _, known = tiny
    demo = build_demo(runs_dir=run.path.parent)
    try:
        client = Client(launch(demo), verbose=False)
        status, path = client.predict(model=run.run_id, names="\n".join([*known, UNKNOWN]), whole_table=False,
                                      top_k=0, top_p=1.0, temperature=0.0, repetition_penalty=1.2,
                                      max_new_tokens=8, seed=0, no_repeat_ngram_size=0, api_name="/generate_many")
        assert "Generated for 4 name(s); 3 had a reference" in status
        assert [r["name"] for r in _read(path)] == [*known, UNKNOWN]
    finally:
        demo.close()
