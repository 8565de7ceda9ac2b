"""Baselines (issue 21): a constant answer and a name lookup from the training rows, scored like the model on the
same rows, in the CLI's JSON and table and in the model card, with one sentence naming the best."""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest

from symptomgen import baselines as BL
from symptomgen.baselines import CONSTANT, LOOKUP, NameLookup, baseline_scores, constant_answer, verdict
from symptomgen.scoring import LIST, TEXT, score_text

LIST_TRAIN = pd.DataFrame({
    "prompt": ["Flu", "Common  Cold", "Kidney Failure", "Asthma", "Migraine"],
    "target": ["Fever, cough, fatigue", "cough, sneezing, Fatigue", "fatigue, swelling, nausea, fever",
               "wheezing, cough, chest tightness", "headache, nausea, fatigue"]})
"""Phrases per row 3, 3, 4, 3, 3 (median 3); in how many rows: fatigue 4, cough 3, fever 2, nausea 2, ..."""


def test_the_list_constant_is_the_k_most_frequent_phrases_k_the_median_count():
    assert constant_answer(LIST_TRAIN["target"], LIST) == "fatigue, cough, fever"  # fever and nausea tie: first seen
    two = pd.Series(["a, b", "a, c", "a, b, c, d"])  # median 2 phrases
    assert constant_answer(two, LIST) == "a, b"
    assert constant_answer(pd.Series(["x, y; Treatments: rest, fluids, sleep"]), LIST, "Treatments") == "x, y"


def test_lookup_answers_a_taught_name_with_its_target_and_an_unseen_one_with_the_nearest_names():
    lookup = NameLookup(LIST_TRAIN["prompt"], LIST_TRAIN["target"])
    answers = lookup.answers(["kidney   failure", "common cold", "Kidney Failur", "Asthmatic bronchitis", "Migrane"])
    assert answers == ["fatigue, swelling, nausea, fever", "cough, sneezing, Fatigue",
                       "fatigue, swelling, nausea, fever", "wheezing, cough, chest tightness",
                       "headache, nausea, fatigue"]
    assert NameLookup([], []).answers(["Flu"]) == [""]


def test_lookup_over_many_names_shortlists_by_trigrams_and_finds_the_same(monkeypatch):
    syllables = ["ka", "lo", "mi", "nu", "pe", "ro", "sa", "ti", "vu"]
    names = [f"{a}{b}{c} {d}itis" for a in syllables for b in syllables for c in syllables for d in ("ost", "arthr")]
    train = pd.DataFrame({"prompt": names, "target": [f"t{i}" for i in range(len(names))]})  # 1458 names
    queries = ["kalomi arthriti", "Nupesa  Ostitis", "zzz"]
    full = NameLookup(train["prompt"], train["target"]).answers(queries)
    monkeypatch.setattr(BL, "FULL_SCAN_NAMES", 50)
    monkeypatch.setattr(BL, "SHORTLIST", 20)
    short = NameLookup(train["prompt"], train["target"])
    want = [f"t{names.index('kalomi arthritis')}", f"t{names.index('nupesa ostitis')}"]
    assert short.answers(queries)[:2] == full[:2] == want
    assert short._postings is not None  # the shortlist was used


def test_the_text_constant_is_the_most_typical_training_text():
    texts = pd.Series(["My knee hurts when I climb the stairs.",
                       "I have had a fever and a headache since Monday morning.",
                       "I have had a fever and a headache since Monday.",
                       "I have had a fever and a headache since Tuesday.",
                       "A rash spread over both of my arms overnight."])
    assert constant_answer(texts, TEXT) == "I have had a fever and a headache since Monday."


def test_baselines_are_scored_with_the_models_scorer_on_the_given_rows():
    unseen = pd.DataFrame({"prompt": ["Kidney Failur", "Bronchitis"], "target": ["fatigue, nausea", "cough"]})
    answer, scores = baseline_scores(LIST_TRAIN, {"taught": LIST_TRAIN, "unseen": unseen}, LIST)
    assert answer == "fatigue, cough, fever"
    assert scores["taught"][LOOKUP]["f1"] == 1.0 and scores["taught"][LOOKUP]["same_name_rows"] == 5
    want = [score_text(answer, ref, LIST)["f1"] for ref in unseen["target"]]
    assert scores["unseen"][CONSTANT]["f1"] == pytest.approx(sum(want) / 2, abs=1e-4)
    assert scores["unseen"][LOOKUP]["same_name_rows"] == 0 and scores["unseen"][CONSTANT]["rows"] == 2


def _result(taught: tuple, unseen: tuple, kind: str = LIST, in_training: int = 0) -> dict:
    key = "f1" if kind == LIST else "rougeL"

    def one(scores, **extra):
        model, base, constant, lookup = scores
        return {"fine_tuned": {key: model}, "base": {key: base}, CONSTANT: {key: constant},
                LOOKUP: {key: lookup}, **extra}
    return {"target_kind": kind, "taught": one(taught), "unseen": one(unseen, names_in_training=in_training)}


