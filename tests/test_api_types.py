"""Every endpoint checks its inputs' types (issue 12): a wrong type is one sentence naming the field, never an
internal error.  The handlers are called as Gradio calls them, after its preprocessing, without a server."""

from __future__ import annotations

import inspect

import gradio as gr
import pytest

from symptomgen.ui import build_demo

GEN = dict(model="scratch", name="Asthma", top_k=8, top_p=0.95, temperature=0.5, repetition_penalty=1.2,
           max_new_tokens=8, num_sequences=1, seed=1, compare=False)


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    demo = build_demo(runs_dir=tmp_path_factory.mktemp("runs"))
    return {f.api_name: f.fn for f in demo.fns.values() if f.api_name}


def _call(fn, **kwargs):
    result = fn(**kwargs)
    if inspect.isgenerator(result):
        for _ in result:
            pass


CASES = [
    ("generate", dict(GEN, model=["x"]), "The field 'model' must be text, got list."),
    ("generate", dict(GEN, compare={"on": 1}), "The field 'compare' must be true or false, got dict."),
    ("generate", dict(GEN, top_k="eight"), "The field 'top_k' must be a number, got str."),
    ("explain", dict(GEN, name=5, shown=None, score="probability", compare=None), "'name' must be text"),
    ("evaluate", dict(run_id=["a"], rows=2, sampling="none"), "The field 'run_id' must be text, got list."),
    ("evaluate", dict(run_id="x", rows=True, sampling="none"), "The field 'rows' must be a number, got bool."),
    ("compare_runs", dict(runs="a-run"), "The field 'runs' must be a list of text, got str."),
    ("compare_runs", dict(runs=["a", 3]), "The field 'runs' must be a list of text, got a list holding int."),
    ("import_run", dict(upload=None, hub_id=7), "The field 'hub_id' must be text, got int."),
    ("push_run", dict(run_id="a", repo_id="o/n", private="yes"), "The field 'private' must be true or false"),
    ("model_card", dict(run_id={"id": 1}), "The field 'run_id' must be text, got dict."),
    ("export_run", dict(run_id="a", export_format=["gguf"]), "The field 'export_format' must be text, got list."),
    ("delete_run", dict(run_id=["a"]), "The field 'run_id' must be text, got list."),
    ("resume", dict(run_id=5), "The field 'run_id' must be text, got int."),
    ("list_runs", dict(current=[1]), "The field 'current' must be text, got list."),
]


@pytest.mark.parametrize("api, kwargs, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_wrong_type_is_one_sentence_naming_the_field(handlers, api, kwargs, message):
    fn = handlers[api]
    if api == "explain":  # its own parameters: the sampling knobs, then the text shown and the score
        kwargs = {k: v for k, v in kwargs.items() if k in inspect.signature(fn).parameters}
    with pytest.raises(gr.Error) as info:
        _call(fn, **kwargs)
    assert message in str(info.value.message) and "Internal error" not in str(info.value.message)


def test_train_checks_its_settings_types(handlers):
    fn = handlers["train"]
    names = list(inspect.signature(fn).parameters)
    values = {n: None for n in names}
    values.update(source="sample", model=5)
    with pytest.raises(gr.Error, match="The field 'model' must be text, got int."):
        _call(fn, **values)
    values.update(model="scratch", group_by_length="yes")
    with pytest.raises(gr.Error, match="The field 'group_by_length' must be true or false, got str."):
        _call(fn, **values)
