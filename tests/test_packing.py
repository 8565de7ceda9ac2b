"""Padding-free (packed) training batches: rows stay apart, losses match the padded path, the trainer uses them."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer

from symptomgen.batching import IGNORE, PackCollator, PadCollator, encode_example, mean_token_loss, packing_is_exact
from symptomgen.config import DataConfig, TrainConfig
from symptomgen.data import prepare
from symptomgen.modeling import build_scratch_model, build_scratch_tokenizer
from symptomgen.trainer import TrainingHooks, run_training


@pytest.fixture(scope="module")
def tok_model_data():
    data = prepare(DataConfig())
    texts = [f"{p} | {t}" for p, t in zip(data.train["prompt"], data.train["target"])]
    tok = build_scratch_tokenizer(texts, 800)
    model = build_scratch_model(tok, TrainConfig(model="scratch", scratch_layers=2, scratch_width=64,
                                                 scratch_vocab=800)).eval()
    return tok, model, data


def _rows(tok, data, n: int, loss_on: str = "target") -> list[dict]:
    return [encode_example(tok, p, t, 64, loss_on) for p, t in zip(data.train["prompt"][:n], data.train["target"][:n])]


def test_pack_collator_concatenates_rows_without_padding(tok_model_data):
    tok, _, data = tok_model_data
    rows = _rows(tok, data, 4)
    batch = PackCollator(tok.pad_token_id)(rows)
    lengths = [len(r["input_ids"]) for r in rows]
    assert batch["input_ids"].shape == (1, sum(lengths)) and batch["use_cache"] is False
    assert "attention_mask" not in batch  # the mask comes from position_ids
    assert batch["input_ids"][0].tolist() == [t for r in rows for t in r["input_ids"]]
    starts = [sum(lengths[:i]) for i in range(len(rows))]
    positions = batch["position_ids"][0].tolist()
    assert [positions[s] for s in starts] == [0] * len(rows)
    assert positions == [i for n in lengths for i in range(n)]
    labels = batch["labels"][0].tolist()
    assert all(labels[s] == IGNORE for s in starts)  # a row's first token is never predicted from the previous row
    for r, s in zip(rows, starts):  # otherwise our own labels: prompt masked, EOS kept
        assert labels[s + 1:s + len(r["labels"])] == r["labels"][1:]
        assert labels[s + len(r["labels"]) - 1] == tok.eos_token_id


def test_packed_rows_do_not_attend_across_boundaries(tok_model_data):
    tok, model, data = tok_model_data
    rows = _rows(tok, data, 5)
    batch = PackCollator(tok.pad_token_id)(rows)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([r["input_ids"]])).logits[0] for r in rows])
        # The check can fail: with a KV cache GPT-2 ignores position_ids for its mask and rows see each other.
        leaky = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=True).logits[0]
    assert torch.allclose(packed, alone, atol=1e-4)
    assert not torch.allclose(leaky, alone, atol=1e-2)
    assert packing_is_exact(model)


@pytest.mark.parametrize("loss_on", ["target", "full"])
def test_packed_loss_equals_the_padded_mean_token_loss(tok_model_data, loss_on):
    tok, model, data = tok_model_data
    rows = _rows(tok, data, 8, loss_on)
    with torch.no_grad():
        packed = model(**PackCollator(tok.pad_token_id)(rows)).loss.item()
    padded = mean_token_loss(model, rows, tok.pad_token_id, batch_size=len(rows))
    assert packed == pytest.approx(padded, rel=1e-4)
    # Not the per-row mean (rows of different length weigh by their tokens), so the comparison can fail.
    with torch.no_grad():
        per_row = [model(**PadCollator(tok.pad_token_id)([r])).loss.item() for r in rows]
    assert abs(sum(per_row) / len(per_row) - padded) > 1e-4


def test_labelled_head_skips_prompt_and_padding_positions(tok_model_data):
    """With ``loss_on="target"`` the LM head runs on the labelled positions only (the head module itself never runs
    over the whole batch), and the summed loss still equals the model's own."""
    from symptomgen.batching import labelled_loss_sum

    tok, model, data = tok_model_data
    rows = _rows(tok, data, 6, "target")
    batch = PadCollator(tok.pad_token_id)(rows)
    full_head_calls = []
    hook = model.lm_head.register_forward_hook(lambda *a: full_head_calls.append(1))
    try:
        with torch.no_grad():
            total = labelled_loss_sum(model, batch)
    finally:
        hook.remove()
    labelled = int((batch["labels"][:, 1:] != IGNORE).sum())
    assert 0 < labelled < batch["input_ids"].numel() * 0.9 and not full_head_calls
    with torch.no_grad():
        own = model(**batch).loss.item()
    assert total.item() / labelled == pytest.approx(own, rel=1e-4)


def test_training_packs_batches_of_batch_size_rows_in_random_order(tmp_path, tiny_cfg, sample_data):
    seen: dict = {}

    class Recording(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            seen.setdefault("batches", []).append(inputs["input_ids"].shape)
            seen["collator"], seen["sampling"] = self.data_collator, self.args.train_sampling_strategy
            return super().training_step(model, inputs, num_items_in_batch)

    cfg = tiny_cfg.with_(epochs=1, batch_size=4)
    summary = run_training(sample_data, cfg, tmp_path, hooks=TrainingHooks(trainer_class=Recording))
    assert summary.status == "finished"
    assert isinstance(seen["collator"], PackCollator) and seen["sampling"] == "random"
    assert all(shape[0] == 1 for shape in seen["batches"])  # one packed row per step
    train_rows = len(prepare(sample_data).train)
    assert len(seen["batches"]) == -(-train_rows // cfg.batch_size)  # batch_size rows per optimizer step


# ---------------------------------------------------------------- serving in bf16 (same module: issue 13's measures)
def test_bf16_serving_keeps_greedy_text_and_explain_probabilities(trained_run):
    """On CPUs with native bf16 the app serves bf16 weights (``place(serving=True)``): the greedy text of the test
    model stays the same and explain's probabilities stay within 0.02 of fp32's."""
    from symptomgen import cputune
    from symptomgen.config import GenerationSettings
    from symptomgen.explain import explain_generation
    from symptomgen.generation import generate
    from symptomgen.modeling import load_pretrained, place
    from symptomgen.runs import Run

    if not cputune.native_bf16():
        pytest.skip("this CPU has no native bf16: serving stays fp32")
    best = Run(trained_run.run_dir).best_dir
    full, tok = load_pretrained(best)
    place(full)
    half, _ = load_pretrained(best)
    place(half, serving=True)
    assert next(full.parameters()).dtype == torch.float32 and next(half.parameters()).dtype == torch.bfloat16
    greedy = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=24)
    names = list(Run(trained_run.run_dir).split_frames()[1]["prompt"][:6])
    for name in names:
        assert generate(half, tok, name, greedy) == generate(full, tok, name, greedy)
        a, b = explain_generation(full, tok, name, greedy), explain_generation(half, tok, name, greedy)
        assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
        assert max(abs(x.probability - y.probability) for x, y in zip(a.tokens, b.tokens)) <= 0.02
