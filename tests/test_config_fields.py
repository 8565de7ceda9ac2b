"""Each setting's range, choices, default and help are declared once (``config.Spec``), and the CLI flags, the UI
widgets and the validation all follow that declaration."""

from __future__ import annotations

import argparse
import re

import gradio as gr
import pytest

from symptomgen import cli
from symptomgen import config as C
from symptomgen.ui.data_tab import build_data_tab
from symptomgen.ui.train_tab import TRAIN_FIELDS, build_train_tab
from symptomgen.ui.widgets import NamedNumber, NamedSlider, setting_widget

CLASSES = (C.DataConfig, C.TrainConfig, C.GenerationSettings, C.EvaluationSettings)
ALL = [(cls, s) for cls in CLASSES for s in C.settings_of(cls)]
NUMBERS = [(cls, s) for cls, s in ALL if s.kind == "number"]


def ids(cases) -> list[str]:
    return [f"{cls.__name__}.{s.name}" for cls, s in cases]


def option_lines(command: str, monkeypatch) -> dict[str, str]:
    """``{flag: its help, as one line}`` of one subcommand's --help, as a person reads it."""
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside a number
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options: dict[str, str] = {}
    flag = None
    for line in sub.choices[command].format_help().splitlines():
        if m := re.match(r"  (--[\w-]+)", line):  # an option's first line; its help may go on the next one
            flag = m.group(1)
            options[flag] = line
        elif flag and line.startswith("   "):
            options[flag] += " " + line.strip()
        else:
            flag = None
    return options


def test_every_setting_declares_a_label_and_one_sentence_of_help():
    for cls, s in ALL:
        assert s.label and s.help.endswith(".") and "\n" not in s.help, (cls.__name__, s.name)
        if s.kind == "number":
            assert s.min < s.max and s.min <= s.default <= s.max and s.step, (cls.__name__, s.name)
        if s.kind == "choice":
            assert s.default in s.choices


def test_train_help_states_each_numeric_setting_range_and_default(monkeypatch):
    lines = option_lines("train", monkeypatch)
    for s in C.settings_of(C.TrainConfig):
        if s.kind != "number":
            continue
        flag = s.cli_flag or "--seed"  # the train seed has no flag of its own: --seed seeds split and training
        assert f"Range {s.range_text}; default {C.fmt_number(s.default)}." in lines[flag], (flag, lines[flag])
    assert "{constant,linear,cosine}" in lines["--scheduler"]


def test_sampling_help_states_each_range(monkeypatch):
    for command in ("generate", "evaluate"):
        lines = option_lines(command, monkeypatch)
        for s in C.settings_of(C.GenerationSettings):
            assert f"Range {s.range_text}" in lines[s.cli_flag], (command, s.cli_flag)


def test_flags_keep_their_names_and_map_to_the_fields():
    a = cli.build_parser().parse_args([
        "train", "--data", "sample", "--lr", "0.01", "--epochs", "3", "--batch-size", "4", "--max-length", "64",
        "--warmup-ratio", "0.1", "--weight-decay", "0.01", "--grad-accum", "2", "--patience", "1", "--seed", "7",
        "--scratch-layers", "2", "--scratch-width", "64", "--scratch-vocab", "800", "--val-fraction", "0.3",
        "--loss-on", "full", "--scheduler", "cosine", "--no-length-grouping", "--no-checkpoints",
        "--with-treatments", "--prompt-column", "Name", "--target-column", "Symptoms", "--model", "scratch"])
    data, train = cli._train_configs(a)
    assert (train.learning_rate, train.epochs, train.batch_size, train.max_length) == (0.01, 3, 4, 64)
    assert (train.warmup_ratio, train.weight_decay, train.grad_accum, train.patience) == (0.1, 0.01, 2, 1)
    assert (train.scratch_layers, train.scratch_width, train.scratch_vocab) == (2, 64, 800)
    assert (train.loss_on, train.scheduler, train.model) == ("full", "cosine", "scratch")
    assert not train.group_by_length and not train.save_checkpoints
    assert train.seed == data.seed == 7  # one --seed for the split and the training
    assert (data.source, data.val_fraction, data.extra_target_column) == ("sample", 0.3, "Treatments")
    # Without flags: the preset's values stay (the flags default to None), the CLI's data default is the Hub set.
    data, train = cli._train_configs(cli.build_parser().parse_args(["train", "--preset", "quick-cpu"]))
    assert train == C.TRAIN_PRESETS["quick-cpu"].with_(seed=42) and data.source == C.DEFAULT_DATASET
    g = cli._sampling(cli.build_parser().parse_args(["generate", "x", "--model", "m", "--top-k", "3",
                                                     "--num-return-sequences", "2", "--seed", "5"]))
    assert (g.top_k, g.num_return_sequences, g.seed, g.top_p) == (3, 2, 5, C.GenerationSettings().top_p)


