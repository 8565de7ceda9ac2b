"""Issue 21 items 2 and 3: a generation score after every epoch, and a kept model chosen by it."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from symptomgen.batching import shuffle_phrases
from symptomgen.config import TrainConfig
from symptomgen.epochscore import EpochScorer
from symptomgen.errors import InvalidInput
from symptomgen.events import EpochResult
from symptomgen.outcomes import kept_model_note
from symptomgen.runs import METRIC_COLUMNS, MODEL_INFO, Run
from symptomgen.trainer import run_training


def test_every_epoch_carries_its_sample_scores_in_the_record_and_metrics_csv(tmp_path, sample_data, tiny_cfg):
    events = []
    summary = run_training(sample_data, tiny_cfg.with_(score_rows=4), tmp_path, on_event=events.append)
    epochs = [e for e in events if isinstance(e, EpochResult)]
    assert [e.epoch for e in epochs] == [1, 2]
    for e in epochs:
        assert 0.0 <= e.taught_score <= 1.0 and 0.0 <= e.unseen_score <= 1.0
        assert 0.0 < e.constant_score <= 1.0  # the constant answer shares phrases with some of the sample
    metrics = Run(summary.run_dir).metrics()
    assert list(metrics.columns) == METRIC_COLUMNS
    assert list(metrics["taught_score"]) == pytest.approx([round(e.taught_score, 4) for e in epochs])
    assert list(metrics["unseen_score"]) == pytest.approx([round(e.unseen_score, 4) for e in epochs])


def test_keep_score_keeps_the_epoch_with_the_highest_sample_score(tmp_path, sample_data, tiny_cfg, monkeypatch):
    # Scores made up per epoch so the answer is known: highest (mean of taught and unseen) at epoch 2 of 4,
    # while validation loss (falling on the sample) is lowest at a later epoch.
    made_up = iter([(0.1, 0.1), (0.5, 0.3), (0.2, 0.2), (0.4, 0.1)])
    monkeypatch.setattr(EpochScorer, "score", lambda self, model, tok: next(made_up))
    events = []
    summary = run_training(sample_data, tiny_cfg.with_(epochs=4, keep="score", learning_rate=1e-3), tmp_path,
                           on_event=events.append)
    assert summary.kept_epoch == 2
    run = Run(summary.run_dir)
    assert json.loads((run.best_dir / MODEL_INFO).read_text())["epoch"] == 2
    assert run.record().kept_epoch == 2
    assert [e.epoch for e in events if isinstance(e, EpochResult) and e.is_kept] == [1, 2]
    assert "best/ holds epoch 2 of 4, the highest greedy score" in summary.message
    assert "taught 0.500, unseen 0.300" in summary.message
    if summary.best_epoch != 2:
        assert f"validation loss was lowest at epoch {summary.best_epoch}" in summary.message


def test_keep_best_still_keeps_the_lowest_validation_loss(tmp_path, sample_data, tiny_cfg, monkeypatch):
    made_up = iter([(0.9, 0.9), (0.0, 0.0), (0.0, 0.0)])
    monkeypatch.setattr(EpochScorer, "score", lambda self, model, tok: next(made_up))
    summary = run_training(sample_data, tiny_cfg.with_(epochs=3, keep="best"), tmp_path)
    assert summary.kept_epoch == summary.best_epoch
    assert Run(summary.run_dir).best_info().epoch == summary.best_epoch


def test_keep_score_needs_a_score():
    with pytest.raises(InvalidInput, match="needs a per-epoch score"):
        TrainConfig(keep="score", score_rows=0)


def test_an_old_run_without_score_columns_still_reads_and_resumes_its_csv(tmp_path):
    run_dir = tmp_path / "20250101-000000-scratch"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({
        "run_id": run_dir.name, "status": "finished", "best_epoch": 1, "epochs_done": 2,
        "train": {"model": "scratch", "keep": "best"}, "data": {"source": "sample"}}))
    old_header = "epoch,transformer,batch_size,gpu,training_loss,validation_loss,epoch_duration_sec,perplexity," \
                 "tokens_per_sec,learning_rate,is_best"
    (run_dir / "metrics.csv").write_text(old_header + "\n1,scratch,8,cpu,5.0,5.5,1.0,244.7,100,0.0005,True\n"
                                         "2,scratch,8,cpu,4.0,5.6,1.0,270.4,100,0.0005,False\n")
    run = Run(run_dir)
    assert run.record().train.keep == "best"
    metrics = run.metrics()
    assert list(metrics["validation_loss"]) == [5.5, 5.6]
    assert metrics["taught_score"].isna().all() and metrics["unseen_score"].isna().all()
    # A resumed old run appends a row with today's columns: the file gets today's header, old rows stay.
    run.append_metrics({"epoch": 3, "training_loss": 3.0, "validation_loss": 5.7, "taught_score": 0.25,
                        "unseen_score": 0.125})
    metrics = run.metrics()
    assert list(metrics.columns) == METRIC_COLUMNS and list(metrics["epoch"]) == [1, 2, 3]
    assert pd.isna(metrics["taught_score"].iloc[0]) and metrics["taught_score"].iloc[2] == 0.25


def test_the_sample_shrinks_to_what_fits_under_the_time_cap():
    import symptomgen.epochscore as es

    frame = pd.DataFrame({"prompt": [f"Disease {i}" for i in range(60)], "target": ["fever, cough"] * 60})
    ticks = iter(range(1000))
    # Every clock read is one second later: the first chunk is always scored, the second is over the cap.
    scorer = EpochScorer(frame, frame, rows=es.CHUNK + 4, seconds=0.5, clock=lambda: next(ticks))
    calls = []

    def fake_batch(model, tok, names):
        calls.append(len(names))
        return ["fever"] * len(names)

    original, es.generate_batch = es.generate_batch, fake_batch
    try:
        taught, unseen = scorer.score(None, None)
    finally:
        es.generate_batch = original
    assert calls == [2 * es.CHUNK]  # one chunk (CHUNK taught + CHUNK unseen rows) before the cap
    assert len(scorer.taught) == len(scorer.unseen) == es.CHUNK
    assert taught == pytest.approx(2 / 3) and unseen == pytest.approx(2 / 3)


def test_phrase_shuffle_keeps_the_set_and_the_extra_column():
    rng = random.Random(0)
    text = "Fever, dry cough, fatigue, HIV test positive; Treatments: rest, fluids"
    seen = {shuffle_phrases(text, rng, "Treatments") for _ in range(20)}
    assert len(seen) > 1
    for s in seen:
        head, tail = s.split("; Treatments: ")
        assert tail == "rest, fluids"
        assert {p.lower() for p in head.split(", ")} == {"fever", "dry cough", "fatigue", "hiv test positive"}
        assert head[0].isupper()


def test_kept_model_note_for_old_keep_modes_is_unchanged():
    cfg = TrainConfig(model="scratch", keep="last")
    note = kept_model_note(3, 10, 10, cfg, 300, "by-name")
    assert "best/ holds the last epoch's model (epoch 10)" in note


def test_about_ten_epochs_a_run_are_scored_by_number():
    """Epoch 1, every ceil(epochs / 10)-th and the last: a short run scores every epoch, a long one about ten."""
    from symptomgen.reporter import SCORES_PER_RUN, scored_epoch

    assert all(scored_epoch(e, 6) for e in range(1, 7))
    thirty = [e for e in range(1, 31) if scored_epoch(e, 30)]
    assert thirty[0] == 1 and thirty[-1] == 30 and thirty[1:4] == [3, 6, 9]
    assert len(thirty) <= SCORES_PER_RUN + 1
    assert [e for e in range(1, 26) if scored_epoch(e, 25)][-2:] == [24, 25]  # the last always, off the stride
