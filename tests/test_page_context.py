"""The page's handlers are methods over one ``PageContext``: called here without building a page."""

from __future__ import annotations

import shutil

import gradio as gr
import pandas as pd
import pytest

from symptomgen.jobs import JobManager
from symptomgen.records import RunRecord, RunStatus
from symptomgen.store import RunStore
from symptomgen.ui.context import LazyModelCache, PageContext
from symptomgen.ui.evaluate_tab import EvaluateActions
from symptomgen.ui.generate_tab import GenerateActions
from symptomgen.ui.mcp_tools import Tools
from symptomgen.ui.share_panel import SharePanel


@pytest.fixture
def ctx(tmp_path, trained_run) -> PageContext:
    store = RunStore(tmp_path / "runs")
    store.root.mkdir()
    shutil.copytree(trained_run.run_dir, store.root / trained_run.run_dir.name)
    frame = pd.DataFrame({"prompt": ["a"], "target": ["b"]})
    store.create("20990101-000000-live", RunRecord(), frame, frame)  # "running" in this process: live
    return PageContext(store, JobManager(store.root), LazyModelCache(), offline=True)


def test_the_runs_list_offers_the_finished_run_first(ctx, trained_run):
    table, choices = GenerateActions(ctx).list_runs(None)
    name = trained_run.run_dir.name
    assert set(table["run"]) == {name, "20990101-000000-live"}
    assert choices["value"] == name and [v for _, v in choices["choices"]][0] == name
    assert [r["run"] for r in Tools(ctx).list_finished_runs()] == [name]
    runs, compare = EvaluateActions(ctx).refresh_choices(None, ["gone"])
    assert runs["value"] == name and compare["value"] == []


def test_model_card_of_a_finished_run(ctx, trained_run):
    card = SharePanel(ctx).model_card(trained_run.run_dir.name)
    assert "SymptomGen" in card and not card.startswith("---") and str(ctx.store.root) not in card
    assert SharePanel(ctx).model_card("") == ""


def test_delete_is_refused_for_a_running_run_and_outside_the_store(ctx, trained_run):
    panel = SharePanel(ctx)
    with pytest.raises(gr.Error, match="still training"):
        panel.delete_run("20990101-000000-live")
    with pytest.raises(gr.Error, match="not a valid run name"):
        panel.delete_run("../runs")
    assert ctx.store.get("20990101-000000-live").status() is RunStatus.RUNNING
    message, _ = panel.delete_run(trained_run.run_dir.name)
    assert message == f"**Deleted run {trained_run.run_dir.name}.**"
    assert [r.run_id for r in ctx.store.list()] == ["20990101-000000-live"]


def test_offline_the_model_list_says_which_models_would_train_scratch(monkeypatch):
    """Issue 22 (low): offline, distilgpt2/gpt2/gpt2-medium are not offered as if they would load."""
    from symptomgen.offline import needs_hub_for_model
    from symptomgen.ui.train_tab import MODEL_CHOICES, offline_model_choices

    choices = offline_model_choices()
    assert [v for _, v in choices] == MODEL_CHOICES and ("scratch", "scratch") in choices
    for label, value in choices:
        assert ("not downloaded; offline it trains scratch" in label) == needs_hub_for_model(value), label
    monkeypatch.setattr("symptomgen.offline.model_cached", lambda model: False)
    assert all("trains scratch" in label for label, v in offline_model_choices() if v != "scratch")
