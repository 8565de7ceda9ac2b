"""Training rows are encoded when a batch draws them (issue 25: the first step no longer waits for the table),
with the same ids and labels as ``encode_frame``; the token count and the validation rows come after the first
step, in threads, and the run's records stay what they were."""

from __future__ import annotations

import random
import threading

import pytest
from transformers import TrainerCallback

import symptomgen.trainer as T
from symptomgen.batching import (
    Deferred,
    EncodedDataset,
    ShuffledPhrases,
    encode_example,
    encode_frame,
    mean_token_loss,
    plain_backend,
    shuffle_phrases,
)
from symptomgen.config import DataConfig
from symptomgen.data import prepare
from symptomgen.events import EpochResult, Progress
from symptomgen.modeling import build_scratch_tokenizer
from symptomgen.store import RunStore


@pytest.fixture(scope="module")
def table():
    train = prepare(DataConfig(source="sample")).train
    return build_scratch_tokenizer(train["prompt"] + " | " + train["target"], 800), train


class CountingTokenizer:
    """A tokenizer that counts its calls (the rest is the real one's)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.tokenizer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


@pytest.mark.parametrize("loss_on", ["target", "full"])
@pytest.mark.parametrize("max_length", [64, 12])  # 12: prompts and targets are cut
def test_lazy_rows_are_the_encoded_frames(table, loss_on, max_length):
    tok, frame = table
    one_by_one = [encode_example(tok, p, t, max_length, loss_on) for p, t in zip(frame["prompt"], frame["target"])]
    assert encode_frame(tok, frame, max_length, loss_on) == one_by_one  # batched tokenizer calls, same rows
    tok("a b", padding="max_length", max_length=40, truncation=True)  # settings left on the shared backend
    assert encode_frame(tok, frame, max_length, loss_on, plain_backend(tok)) == one_by_one  # the threads' way
    counting = CountingTokenizer(tok)
    ds = EncodedDataset(counting, frame, max_length, loss_on)
    assert counting.calls == 0 and len(ds) == len(frame)  # nothing is tokenized up front
    order = random.Random(0).sample(range(len(ds)), len(ds))
    assert [ds[i] for i in order] == [one_by_one[i] for i in order]
    calls = counting.calls
    assert ds[order[0]] == one_by_one[order[0]] and counting.calls == calls  # a drawn row is kept
    assert ds.count_lengths(plain_backend(tok)) == ds.lengths == [len(r["input_ids"]) for r in one_by_one]
    assert ds.real_tokens == sum(len(r["input_ids"]) for r in one_by_one)


@pytest.mark.parametrize("loss_on", ["target", "full"])
def test_shuffled_phrases_draw_as_before(table, loss_on):
    tok, frame = table
    rows = encode_frame(tok, frame, 64, loss_on)
    first, again = (ShuffledPhrases(tok, frame, 64, loss_on, seed=7) for _ in range(2))
    pairs = list(zip(frame["prompt"], frame["target"]))
    for draw in (1, 2):
        for i in (0, 5, len(frame) - 1):
            name, target = pairs[i]
            expected = encode_example(tok, name, shuffle_phrases(target, random.Random(f"7:{i}:{draw}")), 64, loss_on)
            assert first[i] == again[i] == expected
    assert first.lengths == [len(r["input_ids"]) for r in rows]  # the rows as written
    assert first.real_tokens == sum(first.lengths)


def test_deferred_computes_once_in_a_thread_or_at_get():
    gate, calls = threading.Event(), []

    def compute():
        gate.wait(5)
        calls.append(1)
        return 42

    later = Deferred(compute)
    assert later.peek() is None
    later.start()
    later.start()  # once
    assert later.peek() is None
    gate.set()
    assert later.get() == 42 and later.peek() == 42 and calls == [1]
    assert Deferred(lambda: 3).get() == 3  # never started: computed by get()
    assert Deferred.now(lambda: 4).peek() == 4

    def fail():
        raise ValueError("no")

    broken = Deferred(fail)
    broken.start()
    with pytest.raises(ValueError, match="no"):
        broken.get()
    assert broken.peek() is None


class FirstStep(TrainerCallback):
    """Records how many rows had been drawn (encoded) when the first optimizer step ended."""

    def __init__(self):
        self.drawn = None

    def on_step_end(self, args, state, control, train_dataloader=None, **kw):
        if self.drawn is None:
            ds = train_dataloader.dataset
            self.drawn = sum(r is not None for r in ds._rows) if hasattr(ds, "_rows") else None


def test_a_run_counts_tokens_and_validates_after_its_first_step(tmp_path, sample_data, tiny_cfg, monkeypatch):
    """With the count and the validation rows deferred (as for a large table), a run reports the tokens seen and
    the validation loss that the rows encoded up front give."""
    from symptomgen.modeling import load_pretrained

    monkeypatch.setattr(T, "EAGER_ROWS", 0)
    first, events = FirstStep(), []
    T.run_training(sample_data, tiny_cfg, RunStore(tmp_path), on_event=events.append,
                   hooks=T.TrainingHooks(callbacks=(first,)))
    (run,) = RunStore(tmp_path).list()
    train, val = run.split_frames()
    progress = [e for e in events if isinstance(e, Progress)]
    epochs = [e for e in events if isinstance(e, EpochResult)]
    assert len(epochs) == 2 and all(e.tokens_per_sec > 0 for e in epochs)
    # Only the first batch was encoded before the first step ended (the loader may fetch one ahead).
    assert first.drawn is not None and 0 < first.drawn <= 2 * tiny_cfg.batch_size
    seen = [p.tokens_seen for p in progress if p.tokens_seen is not None]
    assert seen and seen == sorted(seen)
    model, tok = load_pretrained(run.best_dir)
    real = sum(len(r["input_ids"]) for r in encode_frame(tok, train, tiny_cfg.max_length, tiny_cfg.loss_on))
    last = progress[-1]  # epoch 2: the count came in at the end of epoch 1 at the latest
    assert last.tokens_seen == int(real * last.epoch)
    best = min(epochs, key=lambda e: e.val_loss)  # keep="best": best/ holds it
    rows = encode_frame(tok, val, tiny_cfg.max_length, tiny_cfg.loss_on)
    assert mean_token_loss(model, rows, tok.pad_token_id) == pytest.approx(best.val_loss, rel=1e-4)
