"""Issue 22's low items that a unit test can see, each in a few lines (the rest are in the browser tests; the
checklist is docs/issue22-low-items.md)."""

from __future__ import annotations

import pandas as pd
import pytest

from symptomgen.config import DataConfig, TrainConfig
from symptomgen.jobs import JobManager
from symptomgen.records import RunRecord, RunStatus
from symptomgen.store import RunStore
from symptomgen.ui.context import LazyModelCache, PageContext
from symptomgen.ui.train_tab import PARAMS, TrainActions


@pytest.fixture
def ctx(tmp_path) -> PageContext:
    store = RunStore(tmp_path / "runs")
    store.root.mkdir()
    return PageContext(store, JobManager(store.root), LazyModelCache(), offline=True)


class _Tokenizer:
    eos_token_id = 0

    def __init__(self, text: str):
        self.text = text

    def decode(self, ids, skip_special_tokens=True):
        return self.text


@pytest.mark.parametrize("decoded, shown", [
    (" fever, cough | Asthma | wheezing", "fever, cough"),  # the model began another "Name | ..." example
    (" | fever, cough", "fever, cough"),  # a stray bar first is dropped, not cut at
    ("\x07fe\u200bver,\x1b cough\ufeff", "fever, cough"),  # control and invisible characters (boxes on a page)
])
def test_generated_text_stops_at_the_separator_and_drops_control_characters(decoded, shown):
    from symptomgen.generation import decode_continuation

    assert decode_continuation(_Tokenizer(decoded), [5, 6, 7]) == shown


def _run(store: RunStore, run_id: str, source: str, model: str = "scratch") -> None:
    frame = pd.DataFrame({"prompt": ["Flu"], "target": ["fever"]})
    rec = RunRecord(run_id=run_id, status=RunStatus.FINISHED, data=DataConfig(source=source),
                    train=TrainConfig(model=model))
    store.create(run_id, rec, frame, frame)


def test_the_runs_table_and_compare_name_the_data_and_warn_when_it_differs(ctx, tmp_path):
    from symptomgen.catalog import RUNS_COLUMNS, runs_frame
    from symptomgen.ui.evaluate_tab import COMPARE_COLUMNS, compare_warning

    own = tmp_path / "stories.csv"
    own.write_text("a,b\nx,y\n")
    _run(ctx.store, "20260101-000000-sample-scratch", "sample")
    _run(ctx.store, "20260101-000001-sample-scratch", "sample")
    _run(ctx.store, "20260101-000002-stories-scratch", str(own))
    assert "data" in RUNS_COLUMNS and "data" in COMPARE_COLUMNS
    assert set(runs_frame(ctx.store)["data"]) == {"sample", "stories.csv"}
    assert compare_warning(ctx.store, ["20260101-000000-sample-scratch", "20260101-000001-sample-scratch"]) == ""
    warning = compare_warning(ctx.store, ["20260101-000000-sample-scratch", "20260101-000002-stories-scratch"])
    assert "different data (sample, stories.csv)" in warning and "different tokenizers" in warning


def test_choosing_another_model_clears_the_previous_models_text(ctx):
    from symptomgen.ui.generate_tab import output_labels

    _run(ctx.store, "20260101-000000-sample-scratch", "sample")
    for model in ("20260101-000000-sample-scratch", "scratch", "distilgpt2"):
        selected, base = output_labels(model, ctx.store)
        assert selected["value"] == "" and base["value"] == "", model


def test_free_text_rows_have_no_matched_column():
    from symptomgen.ui.evaluate_tab import rows_html

    text = rows_html(pd.DataFrame([{"name": "Flu", "reference": "the fever came at night", "generated": "a fever",
                                    "matched": "", "rougeL": 0.4}]))
    assert "<th>matched</th>" not in text and "ROUGE-L" in text and "symptom phrases found" not in text
    lists = rows_html(pd.DataFrame([{"name": "Flu", "reference": "fever", "generated": "fever", "matched": "fever",
                                     "f1": 1.0}]))
    assert "<th>matched</th>" in lists


def test_stop_is_off_without_a_job_and_estimate_says_it_is_busy_at_once(ctx):
    actions = TrainActions(ctx)
    start, stop = actions.controls()
    assert start["interactive"] and not stop["interactive"] and stop["variant"] == "secondary"
    first = next(actions.estimate_view(*[None] * len(PARAMS)))
    assert first[0].startswith("⏳ *Timing")
