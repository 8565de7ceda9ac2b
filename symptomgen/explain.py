"""Explain a generation: how likely the model found each token, and what else it considered.

For every token of a continuation: its text, the model's probability for it (softmax of
the raw logits, i.e. before temperature/top-k/top-p), its rank among all tokens, and the
top alternatives the model preferred or nearly chose.  Low probability marks the places
where sampling took a gamble or the model was unsure — shown as a heat map under the output.

- ``explain_generation`` generates one sequence with the given settings (same seed, same
  text as ``generation.generate``) and reads the scores generation itself produced.
- ``explain_text`` scores any continuation (a shown output, a reference row) in one
  forward pass; its mean ``-log p`` equals the run's per-token validation loss on that row.

The final ``[end]`` token is the model's decision to stop, so it is scored too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch

from .config import GenerationSettings
from .data import format_prompt, format_target
from .errors import InvalidInput
from .events import perplexity
from .generation import (
    TopKSampler,
    clean_name,
    context_window,
    decode_continuation,
    encode_prompt,
    generation_kwargs,
    sampling_rng,
)

END = "[end]"
TOP_N = 3


@dataclass(frozen=True)
class Alternative:
    token_id: int
    text: str
    probability: float


@dataclass(frozen=True)
class TokenScore:
    """One token of a continuation and how the model saw it."""

    position: int
    token_id: int
    text: str
    """The token's text as it appears in the output (``""`` for the end token)."""
    probability: float
    """The model's probability of this token given everything before it (temperature 1)."""
    rank: int
    """1 when the model's own top choice, 2 when one token was more likely, ..."""
    alternatives: tuple[Alternative, ...]
    """The most likely *other* tokens, most likely first."""
    sampling_probability: float | None = None
    """Probability under the sampling settings used (temperature, top-k/p, penalty), if generated."""
    is_end: bool = False


@dataclass(frozen=True)
class Explanation:
    name: str
    text: str
    """The continuation, as ``generation.generate`` returns it."""
    tokens: tuple[TokenScore, ...]

    @property
    def mean_logprob(self) -> float:
        return sum(math.log(max(t.probability, 1e-45)) for t in self.tokens) / max(len(self.tokens), 1)

    @property
    def perplexity(self) -> float:
        return perplexity(-self.mean_logprob)

    def highlighted(self, score: str = "probability", include_end: bool = True) -> list[tuple[str, float]]:
        """``(text, value)`` pairs for ``gr.HighlightedText``: ``probability`` (0-1), or
        ``surprise`` (1 - probability, so unlikely tokens glow)."""
        if score not in ("probability", "surprise"):
            raise InvalidInput(f"score must be 'probability' or 'surprise', got {score!r}.")
        pairs = []
        for t in self.tokens:
            if t.is_end and not include_end:
                continue
            text = END if t.is_end else (t.text.lstrip() if not pairs else t.text)
            value = t.probability if score == "probability" else 1.0 - t.probability
            pairs.append((text, round(value, 4)))
        return pairs

    def to_frame(self, top_n: int = TOP_N) -> pd.DataFrame:
        """One row per token: position, token, probability, rank, alternatives (for a table/plot)."""
        rows = []
        for t in self.tokens:
            row = {"position": t.position, "token": END if t.is_end else t.text, "probability": t.probability,
                   "rank": t.rank, "sampling_probability": t.sampling_probability}
            for i in range(top_n):
                alt = t.alternatives[i] if i < len(t.alternatives) else None
                row[f"alt_{i + 1}"] = None if alt is None else alt.text
                row[f"alt_{i + 1}_probability"] = None if alt is None else alt.probability
            rows.append(row)
        return pd.DataFrame(rows)


