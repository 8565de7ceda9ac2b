"""Drive the launched app through ``gradio_client``: train (streamed), generate, validation, one job at a time."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from conftest import launch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from symptomgen.store import RunStore
from symptomgen.ui import build_page

# A tiny scratch model on the bundled sample: about a second per epoch on 2 cores.
TINY = dict(source="sample", upload=None, model="scratch", epochs=2, batch_size=16, learning_rate=3e-3,
            max_length=64, scratch_layers=2, scratch_width=64, scratch_vocab=800)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("app-runs")
    demo, page = build_page(RunStore.at(runs_dir))
    yield launch(demo), page, runs_dir
    page.jobs.stop()
    page.jobs.join(60)
    demo.close()


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    return Client(app[0], verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def rows(table) -> list[list]:
    return table["data"] if isinstance(table, dict) else []


@pytest.fixture(scope="module")
def trained(client):
    """One short training, streamed: the list of updates and the finished run's id."""
    job = client.submit(**TINY, api_name="/train")
    job.result(timeout=300)
    return job.outputs()


def test_training_streams_epoch_updates_then_generation_works(client, trained, app):
    row_counts = [len(rows(u[1])) for u in trained]
    # Streamed, not dumped at the end: a view with exactly one epoch row came before the two-row one.
    assert 1 in row_counts and 2 in row_counts
    assert row_counts.index(1) < row_counts.index(2)
    assert len(trained) >= 3
    progress, table, _plot, summary, metrics, runs_update, _notice = trained[-1]
    assert "finished" in summary and "best epoch" in summary
    assert "2 epochs, batch 16, learning rate 0.003" in progress  # the job's own settings, not the widgets'
    epochs = rows(table)
    assert [r[0] for r in epochs] == [1, 2]
    assert all(r[1] > 0 and r[2] > 0 for r in epochs)  # train and validation losses
    assert sum(r[-1] == "★ best" for r in epochs) == 1
    csv = pd.read_csv(metrics)
    assert list(csv["epoch"]) == [1, 2] and csv["validation_loss"].notna().all()
    run_id = runs_update
    assert (Path(app[2]) / run_id / "best" / "config.json").is_file()

    table, choices = client.predict(api_name="/list_runs")
    assert run_id in [r[0] for r in table["data"]]
    assert run_id in [c[1] for c in choices["choices"]]

    text, base_text, reference = client.predict(model=run_id, name="Kidney Failure", max_new_tokens=24,
                                                api_name="/generate")
    assert isinstance(text, str) and text.strip() and not text.startswith("(no text")
    assert base_text.strip()  # the run's untrained base model, side by side
    assert "Reference symptoms for Kidney Failure" in reference


@pytest.mark.parametrize("field, value, message", [
    ("temperature", 5.0, "temperature: Value 5.0 is greater than maximum value 2.0"),
    ("top_p", 0.0, "top_p: Value 0.0 is less than minimum value 0.01"),
    ("num_sequences", 9, "number of sequences: Value 9 is greater than maximum value 5"),
    ("name", "   ", "Please enter a disease name."),
])
def test_out_of_range_generation_values_are_rejected(client, field, value, message):
    with pytest.raises(AppError) as err:
        client.predict(**{"model": "distilgpt2", "name": "Asthma", field: value}, api_name="/generate")
    assert message in str(err.value)
    assert "Traceback" not in str(err.value)


def test_out_of_range_training_values_are_rejected(client, app):
    with pytest.raises(AppError, match="Epochs: Value 0 is less than minimum value 1"):
        client.predict(**{**TINY, "epochs": 0}, api_name="/train")
    # Passes the slider (no step check) but not TrainConfig: the config's own sentence comes back.
    with pytest.raises(AppError, match="Scratch width must be a multiple of 4"):
        client.predict(**{**TINY, "scratch_width": 130}, api_name="/train")
    with pytest.raises(AppError, match="not a Hugging Face dataset id"):
        client.predict(**{**TINY, "source": "hub", "hub_dataset": "/etc/passwd"}, api_name="/train")
    assert not app[1].jobs.busy()


