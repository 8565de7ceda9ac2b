"""What a new visitor reads, checked where no browser is needed: offline defaults that work, messages in the page's
own words, charts with whole epochs and a dot per epoch, time left, the "Custom" preset, a busy port."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, launch
from gradio_client import Client
from gradio_client.exceptions import AppError

from symptomgen import config as C
from symptomgen.config import DataConfig
from symptomgen.events import EpochResult, Progress
from symptomgen.jobs import JobSnapshot
from symptomgen.ui import build_demo
from symptomgen.ui.charts import chart_points, loss_chart
from symptomgen.ui.page import launch_error
from symptomgen.ui.train_tab import PRESETS, TRAIN_FIELDS, _plot, _progress_html, duration
from symptomgen.ui.widgets import CUSTOM, preset_named

ROOT = Path(__file__).resolve().parents[1]


def _train(runs_dir: Path, **changes) -> str:
    from symptomgen.trainer import run_training

    for _ in range(3):  # run ids have one-second resolution
        try:
            return run_training(DataConfig(source="sample"), TINY.with_(**changes), runs_dir).run_dir.name
        except FileExistsError:
            time.sleep(1.1)
    raise AssertionError("could not make a run")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh offline server with no runs yet, and a client."""
    runs_dir = tmp_path_factory.mktemp("fresh-runs")
    demo = build_demo(runs_dir=runs_dir)
    yield Client(launch(demo), verbose=False), runs_dir
    demo.close()


def test_a_fresh_offline_server_offers_a_model_that_loads_and_says_what_it_is(fresh):
    client, _ = fresh
    _, choices = client.predict(api_name="/list_runs")
    offered = {value: label for label, value in choices["choices"]}
    assert C.DEFAULT_MODEL not in offered  # distilgpt2 cannot be downloaded offline: not preselected
    assert choices["value"] == C.SCRATCH_MODEL and "Untrained" in offered[C.SCRATCH_MODEL]
    text, base, _ = client.predict(model=choices["value"], name="Asthma", max_new_tokens=8, api_name="/generate")
    assert text.strip() and "base model" in base


def test_refusals_use_the_pages_words(fresh):
    client, _ = fresh
    with pytest.raises(AppError) as err:  # Evaluate before any run exists: no "'' is not a valid run name"
        client.predict(run_id="", rows=2, sampling="none", api_name="/evaluate")
    assert "No run is selected" in str(err.value) and "valid run name" not in str(err.value)
    with pytest.raises(AppError) as err:  # the page takes no folders, so the advice names none
        client.predict(model=C.DEFAULT_MODEL, name="Asthma", api_name="/generate")
    assert "offline" in str(err.value) and "folder" not in str(err.value)
    assert "finished run" in str(err.value)


def test_preview_shows_the_split_first(fresh):
    client, _ = fresh
    _, table, *_ = client.predict(source="sample", upload=None, api_name="/preview_data")
    assert table["headers"][0] == "split"  # long text cannot push it out of view


def test_compare_draws_every_selected_run(tmp_path):
    runs = [_train(tmp_path, epochs=e, seed=e) for e in (1, 2, 3)]
    from symptomgen.store import RunStore
    from symptomgen.ui.evaluate_tab import curves_frame

    points, table = curves_frame(RunStore(tmp_path), runs)
    chart = loss_chart(points)
    assert set(chart_points(chart)["series"]) == {f"{r} · {k}" for r in runs for k in ("train", "validation")}
    assert chart.count("class='sg-series'") == 6  # six curves, each with its dots
    colours = re.findall(r"class='sg-series' data-series='[^']*' stroke='(#[0-9a-f]{6})'", chart)
    assert len(colours) == 6 and len(set(colours)) == 3  # a colour per run, its train and validation alike
    assert len(table) == 3


def _epoch(n: int) -> EpochResult:
    return EpochResult(epoch=n, train_loss=3.0 / n, val_loss=3.2 / n, epoch_seconds=2.0, tokens_per_sec=100.0,
                       learning_rate=1e-3, is_best=True)


def _x_labels(chart: str) -> list[str]:
    part = chart[chart.index("sg-x-labels"):]
    return re.findall(r"translateX\(-50%\);font-size:11px'>([^<]*)</span>", part)


def test_the_loss_chart_ticks_whole_epochs_and_dots_every_epoch():
    one = _plot([_epoch(1)], planned=2)
    shown = one[:one.index("<g class='sg-log'")]  # the linear view (the log view, hidden, repeats the dots)
    assert shown.count("<circle") == 2  # after epoch 1, a visible dot for train and one for validation
    assert _x_labels(one) == ["1", "2"]
    many = _plot([_epoch(n) for n in range(1, 4)], planned=100)
    ticks = _x_labels(many)
    assert all(re.fullmatch(r"\d+", t) for t in ticks) and len(ticks) <= 10 and ticks[0] == "1"
    assert "<circle" not in _plot([], planned=3) and "after the first epoch" in _plot([], planned=3)
    assert sorted(chart_points(many)["epoch"]) == [1, 1, 2, 2, 3, 3]


def _snapshot(progress: Progress, started: float) -> JobSnapshot:
    return JobSnapshot(job_id=1, version=3, state="running", data=DataConfig(), train=C.TrainConfig(epochs=2),
                       notices=(), data_summary="96 rows.", started=started, epochs=(), progress=progress,
                       summary=None, error=None)


def test_the_progress_line_says_how_long_is_left():
    measured = _snapshot(Progress(step=5, total_steps=10, epoch=1.0, seconds_left=75.0), time.time() - 60)
    assert "about 1 min 15 s left" in _progress_html(measured)
    # Without the trainer's estimate: elapsed time over the share of steps done (60 s for half: 60 s left).
    guessed = _snapshot(Progress(step=5, total_steps=10, epoch=1.0), time.time() - 60)
    assert "about 1 min 0 s left" in _progress_html(guessed) or "about 1 min 1 s left" in _progress_html(guessed)
    assert duration(42) == "42 s" and duration(3725) == "1 h 2 min"
    assert "in use" not in _progress_html(measured)  # not known yet: not shown
    live = _snapshot(Progress(step=5, total_steps=10, epoch=1.0, memory_bytes=3 * 2 ** 29, tokens_seen=48_000),
                     time.time() - 60)
    assert "1.5 GB in use · 48,000 tokens seen" in _progress_html(live)  # as the CLI's progress bar says


@pytest.mark.parametrize("presets, fields, preset, knob, moved", [
    (C.GENERATION_PRESETS, C.ui_fields(C.GenerationSettings), "seed-notebook", "temperature", 0.9),
    (PRESETS, TRAIN_FIELDS, "quick-cpu", "learning_rate", 0.0123),
])
def test_a_preset_reads_custom_once_a_knob_moves(presets, fields, preset, knob, moved):
    values = [getattr(presets[preset], f) for f in fields]
    assert preset_named(presets, fields, values) == preset
    values[fields.index(knob)] = moved
    assert preset_named(presets, fields, values) == CUSTOM


def test_a_busy_port_is_explained_in_the_apps_words():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                             capture_output=True, text=True, timeout=180, env=_env())
    assert out.returncode != 0
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "--port" in line and "SYMPTOMGEN_PORT" in line
    assert "server_port" not in line and "launch()" not in line
    assert "--port" in launch_error(OSError(98, "Address already in use"), "0.0.0.0", 7860)


def _env() -> dict:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
