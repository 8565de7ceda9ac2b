"""Your own data, honest results: a table unlike the sample — many rows per name, free-text targets — gets a split,
scores and a time budget that fit it (issue 11).  The table comes from ``tests/make_table.py``."""

from __future__ import annotations

import inspect
import json
import math

import pandas as pd
import pytest
from make_table import write_table

from symptomgen.catalog import target_kind
from symptomgen.cli import main as cli_main
from symptomgen.config import DataConfig, GenerationSettings, TrainConfig
from symptomgen.data import prepare
from symptomgen.events import Progress
from symptomgen.outcomes import kept_model_note
from symptomgen.runs import Run
from symptomgen.scoring import detect_target_kind, rouge
from symptomgen.splits import name_keys, split_rows, spread_sample
from symptomgen.trainer import TrainingHooks, run_training

NAMES, ROWS = 12, 8


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("own") / "T.csv", NAMES, ROWS)


def own(table, **changes) -> DataConfig:
    return DataConfig(source=str(table), prompt_column="label", target_column="text", **changes)


def names(frame: pd.DataFrame) -> set[str]:
    return set(name_keys(frame["prompt"]))


def test_the_table_script_is_deterministic(table, tmp_path):
    again = write_table(tmp_path / "again.csv", NAMES, ROWS)
    assert again.read_bytes() == table.read_bytes()
    df = pd.read_csv(table)
    assert list(df.columns) == ["label", "text"] and len(df) == NAMES * ROWS
    assert df["label"].value_counts().eq(ROWS).all()


def test_default_split_puts_every_repeated_name_on_both_sides(table):
    prepared = prepare(own(table))
    stats = prepared.split_stats
    assert stats.mode == "by-row" and stats.requested == "auto"
    assert names(prepared.train) == names(prepared.val) and len(names(prepared.val)) == NAMES
    # Proportions kept: each name gives round(8 × 0.2) = 2 of its rows to validation.
    assert prepared.val["prompt"].value_counts().eq(2).all()
    assert (stats.names, stats.rows_per_name_min, stats.rows_per_name_max) == (NAMES, ROWS, ROWS)
    assert stats.val_names_in_train == stats.val_names == NAMES
    summary = prepared.summary()
    assert "Split by row, stratified by name (auto)" in summary and f"{NAMES} names" in summary
    assert "names repeat" in summary.lower() and "free text" in summary
    # Seeded: the same rows every time, other rows with another seed.
    assert prepare(own(table)).val.equals(prepared.val)
    assert not prepare(own(table, seed=7)).val.equals(prepared.val)


def test_names_with_two_or_more_rows_are_on_both_sides_when_some_have_one():
    df = pd.DataFrame({"prompt": ["A"] * 5 + ["B"] * 2 + ["C"] * 3 + ["D", "E", "F", "G"],
                       "target": [f"text {i}" for i in range(14)]})
    train, val, _ = split_rows(df, 0.2, seed=3, mode="by-row")
    for name in "ABC":
        assert name in set(train["prompt"]) and name in set(val["prompt"]), name
    assert len(train) + len(val) == len(df)


def test_by_name_still_validates_on_unseen_names(table):
    prepared = prepare(own(table, split_by="by-name"))
    assert prepared.split_stats.mode == "by-name"
    assert not names(prepared.train) & names(prepared.val)
    assert prepared.split_stats.val_names_in_train == 0
    assert "validation tests names the model never saw" in prepared.summary()


def test_a_table_with_one_row_per_name_keeps_the_split_by_name(sample_data):
    prepared = prepare(sample_data)
    assert prepared.split_stats.mode == "by-name" and not names(prepared.train) & names(prepared.val)
    assert prepared.target_kind == "list"


def test_evaluation_rows_are_spread_across_names(table):
    val = prepare(own(table)).val  # grouped by name, as the file is
    assert len(names(val.head(5))) <= 3  # what head(n) used to evaluate: one or two names
    for n in (1, 5, NAMES, 20):
        rows = spread_sample(val, n)
        assert len(rows) == n and len(names(rows)) == min(n, NAMES), n
        assert rows.equals(spread_sample(val, n))  # seeded
    assert spread_sample(val, len(val)).equals(val)


def test_the_target_kind_follows_the_data(table):
    assert detect_target_kind(pd.read_csv(table)["text"]) == "text"
    assert detect_target_kind(["Fever, dry cough, fatigue", "Rash, itching"]) == "list"
    assert detect_target_kind(["Fever, cough; Treatments: rest, fluids and a long course of antibiotics for weeks"],
                              extra_column="Treatments") == "list"
    assert rouge("the fever started two days ago", "the fever started two days ago") == (1.0, 1.0)
    assert rouge("", "a fever") == (0.0, 0.0)
    assert rouge("fièvre forte et toux", "une fièvre forte")[0] > 0  # words of any script count