def _piece(tokenizer, token_id: int) -> str:
    if token_id == tokenizer.eos_token_id:
        return END
    return tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _pieces(tokenizer, ids: list[int]) -> list[str]:
    """Text added by each token; a character split over several byte tokens shows on its last one."""
    out, prev = [], ""
    for i in range(len(ids)):
        cur = tokenizer.decode(ids[: i + 1], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if cur.endswith("\ufffd") and i + 1 < len(ids):
            out.append("")
            continue
        out.append(cur[len(prev):] if cur.startswith(prev) else cur)
        prev = cur
    return out


def _scores(tokenizer, ids: list[int], logits: torch.Tensor, processed: torch.Tensor | None,
            top_n: int) -> tuple[TokenScore, ...]:
    """TokenScores for ``ids`` given next-token logits aligned with them (row i predicts ids[i])."""
    probs = torch.softmax(logits.float(), dim=-1)
    sampled = torch.softmax(processed.float(), dim=-1) if processed is not None else None
    eos = tokenizer.eos_token_id
    texts = _pieces(tokenizer, [i for i in ids if i != eos])
    out = []
    for pos, tid in enumerate(ids):
        p = probs[pos]
        chosen = float(p[tid])
        top = torch.topk(p, min(top_n + 1, p.numel()))
        alts = tuple(Alternative(int(i), _piece(tokenizer, int(i)), float(v))
                     for v, i in zip(top.values, top.indices) if int(i) != tid)[:top_n]
        is_end = tid == eos
        out.append(TokenScore(position=pos, token_id=int(tid), text="" if is_end else texts[pos],
                              probability=chosen, rank=int((p > p[tid]).sum()) + 1, alternatives=alts,
                              sampling_probability=None if sampled is None else float(sampled[pos][tid]),
                              is_end=is_end))
    return tuple(out)


@torch.inference_mode()
def explain_text(model, tokenizer, name: str, text: str, top_n: int = TOP_N,
                 include_end: bool = True) -> Explanation:
    """Score ``text`` as the continuation of ``name`` (teacher forcing, one forward pass)."""
    name = clean_name(name)
    prompt = tokenizer(format_prompt(name), add_special_tokens=False)["input_ids"]
    target = tokenizer(format_target(str(text)), add_special_tokens=False)["input_ids"] if str(text).strip() else []
    target = target + ([tokenizer.eos_token_id] if include_end else [])
    target = target[: max(0, context_window(model) - len(prompt))]
    if not target:
        return Explanation(name=name, text="", tokens=())
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([prompt + target], device=device)
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
    aligned = logits[len(prompt) - 1: len(prompt) - 1 + len(target)]
    tokens = _scores(tokenizer, target, aligned, None, top_n)
    return Explanation(name=name, text=decode_continuation(tokenizer, target), tokens=tokens)


@torch.inference_mode()
def explain_generation(model, tokenizer, name: str, settings: GenerationSettings = GenerationSettings(),
                       top_n: int = TOP_N) -> Explanation:
    """Generate one continuation with ``settings`` and explain it with generation's own scores.

    With a fixed ``settings.seed`` the text equals ``generation.generate(...)[0]`` for the same settings.
    """
    settings = settings.with_(num_return_sequences=1)
    device = next(model.parameters()).device
    inputs = encode_prompt(tokenizer, name, device)
    kwargs = generation_kwargs(model, tokenizer, settings, inputs["input_ids"].shape[1])
    kwargs.update(output_logits=True, output_scores=True, return_dict_in_generate=True)
    # Top-k sampling draws inside TopKSampler; the scores generate() keeps are then its one-hot choice, so the
    # sampling distribution is what the sampler records.
    sampler = next((p for p in kwargs.get("logits_processor", ()) if isinstance(p, TopKSampler)), None)
    if sampler is not None:
        sampler.recorded = []
    model.eval()
    with sampling_rng(settings, device):
        out = model.generate(**inputs, **kwargs)
    ids = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    if tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
    logits = torch.stack([step[0] for step in out.logits[: len(ids)]]) if ids else torch.empty(0)
    steps = out.scores if sampler is None else sampler.recorded
    processed = torch.stack([step[0] for step in steps[: len(ids)]]) if ids else None
    tokens = _scores(tokenizer, ids, logits, processed, top_n) if ids else ()
    return Explanation(name=clean_name(name), text=decode_continuation(tokenizer, ids), tokens=tokens)
