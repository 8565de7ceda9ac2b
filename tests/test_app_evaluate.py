"""Drive the Evaluate tab, the explain heat map and run sharing through ``gradio_client``."""

from __future__ import annotations

import html
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY, launch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from test_app_client import rows

from symptomgen.config import DataConfig
from symptomgen.ui import build_demo
from symptomgen.ui.charts import chart_points
from symptomgen.ui.evaluate_tab import rows_html

GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=24)


def _train(runs_dir: Path, **changes) -> str:
    from symptomgen.trainer import run_training

    for _ in range(3):  # run ids have one-second resolution: a second run in the same second collides
        try:
            summary = run_training(DataConfig(source="sample"), TINY.with_(**changes), runs_dir)
            break
        except FileExistsError:
            time.sleep(1.1)
    assert summary.status == "finished"
    return summary.run_dir.name


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a free port over a runs folder holding two finished tiny scratch runs."""
    runs_dir = tmp_path_factory.mktemp("eval-runs")
    first = _train(runs_dir, epochs=3)
    second = _train(runs_dir, epochs=2, learning_rate=1e-3)
    demo = build_demo(runs_dir=runs_dir)
    client = Client(launch(demo), verbose=False,
                    download_files=str(tmp_path_factory.mktemp("eval-downloads")))
    yield client, runs_dir, first, second
    demo.close()


def test_evaluate_gives_fine_tuned_and_base_numbers_for_unseen_and_taught_rows(served):
    client, runs_dir, run_id, _ = served
    job = client.submit(run_id=run_id, rows=3, sampling="seed-notebook", api_name="/evaluate")
    status, summary, unseen_html, taught_html = job.result(timeout=300)
    assert "Evaluating" in job.outputs()[0][0]  # a progress line came first
    assert "evaluated 3 validation row(s) (unseen) and 3 training row(s) (taught)" in status
    assert "never from its training rows" in status
    metrics = {(r[0], r[1]): r[2:5] for r in rows(summary)}  # fine-tuned, base, change
    baselines = {(r[0], r[1]): r[5:] for r in rows(summary)}  # constant answer, lookup (issue 21)
    for set_label in ("unseen (validation)", "taught (training)"):
        assert all(isinstance(v, float) for v in baselines[set_label, "symptom F1 (greedy)"])
        assert baselines[set_label, "perplexity"] == [None, None]  # a baseline has no loss
    assert "On taught names the model" in status and "a lookup" in status
    assert {s for s, _ in metrics} == {"unseen (validation)", "taught (training)"}
    for name in ("perplexity", "symptom F1 (greedy)", "symptom F1 (sampled)"):
        for set_label in ("unseen (validation)", "taught (training)"):
            fine_tuned, base, change = metrics[set_label, name]
            assert isinstance(fine_tuned, float) and isinstance(base, float), (set_label, name)
            assert change == pytest.approx(fine_tuned - base, abs=1e-3)
    loss_ft, loss_base, _ = metrics["unseen (validation)", "validation loss (per real token)"]
    assert loss_ft < loss_base  # three epochs beat the random-init base
    taught_ft, taught_base, _ = metrics["taught (training)", "training-row loss (per real token)"]
    assert taught_ft < taught_base and taught_ft < loss_ft  # rows it was trained on: lower loss than unseen ones
    assert "Unseen: validation rows" in unseen_html and "Taught: training rows" in taught_html
    assert unseen_html.count("<tr>") == 4 and taught_html.count("<tr>") == 4  # header + the 3 rows asked for, each
    val = pd.read_csv(runs_dir / run_id / "val.csv", dtype=str, keep_default_na=False)
    train = pd.read_csv(runs_dir / run_id / "train.csv", dtype=str, keep_default_na=False)
    # Seeded samples spread across names (never the first rows): three different names in each set.
    shown = [n for n in val["prompt"] if f"<td>{html.escape(n)}</td>" in unseen_html]
    assert len(set(shown)) == 3
    taught = [n for n in train["prompt"] if f"<td>{html.escape(n)}</td>" in taught_html]
    assert len(set(taught)) == 3
    train_names = set(train["prompt"])
    assert not any(f"<td>{html.escape(n)}</td>" in unseen_html for n in train_names - set(val["prompt"]))


def test_row_table_escapes_user_data_and_highlights_matches():
    frame = pd.DataFrame([{"name": "<img src=x onerror=alert(1)>", "reference": "=HYPERLINK(\"x\"), Fever and cough",
                           "generated": "fever, <b>rash</b>", "matched": "fever", "f1": 0.4}])
    out = rows_html(frame)
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "&lt;b&gt;rash&lt;/b&gt;" in out and "=HYPERLINK(&quot;x&quot;)" in out
    assert out.count("<mark><b>") == 2  # "Fever" in the reference and "fever" in the output
    assert "<mark><b>Fever</b></mark> and cough" in out


def test_compare_runs_plots_both_runs_curves(served):
    client, _, first, second = served
    plot, table = client.predict(runs=[first, second], api_name="/compare_runs")
    assert [r[0] for r in rows(table)] == [first, second] and [r[2] for r in rows(table)] == [3, 2]
    points = chart_points(plot)  # the chart carries its points (a Vega-Lite spec for gr.Plot)
    assert set(points["series"]) == {f"{r} · {k}" for r in (first, second) for k in ("train", "validation")}
    assert len(points) == 2 * (3 + 2)


def test_explain_returns_token_scores_for_the_shown_greedy_output(served):
    client, _, run_id, _ = served
    text, _, _ = client.predict(model=run_id, name="Kidney Failure", compare=False, **GREEDY, api_name="/generate")
    heat, summary, table = client.predict(model=run_id, name="Kidney Failure", shown=text, score="surprise",
                                          **GREEDY, api_name="/explain")
    tokens = [(h["token"], h["class_or_confidence"]) for h in heat]
    assert tokens and all(0.0 <= v <= 1.0 for _, v in tokens)
    shown = "".join(t for t, _ in tokens)
    assert shown.startswith(text.strip()[:10]) and "perplexity" in summary and "Explained the output" in summary
    probs = [r[2] for r in rows(table)]
    assert len(probs) == len(tokens) and all(0.0 < p <= 1.0 for p in probs)
    # Issue 22 (low): no empty column: sampling_probability is shown only where every token has one.
    if "sampling_probability" in table["headers"]:
        at = table["headers"].index("sampling_probability")
        assert all(isinstance(r[at], float) and 0.0 <= r[at] <= 1.0 for r in rows(table)), rows(table)[:3]
    assert [round(1 - p, 3) for p in probs] == [round(v, 3) for _, v in tokens]

    # Explain re-generates with every setting of the shown output, no_repeat_ngram_size included.
    plain = text
    text, _, _ = client.predict(model=run_id, name="Kidney Failure", compare=False, no_repeat_ngram_size=2,
                                **GREEDY, api_name="/generate")
    assert text != plain, "this model repeats itself: the setting must change its greedy text"
    _, summary, _ = client.predict(model=run_id, name="Kidney Failure", shown=text, score="surprise",
                                   no_repeat_ngram_size=2, **GREEDY, api_name="/explain")
    assert "Explained the output" in summary


def test_export_then_import_round_trip_generates_the_same_greedy_text(served):
    client, runs_dir, run_id, _ = served
    zip_path, card = client.predict(run_id=run_id, api_name="/export_run")
    assert Path(zip_path).name == f"{run_id}.zip" and zipfile.is_zipfile(zip_path)
    assert f"{run_id}/model.safetensors" in zipfile.ZipFile(zip_path).namelist()
    assert "Not medical advice" in card and not card.startswith("---")

    status, new_id = client.predict(upload=handle_file(zip_path), hub_id="", api_name="/import_run")
    assert new_id != run_id and f"**Loaded** run `{new_id}`" in status
    assert (runs_dir / new_id / "best" / "model.safetensors").is_file()
    texts = [client.predict(model=r, name="Asthma", compare=False, **GREEDY, api_name="/generate")[0]
             for r in (run_id, new_id)]
    assert texts[0] == texts[1] and texts[0].strip()


def test_export_as_gguf_from_the_page_with_its_size_shown_first(served):
    """Issue 24: the Export part offers GGUF; ``export_run``'s new inputs come last with defaults (old callers that
    send only the run still get the zip, above)."""
    from gguf import GGUFReader

    client, runs_dir, run_id, _ = served
    params = client.view_api(return_format="dict")["named_endpoints"]["/export_run"]["parameters"]
    assert [(p["parameter_name"], p["parameter_default"]) for p in params][1:] == [
        ("export_format", "zip"), ("gguf_type", "f16")]
    estimate = next(f.fn for f in served_demo_fns(runs_dir) if getattr(f.fn, "__name__", "") == "export_estimate")
    note = estimate(run_id, "gguf", "q8_0")
    assert note.startswith("GGUF q8_0: about ") and f"FROM ./{run_id}-q8_0.gguf" in note
    assert "Pick a finished run" in estimate(None, "gguf", "f16") and "zip" in estimate(run_id, "zip", "f16")

    path, card = client.predict(run_id=run_id, export_format="gguf", gguf_type="q8_0", api_name="/export_run")
    assert Path(path).name == f"{run_id}-q8_0.gguf" and "Not medical advice" in card
    assert GGUFReader(path).fields["general.architecture"].contents() == "gpt2"
    with pytest.raises(AppError, match="takes one of: f16, bf16, q8_0"):  # refused before the handler, in one sentence
        client.predict(run_id=run_id, export_format="gguf", gguf_type="q2_k", api_name="/export_run")


def served_demo_fns(runs_dir: Path):
    return build_demo(runs_dir=runs_dir).fns.values()


def test_import_errors_are_one_sentence(served, tmp_path):
    client = served[0]
    with pytest.raises(AppError, match="Upload a run zip or enter a Hub id"):
        client.predict(upload=None, hub_id="", api_name="/import_run")
    with pytest.raises(AppError, match="Could not download run 'someone/run'.*offline mode is on"):
        client.predict(upload=None, hub_id="someone/run", api_name="/import_run")
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip")
    with pytest.raises(AppError, match="fake.zip is not a zip file"):
        client.predict(upload=handle_file(str(fake)), hub_id="", api_name="/import_run")


def test_push_without_a_visitor_token_or_network_says_so(served, monkeypatch):
    client, _, run_id, _ = served
    monkeypatch.setenv("HF_TOKEN", "hf_the_owners_token")  # the server runs in this process: never lent to visitors
    with pytest.raises(AppError, match="No Hugging Face token: sign in with Hugging Face or give a write") as err:
        client.predict(run_id=run_id, repo_id="me/symptomgen-test", private=True, api_name="/push_run")
    assert "Traceback" not in str(err.value)
    with pytest.raises(AppError, match="Could not push run .* offline mode is on") as err:
        client.predict(run_id=run_id, repo_id="me/symptomgen-test", private=True, typed_token="hf_not_a_real_token",
                       api_name="/push_run")
    assert "hf_not_a_real_token" not in str(err.value)


@pytest.mark.parametrize("api_name, kwargs", [
    ("/evaluate", dict(rows=2, sampling="none")), ("/export_run", {}), ("/model_card", {}),
    ("/push_run", dict(repo_id="me/x", private=True)),
])
def test_run_names_outside_the_runs_folder_are_refused(served, api_name, kwargs):
    client = served[0]
    for bad in ("../../etc", "/etc/passwd"):
        with pytest.raises(AppError, match="is not a valid run name"):
            client.predict(run_id=bad, **kwargs, api_name=api_name)
    with pytest.raises(AppError, match="was not found"):
        client.predict(run_id="no-such-run", **kwargs, api_name=api_name)


def test_compare_and_explain_refuse_bad_names(served):
    client = served[0]
    with pytest.raises(AppError, match="is not a valid run name"):
        client.predict(runs=["../../etc"], api_name="/compare_runs")
    with pytest.raises(AppError, match="neither a finished run nor a Hugging Face model id"):
        client.predict(model="../../etc", name="Asthma", api_name="/explain")