def test_second_start_is_refused_and_generation_works_meanwhile(client, trained, app):
    run_id = trained[-1][5]
    long = client.submit(**{**TINY, "epochs": 60}, api_name="/train")
    deadline = time.time() + 60
    while not app[1].jobs.busy() and time.time() < deadline:
        time.sleep(0.1)
    assert app[1].jobs.busy()
    other = Client(app[0], verbose=False, download_files=False)  # another tab / user
    with pytest.raises(AppError, match="already in progress"):
        other.predict(**TINY, api_name="/train")

    # A reloaded page re-attaches: it sees the same job and keeps streaming until it ends.
    attached = other.submit(api_name="/attach")
    # Eight clients generate at once from the finished run while training goes on: all answered.
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(Client(app[0], verbose=False, download_files=False).predict, model=run_id,
                               name="Asthma", seed=i, max_new_tokens=16, compare=False, api_name="/generate")
                   for i in range(8)]
        answers = [f.result(timeout=180) for f in futures]
    assert all("Reference symptoms for Asthma" in a[2] for a in answers)  # each ran to its final update
    assert len({a[0] for a in answers}) > 1  # different seeds, different samples
    assert app[1].jobs.busy()  # the long run was still going during generation

    assert "Stopping" in client.predict(api_name="/stop")
    long.result(timeout=120)
    assert "stopped" in long.outputs()[-1][3]
    assert not app[1].jobs.busy()
    attached.result(timeout=60)
    seen = attached.outputs()
    assert seen and "stopped" in seen[-1][3]


def test_preview_data_counts_and_column_mapping(client, tmp_path):
    summary, table, *_ = client.predict(source="sample", upload=None, api_name="/preview_data")
    kept, train, val = map(int, re.search(r"kept (\d+).*train (\d+), validation (\d+)", summary).groups())
    assert kept == train + val and val > 0 and len(table["data"]) > 0

    upload = tmp_path / "mine.csv"
    upload.write_text("disease,text\nFlu,\"fever, cough\"\nCold,\nGout,joint pain\nAcne,spots\n")
    # An upload offers its own columns, guessed from their names (the defaults Name/Symptoms are not there).
    source, note, prompt_col, target_col, extra_col = client.predict(
        upload=handle_file(str(upload)), prompt_column="Name", target_column="Symptoms", extra_target_column="(none)",
        api_name="/read_columns")
    assert source == "upload" and "disease, text" in note
    assert (prompt_col["value"], target_col["value"], extra_col["value"]) == ("disease", "text", "(none)")
    assert [c[1] for c in prompt_col["choices"]] == ["disease", "text"]
    summary, table = client.predict(
        source="upload", upload=handle_file(str(upload)), prompt_column="disease", target_column="text",
        api_name="/preview_data")
    assert "4 rows read from mine.csv" in summary and "kept 3" in summary and "1 empty target" in summary
    with pytest.raises(AppError, match="missing column.*found columns: disease, text"):
        client.predict(source="upload", upload=handle_file(str(upload)), api_name="/preview_data")
    # A file that cannot be read is reported in the page, not raised (the mapping widgets stay usable).
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x00\x01binary")
    source, note, *_ = client.predict(upload=handle_file(str(junk)), api_name="/read_columns")
    assert source == "upload" and note.startswith("⚠️") and "binary" in note

    # Offline, a Hub dataset falls back to the bundled sample, and says so.
    summary, *_ = client.predict(source="hub", upload=None, api_name="/preview_data")
    assert "Using the bundled sample data instead of" in summary


def test_importing_app_loads_no_model_and_starts_no_server():
    root = Path(__file__).resolve().parents[1]
    code = ("import sys, app, gradio as gr; assert isinstance(app.demo, gr.Blocks); "
            "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
            "assert not heavy, heavy; assert not app.demo.is_running and app.demo.local_url is None; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
