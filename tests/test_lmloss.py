"""The chunked LM-head loss equals the model's own loss and gradients, for both loss modes and packed batches."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from symptomgen.batching import PackCollator, PadCollator, encode_frame
from symptomgen.data import prepare
from symptomgen.lmloss import causal_lm_loss, split_head
from symptomgen.modeling import build_scratch_tokenizer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from symptomgen.config import DataConfig

    prepared = prepare(DataConfig(source="sample"))
    tokenizer = build_scratch_tokenizer(prepared.train["prompt"] + " | " + prepared.train["target"], 800)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=len(tokenizer), n_positions=128))
    return model.eval(), tokenizer, prepared.train.head(12)  # eval: no dropout, so two passes are comparable


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("loss_on", ["full", "target"])
@pytest.mark.parametrize("collator", [PackCollator, PadCollator])
@pytest.mark.parametrize("num_items", [False, True])
@pytest.mark.parametrize("chunk", [7, 10_000])
def test_chunked_loss_and_gradients_equal_the_models_own(setup, loss_on, collator, num_items, chunk):
    """Many chunks (the autograd Function that makes each chunk's gradient in forward) or one (autograd's own path
    over the labelled positions): the model's loss and every gradient."""
    model, tokenizer, frame = setup
    rows = encode_frame(tokenizer, frame, 64, loss_on)
    batch = collator(tokenizer.pad_token_id)(rows)
    labels = batch["labels"]
    items = int((labels[:, 1:] != -100).sum()) + 3 if num_items else None  # as under gradient accumulation
    features = {k: v for k, v in batch.items() if k != "labels"}
    features["use_cache"] = False  # packed rows must never share a KV cache (the collator may say so itself)

    model.zero_grad()
    own = model(**features, labels=labels,
                **({"num_items_in_batch": torch.tensor(items)} if items else {})).loss
    own.backward()
    want = _grads(model)

    model.zero_grad()
    body, weight = split_head(model)
    hidden = body(**features).last_hidden_state
    ours = causal_lm_loss(hidden, weight, labels, torch.tensor(items) if items else None, chunk=chunk)
    ours.backward()
    got = _grads(model)

    assert torch.isfinite(ours) and abs(ours.item() - own.item()) <= 1e-5 * abs(own.item())
    assert got.keys() == want.keys() and len(got) > 10  # every parameter, the tied embedding/head included
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_only_labelled_positions_get_logits(setup, monkeypatch):
    """With loss on the target only, the head multiplies fewer rows than the batch has positions."""
    model, tokenizer, frame = setup
    full = encode_frame(tokenizer, frame, 64, "full")
    target = encode_frame(tokenizer, frame, 64, "target")
    seen = []
    original = torch.Tensor.__matmul__

    def spy(a, b):
        if b.dim() == 2 and b.shape[1] == model.config.vocab_size:
            seen.append(a.shape[0])
        return original(a, b)

    for rows in (full, target):
        batch = PackCollator(tokenizer.pad_token_id)(rows)
        body, weight = split_head(model)
        hidden = body(**{**{k: v for k, v in batch.items() if k != "labels"}, "use_cache": False}).last_hidden_state
        monkeypatch.setattr(torch.Tensor, "__matmul__", spy)
        causal_lm_loss(hidden, weight, batch["labels"], chunk=10_000)
        monkeypatch.setattr(torch.Tensor, "__matmul__", original)
    assert len(seen) == 2 and seen[1] < seen[0] < sum(len(r["input_ids"]) for r in full)


def test_a_data_parallel_or_unknown_model_keeps_its_own_loss(setup):
    model = setup[0]
    assert split_head(model) is not None
    assert split_head(torch.nn.Linear(2, 2)) is None


def test_the_project_trainer_uses_this_loss_under_the_trainers_mixed_precision(tmp_path, tiny_cfg, sample_data):
    """``run_training`` trains with ``LabelledLossTrainer`` by default, and its body runs under the Trainer's autocast
    (the Trainer applies autocast only around ``model.forward``, which this loss bypasses): with bf16 asked for, the
    attention projections compute in bf16, and the model's own full-logits head never runs."""
    from symptomgen.lmloss import LabelledLossTrainer
    from symptomgen.trainer import TrainingHooks, run_training

    seen: dict = {"dtypes": set(), "head": 0}

    def prepare(model):
        block = model.transformer.h[0].attn.c_attn
        block.register_forward_hook(lambda m, i, out: seen["dtypes"].add(out.dtype) if m.training else None)
        model.lm_head.register_forward_hook(lambda m, i, out: seen.__setitem__("head", seen["head"] + 1)
                                            if m.training else None)

    class Recording(LabelledLossTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            seen["trainer"] = type(self)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    assert TrainingHooks().trainer_class is LabelledLossTrainer
    hooks = TrainingHooks(trainer_class=Recording, prepare_model=prepare,
                          args_overrides={"bf16": True, "use_cpu": True, "max_steps": 2})
    summary = run_training(sample_data, tiny_cfg.with_(epochs=1), tmp_path, hooks=hooks)
    assert summary.status == "finished"
    assert seen["trainer"] is Recording and seen["dtypes"] == {torch.bfloat16} and seen["head"] == 0
