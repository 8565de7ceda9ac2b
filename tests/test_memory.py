"""Memory you can plan: the estimate follows the settings, and a run that cannot fit is refused before Start."""

from __future__ import annotations

import pytest

from symptomgen.config import DataConfig, TrainConfig
from symptomgen.errors import InvalidInput
from symptomgen.memory import MB, check_fits, estimate_for, process_rss
from symptomgen.preflight import preflight
from symptomgen.store import RunStore


def test_the_estimate_grows_with_the_model_the_batch_and_the_length_and_lora_shrinks_it():
    small, big = estimate_for(TrainConfig(model="scratch"), 25), estimate_for(TrainConfig(model="distilgpt2"), 25)
    assert small.total < big.total
    assert estimate_for(TrainConfig(model="distilgpt2", batch_size=32), 25).activations > big.activations
    assert estimate_for(TrainConfig(model="distilgpt2", max_length=128), 100).activations > big.activations
    assert estimate_for(TrainConfig(model="distilgpt2", lora_rank=8), 25).optimizer < big.optimizer / 10
    medium = estimate_for(TrainConfig(model="gpt2-medium"), 25)
    assert 4 * 1024 * MB < medium.total < 12 * 1024 * MB  # 355 M parameters, AdamW in fp32: several GB


def test_a_run_that_cannot_fit_is_refused_with_both_numbers(tmp_path):
    need = estimate_for(TrainConfig(model="distilgpt2"), 25)
    with pytest.raises(InvalidInput, match=r"This run needs about 2\.\d GB of memory .* this machine has 512 MB free"):
        check_fits(need, available=512 * MB)
    check_fits(need, available=64 * 1024 * MB)  # plenty: no complaint


def test_start_is_refused_before_any_run_folder_exists_when_memory_is_short(tmp_path, monkeypatch):
    import symptomgen.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 100 * MB)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(InvalidInput, match="this machine has 100 MB free"):
        preflight(DataConfig(source="sample"), TrainConfig(model="scratch"), store)
    assert not store.list()
    preflight(DataConfig(source="sample"), TrainConfig(model="scratch"), store, check_quota=False)  # the estimate


def test_a_process_memory_is_read_and_a_gone_one_is_none():
    import os

    assert process_rss(os.getpid()) > 50 * MB
    assert process_rss(None) is None and process_rss(2**22 + 12345) is None


def test_progress_carries_live_memory_and_tokens_seen(tiny_cfg, sample_data, tmp_path):
    from symptomgen.events import Progress
    from symptomgen.trainer import run_training

    seen = []
    run_training(sample_data, tiny_cfg.with_(epochs=1), RunStore(tmp_path),
                 on_event=lambda e: seen.append(e) if isinstance(e, Progress) else None)
    assert len(seen) >= 2 and all(p.memory_bytes and p.memory_bytes > 50 * MB for p in seen)
    tokens = [p.tokens_seen for p in seen]
    assert tokens == sorted(tokens) and tokens[0] > 0 and tokens[-1] > tokens[0]