def test_resume_ignores_every_train_flag():
    assert set(cli.RESUME_IGNORES) == {
        "preset", "model", "epochs", "batch_size", "lr", "max_length", "warmup_ratio", "weight_decay", "grad_accum",
        "patience", "loss_on", "scheduler", "scratch_layers", "scratch_width", "scratch_vocab", "with_treatments",
        "no_length_grouping", "no_checkpoints", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "report_to",
        "keep", "max_minutes", "score_rows", "shuffle_phrases", "label_smoothing"}
    assert cli.DATA_DEFAULTS == {"data": C.DEFAULT_DATASET, "prompt_column": "Name", "target_column": "Symptoms",
                                 "val_fraction": C.DataConfig().val_fraction, "seed": 42, "split_by": "auto"}


@pytest.mark.parametrize("cls, s", NUMBERS, ids=ids(NUMBERS))
def test_validation_follows_the_metadata(cls, s):
    message = f"{s.label} must be between {C.fmt_number(s.min)} and {C.fmt_number(s.max)}, got"
    for bad in (s.min - 1, s.max + 1):
        with pytest.raises(C.InvalidInput, match=re.escape(message)):
            cls(**{s.name: bad})
    assert getattr(cls(**{s.name: s.max}), s.name) == s.max
    if s.integer:
        with pytest.raises(ValueError, match=f"{re.escape(s.label)} must be a whole number"):
            cls(**{s.name: s.min + 0.5})


def test_choices_are_checked_with_the_label():
    with pytest.raises(ValueError, match="Learning-rate schedule must be one of constant, linear, cosine"):
        C.TrainConfig(scheduler="step")
    assert C.setting(C.TrainConfig, "scheduler").choices == C.SCHEDULERS
    epochs = C.setting(C.TrainConfig, "epochs")
    assert (epochs.min, epochs.max, epochs.default) == (1, 100, 30)


@pytest.mark.parametrize("cls, s", ALL, ids=ids(ALL))
def test_the_widget_factory_follows_the_metadata(cls, s):
    with gr.Blocks():
        w = setting_widget(cls, s.name)
    assert w.label == s.label and w.info == s.help
    if s.kind == "number":
        assert isinstance(w, NamedSlider if s.slider else NamedNumber)
        assert (w.minimum, w.maximum, w.step, w.value) == (s.min, s.max, s.step, s.default)
    elif s.kind == "choice":
        assert [c[1] for c in w.choices] == list(s.choices) and w.value == s.default
    elif s.kind == "switch":
        assert isinstance(w, gr.Checkbox) and w.value is s.default


def test_train_and_data_tabs_take_their_widgets_from_the_metadata(tmp_path):
    from symptomgen.store import RunStore
    from symptomgen.ui.context import PageContext

    ctx = PageContext.create(RunStore(tmp_path), offline=True)
    with gr.Blocks():
        train = build_train_tab(ctx)
        data = build_data_tab(ctx)
    assert TRAIN_FIELDS == C.ui_fields(C.TrainConfig) and len(train.widgets) == len(TRAIN_FIELDS)
    preset = C.TRAIN_PRESETS["quick-cpu"]
    for name, w in zip(TRAIN_FIELDS, train.widgets):
        s = C.setting(C.TrainConfig, name)
        assert w.label == s.label and w.value == getattr(preset, name)
        if s.kind == "number":
            assert (w.minimum, w.maximum) == (s.min, s.max), name
    for w, s in ((data.val_fraction, C.setting(C.DataConfig, "val_fraction")),
                 (data.split_seed, C.setting(C.DataConfig, "seed"))):
        assert (w.label, w.minimum, w.maximum, w.value) == (s.label, s.min, s.max, s.default)


def test_the_train_endpoint_keeps_its_parameter_names(tmp_path):
    from symptomgen.ui import build_demo

    info = build_demo(runs_dir=tmp_path).get_api_info()["named_endpoints"]
    # New parameters are appended (the data tab's at the end of its own, the training ones at the very end),
    # each with a default, so keyword clients written for the older list still work.
    train = info["/train"]["parameters"]
    assert [p["parameter_name"] for p in train] == [
        "source", "hub_dataset", "hub_split", "upload", "prompt_column", "target_column", "extra_target_column",
        "val_fraction", "split_seed", "split_by", "model", "epochs", "batch_size", "learning_rate", "max_length",
        "loss_on", "scheduler", "warmup_ratio", "weight_decay", "grad_accum", "patience", "group_by_length", "seed",
        "scratch_layers", "scratch_width", "scratch_vocab", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets",
        "report_to", "keep", "max_minutes"]
    defaults = {p["parameter_name"]: p["parameter_default"] for p in train if p["parameter_has_default"]}
    offline_start = C.TRAIN_PRESETS["quick-cpu"]  # tests run offline: the page starts with the quick preset
    assert (defaults["split_by"], defaults["keep"], defaults["max_minutes"]) == ("auto", offline_start.keep,
                                                                                 offline_start.max_minutes)
    generate = info["/generate"]["parameters"]
    assert [p["parameter_name"] for p in generate][2:9] == [
        "top_k", "top_p", "temperature", "repetition_penalty", "max_new_tokens", "num_sequences", "seed"]
    assert [(p["parameter_name"], p["parameter_default"]) for p in generate][-2:] == [
        ("compare", True), ("no_repeat_ngram_size", 0)]
