"""Quality gate: a tiny scratch run on the bundled sample must learn what it was taught.

Its taught F1 (a seeded sample of its own training rows, greedy) must beat its base model's (the same
random-init weights before training).  If training stops learning (a broken loss mask, labels that never reach
the loss, a learning rate that rounds to nothing), this fails.  The same run checks that evaluation scores
taught and unseen rows apart, labelled, in the CLI's JSON and in the model card.
"""

from __future__ import annotations

import json

import pytest
from conftest import TINY

from symptomgen.card import write_model_card
from symptomgen.cli import main as cli_main
from symptomgen.config import DataConfig
from symptomgen.evaluation import TAUGHT, UNSEEN, evaluate_run

# Sized on the bundled sample (about 77 training rows): 2x64 scratch, 12 epochs, in about 10 s on 2 CPU cores.
GATE = TINY.with_(epochs=12, learning_rate=3e-3)
ROWS = 12
MARGIN = 0.05
"""How far the taught F1 must be above the base's: the random-init base scores about 0."""


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory):
    from symptomgen.trainer import run_training

    summary = run_training(DataConfig(source="sample"), GATE, tmp_path_factory.mktemp("quality-runs"))
    assert summary.status == "finished"
    return summary.run_dir


def test_training_beats_its_base_on_the_rows_it_was_taught(gate_run):
    result = evaluate_run(gate_run, limit=ROWS)
    taught = result[TAUGHT]
    assert taught["rows"] == ROWS
    tuned, base = taught["fine_tuned"]["f1"], taught["base"]["f1"]
    assert tuned > base + MARGIN, f"taught F1 {tuned:.3f} does not beat the base model's {base:.3f}: no learning"
    assert taught["fine_tuned"]["val_loss"] < taught["base"]["val_loss"]
    # The taught table really holds training rows, and the unseen one validation rows.
    train_names = set(result["taught_table"]["name"])
    assert train_names and result[UNSEEN]["rows"] == len(result["table"])
    assert set(result["table"]["name"]).isdisjoint(train_names)  # the sample is split by name


def test_cli_json_and_model_card_label_taught_and_unseen_rows(gate_run, capsys):
    assert cli_main(["evaluate", "--model", str(gate_run), "--limit", "4", "--temperature", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"taught", "unseen"} <= set(report) and "table" not in report
    for name in (TAUGHT, UNSEEN):
        scored = report[name]
        assert scored["rows"] == 4 and name in scored["label"]
        for side in ("fine_tuned", "base"):
            assert {"f1", "precision", "recall", "val_loss"} <= set(scored[side])
    assert report["unseen"]["names_in_training"] == 0  # split by name: unseen names
    card = write_model_card(gate_run)
    section = card.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    assert "| taught | 4 | F1 (greedy) |" in section and "| unseen | 4 | F1 (greedy) |" in section


def test_the_card_of_a_run_never_evaluated_says_how(tmp_path):
    from symptomgen.trainer import run_training

    summary = run_training(DataConfig(source="sample"), TINY.with_(epochs=1), tmp_path)
    card = write_model_card(summary.run_dir)
    assert "Not evaluated yet: `python -m symptomgen evaluate --model" in card


def test_recipe_study_runs_end_to_end_and_refuses_missing_data(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "recipes.py"
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    missing = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "nope.csv")],
                             capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode != 0 and "The real data is not at" in missing.stderr
    assert "Traceback" not in missing.stderr
    out = tmp_path / "RECIPES.md"
    done = subprocess.run([sys.executable, str(script), "--data", "sample", "--seeds", "1", "2", "--epochs", "1",
                           "--limit", "3", "--recipes", "notebook", "scratch 2x128", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "| notebook | full | 0.0005 | 4x256 |" in text and "| scratch 2x128 | full | 0.0005 | 2x128 |" in text
    assert "Δ taught greedy F1" in text and "## Decoding presets" in text and "Load average" in text
    assert text.count("| notebook | 1 |") == 1 and text.count("| scratch 2x128 | 2 |") == 1  # one row per run