def test_an_older_run_gets_its_target_kind_from_its_split(tmp_path):
    run = Run(tmp_path / "20260101-000000-scratch")
    run.path.mkdir()
    run.config_path.write_text("{}")
    text = ["For a week I have had a fever that climbs every evening and a headache."] * 3
    pd.DataFrame({"prompt": ["A", "B", "C"], "target": text}).to_csv(run.path / "train.csv", index=False)
    pd.DataFrame({"prompt": ["D"], "target": text[:1]}).to_csv(run.path / "val.csv", index=False)
    assert target_kind(run) == "text"


@pytest.fixture(scope="module")
def own_run(table, tmp_path_factory):
    from conftest import TINY

    runs = tmp_path_factory.mktemp("own-runs")
    summary = run_training(own(table), TINY.with_(epochs=2), runs)
    assert summary.status == "finished"
    return runs, summary


def test_free_text_runs_are_scored_with_rouge_for_fine_tuned_and_base(own_run, capsys):
    runs, summary = own_run
    rec = Run(summary.run_dir).record()
    assert (rec.split_by, rec.target_kind, rec.kept_epoch) == ("by-row", "text", summary.best_epoch)
    assert cli_main(["--runs-dir", str(runs), "evaluate", "--model", str(summary.run_dir), "--limit", "6"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target_kind"] == "text"
    unseen = report["unseen"]
    for side in ("fine_tuned", "base"):
        assert 0.0 <= unseen[side]["rougeL"] <= 1.0 and 0.0 <= unseen[side]["rouge1"] <= 1.0, side
        assert "f1" not in unseen[side]  # comma-phrase overlap cannot score sentences
        assert unseen[side]["names"] == 6  # six rows, six different names
    assert unseen["fine_tuned"]["rougeL"] > unseen["base"]["rougeL"]  # the random-init base writes noise


def test_the_model_card_describes_free_text_and_the_split(own_run):
    from symptomgen.card import write_model_card

    card = write_model_card(own_run[1].run_dir)
    assert "comma-separated list" not in card
    assert "free text" in card and "ROUGE-L" in card and "split by row, stratified by name" in card


def test_the_model_card_and_the_generate_examples_use_the_runs_own_names(own_run):
    """Issue 22 (low): the card's Use snippet and the Generate tab's examples name what this run learned, not the
    bundled sample's "Kidney Failure, Asthma, Influenza…"."""
    import ast

    from symptomgen.card import write_model_card
    from symptomgen.store import RunStore
    from symptomgen.ui.generate_tab import EXAMPLES, example_names

    runs, summary = own_run
    run = Run(summary.run_dir)
    taught = set(run.split_frames()[0]["prompt"])
    snippet = write_model_card(run.path).split("## Use", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    prompt = ast.literal_eval(snippet.split("gen(", 1)[1].split(", max_new_tokens", 1)[0])
    assert prompt.endswith(" |") and prompt[:-2] in taught and "Kidney Failure" not in snippet
    ast.parse(snippet)  # still Python
    names = example_names(run.run_id, RunStore(runs))
    assert names and set(names) <= taught and not set(names) & set(EXAMPLES)
    assert example_names("scratch", RunStore(runs)) == EXAMPLES  # no run: the sample's names


def test_the_time_budget_stops_at_the_step_it_runs_out_and_keeps_the_best_epoch(tiny_cfg, sample_data, tmp_path):
    ticks = iter(range(10_000))  # a clock that advances one second per reading: read once per optimizer step
    progress: list[Progress] = []
    summary = run_training(sample_data, tiny_cfg.with_(epochs=10, max_minutes=0.2), tmp_path,  # 12 s = 12 steps
                           on_event=lambda e: progress.append(e) if isinstance(e, Progress) else None,
                           hooks=TrainingHooks(clock=lambda: float(next(ticks))))
    steps_per_epoch = progress[-1].total_steps // 10
    assert summary.status == "stopped" and "time budget" in summary.message
    assert progress[-1].step == 12  # the step at which the budget was spent, and not one more
    assert summary.epochs_done == 12 // steps_per_epoch  # finished epochs only; the partial one is not reported
    rec = Run(summary.run_dir).record()
    assert rec.status == "stopped" and rec.kept_epoch == rec.best_epoch == summary.best_epoch is not None
    assert Run(summary.run_dir).has_best() and len(Run(summary.run_dir).metrics()) == summary.epochs_done
    # Time left counts to the end of the epochs asked for; the budget's rest is told apart (issue 22).
    assert progress[-1].seconds_per_step == pytest.approx(1.0) and progress[-1].budget_left == 0.0
    assert progress[-1].seconds_left == pytest.approx(progress[-1].total_steps - 12)


def test_keep_last_keeps_the_last_epoch(tiny_cfg, sample_data, tmp_path):
    from symptomgen.batching import encode_frame, mean_token_loss
    from symptomgen.modeling import load_pretrained

    summary = run_training(sample_data, tiny_cfg.with_(epochs=3, keep="last"), tmp_path)
    run = Run(summary.run_dir)
    assert summary.kept_epoch == run.record().kept_epoch == run.best_info().epoch == 3
    # best/ holds the epoch-3 weights: reloaded, they give epoch 3's validation loss.
    model, tok = load_pretrained(run.best_dir)
    val = run.split_frames()[1]
    loss = mean_token_loss(model, encode_frame(tok, val, tiny_cfg.max_length, tiny_cfg.loss_on), tok.pad_token_id)
    assert loss == pytest.approx(float(run.metrics()["validation_loss"].iloc[-1]), rel=1e-3)


def test_the_summary_explains_an_early_kept_epoch():
    cfg = TrainConfig(learning_rate=5e-4, keep="best")
    note = kept_model_note(1, 4, 1, cfg, train_rows=320, split_by="by-name")
    assert "lowest at epoch 1 of 4" in note and "epoch-1 model is kept" in note
    assert "unseen in training" in note and "320 training rows" in note and "learning rate (0.0005)" in note
    assert "unseen" not in kept_model_note(1, 4, 1, cfg, train_rows=5000, split_by="by-row")
    assert kept_model_note(3, 4, 3, cfg, 320, "by-name") == ""  # improved after epoch 2: nothing to explain
    last = kept_model_note(1, 4, 4, cfg.with_(keep="last"), 320, "by-row")
    assert "last epoch's model (epoch 4)" in last and "lowest at epoch 1" in last


def test_no_repeat_ngram_size_leaves_no_repeated_ngram(trained_run):
    from symptomgen.generation import decode_continuation, encode_prompt, generate, generation_kwargs
    from symptomgen.modeling import load_pretrained

    model, tok = load_pretrained(trained_run.run_dir / "best")
    for n in (2, 3):
        settings = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0,
                                      max_new_tokens=48, no_repeat_ngram_size=n)
        inputs = encode_prompt(tok, "Kidney Failure", model.device)
        kwargs = generation_kwargs(model, tok, settings, inputs["input_ids"].shape[1])
        ids = model.generate(**inputs, **kwargs)[0].tolist()
        grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
        assert len(grams) == len(set(grams)), n
        prompt_len = inputs["input_ids"].shape[1]
        assert generate(model, tok, "Kidney Failure", settings) == [decode_continuation(tok, ids[prompt_len:])]
    assert "no_repeat_ngram_size" not in generation_kwargs(model, tok, GenerationSettings(), 4)


def test_the_epoch_estimate_scales_with_the_rows(table, tiny_cfg):
    from symptomgen.timing import estimate_epoch_seconds, planned_seconds

    prepared = prepare(own(table))
    doubled = prepared.__class__(**{**prepared.__dict__, "train": pd.concat([prepared.train] * 2),
                                    "val": pd.concat([prepared.val] * 2)})
    one = estimate_epoch_seconds(prepared, tiny_cfg, tokens_per_sec=1000.0)
    assert estimate_epoch_seconds(doubled, tiny_cfg, tokens_per_sec=1000.0) == pytest.approx(2 * one)
    probed = estimate_epoch_seconds(prepared, tiny_cfg, probe_steps=1)
    assert math.isfinite(probed) and probed > 0
    assert planned_seconds(10.0, tiny_cfg.with_(epochs=5)) == 50.0
    assert planned_seconds(100.0, tiny_cfg.with_(epochs=5, max_minutes=2)) == 120.0


def test_one_shape_table_sizes_the_gpu_step_estimate():
    from symptomgen.timing import (
        ESTIMATED_STEP_SECONDS,
        KNOWN_SHAPES,
        estimated_step_seconds,
        known_shape,
        shape_parameters,
    )

    assert shape_parameters(**KNOWN_SHAPES["gpt2"]) == pytest.approx(124_439_808, rel=0.01)  # the real counts
    assert shape_parameters(**KNOWN_SHAPES["gpt2-xl"]) == pytest.approx(1_557_611_200, rel=0.01)
    medium = KNOWN_SHAPES["gpt2-medium"]
    assert known_shape("openai-community/gpt2-medium") is known_shape("me/gpt2-medium-ft") is medium
    assert known_shape("me/bert-base") is None
    names = ("scratch", "distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
    steps = [estimated_step_seconds(TrainConfig(model=name)) for name in names]
    assert steps == sorted(steps) and steps[1] == ESTIMATED_STEP_SECONDS == estimated_step_seconds(
        TrainConfig(model="me/unknown"))


def test_the_data_flags_and_preview_name_the_split(table, capsys):
    from symptomgen import cli
    from symptomgen.ui.data_tab import preview_data

    a = cli.build_parser().parse_args(["train", "--data", str(table), "--split-by", "by-name", "--keep", "last",
                                       "--max-minutes", "1.5"])
    data, train = cli._train_configs(a)
    assert (data.split_by, train.keep, train.max_minutes) == ("by-name", "last", 1.5)
    out = preview_data("upload", "", "train", str(table), "label", "text", None, 0.2, 42, "by-row")
    if inspect.isgenerator(out):  # a handler that streams: its last update is the preview
        *_, out = out
    summary, rows, _ = out
    assert "Split by row, stratified by name (by-row)" in summary
    assert set(rows["split"]) == {"train", "validation"}
