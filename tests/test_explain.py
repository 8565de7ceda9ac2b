"""Explain this generation: per-token probabilities that agree with the model and with generation."""

from __future__ import annotations

import math

import pytest
import torch

from symptomgen.batching import encode_example, mean_token_loss
from symptomgen.config import GenerationSettings
from symptomgen.data import format_prompt
from symptomgen.explain import END, explain_generation, explain_text
from symptomgen.generation import generate
from symptomgen.modeling import load_pretrained

GREEDY_PLAIN = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=24)


@pytest.fixture(scope="module")
def model_and_tok(trained_run):
    model, tok = load_pretrained(trained_run.run_dir / "best")
    return model.eval(), tok


def _check_token_invariants(exp, top_n=3):
    for i, t in enumerate(exp.tokens):
        assert t.position == i and 0.0 < t.probability <= 1.0
        alts = [a.probability for a in t.alternatives]
        assert len(alts) == top_n and alts == sorted(alts, reverse=True)
        assert t.token_id not in [a.token_id for a in t.alternatives]
        assert t.probability + sum(alts) <= 1.0 + 1e-5  # the alternatives are *other* tokens
        assert (t.rank == 1) == (t.probability >= alts[0])


def _forward_probs(model, tok, name, exp) -> list[float]:
    """The model's probability of each explained token, from one plain forward pass."""
    prompt = tok(format_prompt(name), add_special_tokens=False)["input_ids"]
    ids = [t.token_id for t in exp.tokens]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + ids])).logits[0]
    probs = torch.softmax(logits[len(prompt) - 1: len(prompt) - 1 + len(ids)], dim=-1)
    return [float(probs[i, tid]) for i, tid in enumerate(ids)]


def test_explain_text_matches_the_validation_loss_of_that_row(model_and_tok):
    model, tok = model_and_tok
    name, text = "Kidney Failure", "Decreased urine output, fluid retention, fatigue"
    exp = explain_text(model, tok, name, text)
    row = encode_example(tok, name, text, max_length=512, loss_on="target")
    assert len(exp.tokens) == len(row["input_ids"]) - len(tok(format_prompt(name))["input_ids"])
    assert exp.tokens[-1].is_end and not any(t.is_end for t in exp.tokens[:-1])
    # Independent path: mean -log p over the explained tokens == per-token loss used for validation.
    assert -exp.mean_logprob == pytest.approx(mean_token_loss(model, [row], tok.pad_token_id), abs=1e-4)
    assert exp.perplexity == pytest.approx(math.exp(-exp.mean_logprob))
    assert "".join(t.text for t in exp.tokens) == " " + text
    assert exp.text == text
    _check_token_invariants(exp)


def test_greedy_explanation_is_the_generated_text_with_top_ranked_tokens(model_and_tok):
    model, tok = model_and_tok
    exp = explain_generation(model, tok, "Asthma", GREEDY_PLAIN)
    assert exp.text == generate(model, tok, "Asthma", GREEDY_PLAIN)[0]
    assert exp.tokens and all(t.rank == 1 for t in exp.tokens)
    for t in exp.tokens:  # greedy without a penalty: the sampling distribution is the model's own
        assert t.sampling_probability == pytest.approx(t.probability, abs=1e-5)
    _check_token_invariants(exp)
    # The probabilities read from generate() agree with a fresh forward pass over the same ids.
    assert [t.probability for t in exp.tokens] == pytest.approx(_forward_probs(model, tok, "Asthma", exp), abs=1e-4)


def test_seeded_sampling_explains_the_same_text_the_user_saw(model_and_tok):
    model, tok = model_and_tok
    settings = GenerationSettings(top_k=5, top_p=1.0, temperature=1.0, repetition_penalty=1.0, max_new_tokens=24,
                                  seed=7)
    exp = explain_generation(model, tok, "Migraine", settings)
    assert exp.text == generate(model, tok, "Migraine", settings)[0]
    assert exp.tokens
    for t in exp.tokens:
        assert t.rank <= 5  # top-k sampling can only pick among the 5 most likely tokens
        assert t.sampling_probability > 0 and t.sampling_probability >= t.probability - 1e-6
    _check_token_invariants(exp)
    # ``probability`` is the model's own (temperature 1, no top-k), not the truncated sampling distribution.
    assert [t.probability for t in exp.tokens] == pytest.approx(_forward_probs(model, tok, "Migraine", exp), abs=1e-4)
    assert any(t.sampling_probability > t.probability + 1e-3 for t in exp.tokens)


def test_heat_map_pairs_and_table(model_and_tok):
    model, tok = model_and_tok
    exp = explain_text(model, tok, "Asthma", "Wheezing, cough")
    pairs = exp.highlighted()
    assert len(pairs) == len(exp.tokens) and pairs[-1][0] == END
    assert not pairs[0][0].startswith(" ") and all(0.0 <= v <= 1.0 for _, v in pairs)
    surprise = exp.highlighted("surprise", include_end=False)
    assert len(surprise) == len(exp.tokens) - 1
    assert [v for _, v in surprise] == pytest.approx([1 - v for _, v in pairs[:-1]], abs=1e-3)
    with pytest.raises(ValueError, match="probability' or 'surprise"):
        exp.highlighted("colour")
    frame = exp.to_frame()
    assert list(frame.columns[:5]) == ["position", "token", "probability", "rank", "sampling_probability"]
    assert {"alt_1", "alt_1_probability", "alt_3_probability"} <= set(frame.columns) and len(frame) == len(exp.tokens)


def test_edge_cases(model_and_tok):
    model, tok = model_and_tok
    only_end = explain_text(model, tok, "Asthma", "")
    assert [t.is_end for t in only_end.tokens] == [True] and only_end.text == ""
    assert explain_text(model, tok, "Asthma", "", include_end=False).tokens == ()
    with pytest.raises(ValueError, match="disease name"):
        explain_text(model, tok, "   ", "cough")