def test_the_sentence_names_the_best_on_taught_and_on_unseen_rows():
    # (model, base, constant, lookup)
    said = verdict(_result((0.634, 0.0, 0.116, 1.0), (0.030, 0.0, 0.102, 0.072)))
    assert said == ("On taught names the model scores below a lookup (F1 0.63 vs 1.00); on unseen names it scores "
                    "below a constant answer (F1 0.03 vs 0.10).")
    said = verdict(_result((0.5, 0.0, 0.1, 0.3), (0.2, 0.0, 0.1, 0.15)))
    assert said.startswith("On taught names the model beats a lookup (F1 0.50 vs 0.30)")
    assert "on unseen names it beats a lookup (F1 0.20 vs 0.15)" in said
    said = verdict(_result((0.1, 0.3, 0.0, 0.0), (0.1, 0.0, 0.102, 0.0), kind=TEXT, in_training=3))
    assert "the model scores below its base model (ROUGE-L 0.10 vs 0.30)" in said
    assert "on unseen rows it scores level with a constant answer (ROUGE-L 0.10)" in said
    old = _result((0.5, 0.0, 0.1, 0.3), (0.2, 0.0, 0.1, 0.15))
    for scored in (old["taught"], old["unseen"]):
        del scored[CONSTANT], scored[LOOKUP]
    assert verdict(old) == ""  # an evaluation saved before baselines: no sentence


@pytest.fixture(scope="module")
def evaluated(trained_run, tmp_path_factory):
    """A copy of the shared tiny run (so its folder stays unevaluated), evaluated through the CLI: 4 rows each set,
    base included."""
    import shutil

    from symptomgen.cli import main as cli_main

    run_dir = tmp_path_factory.mktemp("bl-runs") / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, run_dir)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["evaluate", "--model", str(run_dir), "--limit", "4", "--temperature", "0"])
    assert code == 0, err.getvalue()
    return run_dir, json.loads(out.getvalue()), err.getvalue()


def test_cli_evaluate_gives_constant_and_lookup_for_taught_and_unseen_rows(evaluated):
    run_dir, report, table = evaluated
    train = pd.read_csv(run_dir / "train.csv", dtype=str, keep_default_na=False)
    assert report["constant_answer"] == constant_answer(train["target"], LIST)
    for name in ("taught", "unseen"):
        for baseline in (CONSTANT, LOOKUP):
            scores = report[name][baseline]
            assert {"precision", "recall", "f1"} <= set(scores) and scores["rows"] == report[name]["rows"] == 4
    assert report["taught"][LOOKUP]["f1"] > 0.9  # the taught rows' own targets (names repeat only by accident)
    assert report["unseen"][LOOKUP]["same_name_rows"] == 0  # the sample is split by name
    assert report["verdict"] == verdict(report) and report["verdict"].startswith("On taught names the model ")
    lines = table.splitlines()
    assert report["verdict"] in lines  # after the progress lines, before the table
    header = next(ln for ln in lines if ln.startswith("rows"))
    assert "fine-tuned" in header and "base model" in header and "constant answer" in header and "lookup" in header
    assert any(ln.startswith("taught") and "F1 (greedy)" in ln for ln in lines)
    assert any(ln.startswith("unseen") and "F1 (greedy)" in ln for ln in lines)


def test_the_model_card_shows_the_baseline_rows_and_the_sentence(evaluated):
    from symptomgen.card import write_model_card

    run_dir, report, _ = evaluated
    section = write_model_card(run_dir).split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    assert f"**{report['verdict']}**" in section
    assert f'gives every row "{report["constant_answer"]}"' in section
    assert "| fine-tuned | base model | constant answer | lookup |" in section
    for name in ("taught", "unseen"):
        row = next(ln for ln in section.splitlines() if ln.startswith(f"| {name} | 4 | F1 (greedy) |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[5] == f"{report[name][CONSTANT]['f1']:.4g}" and cells[6] == f"{report[name][LOOKUP]['f1']:.4g}"
        loss = next(ln for ln in section.splitlines() if ln.startswith(f"| {name} | 4 | loss per real token |"))
        assert loss.endswith("| – | – |")  # a baseline has no loss


def test_real_table_constant_is_four_common_phrases_and_beats_chance(real_data_path):
    from symptomgen.config import DataConfig
    from symptomgen.data import prepare

    prepared = prepare(DataConfig(source=str(real_data_path), seed=42))
    answer, scores = baseline_scores(prepared.train, {"unseen": prepared.val}, prepared.target_kind)
    assert answer == "fatigue, swelling, fever, nausea"
    assert scores["unseen"][CONSTANT]["f1"] == pytest.approx(0.102, abs=0.002)  # issue 21's figure on this split
