"""'Explain this generation' on the Generate tab: a per-token heat map and table, on request.

Computed only when asked (a button), so plain generation stays as fast as before.  When
the shown output can be reproduced exactly (greedy, or a fixed seed and one sequence),
``explain.explain_generation`` re-generates it and reads generation's own scores, including
the probability under the sampling settings; otherwise ``explain.explain_text`` scores the
first shown sample as it is.  Either way the probabilities are the model's own (temperature 1).
"""

from __future__ import annotations

import html
import re

import gradio as gr

from .. import config as C
from ..catalog import generation_target
from ..errors import InvalidInput
from ..gpu import generation_seconds, gpu
from .context import PageContext
from .widgets import checked_types, user_errors

SCORE_CHOICES = [("Surprise (1 − p): unlikely tokens glow", "surprise"), ("Probability p", "probability")]
HEAT_LABELS = {"surprise": "Heat map: the redder a token, the more it surprised the model (clear: probability "
                           "near 1, full red: near 0)",
               "probability": "Heat map: the redder a token, the likelier it was (clear: probability near 0, "
                              "full red: 1)"}
_NUMBERED = re.compile(r"\n\n2\. ")


MAX_SHOWN_CHARS = 20_000


def first_sample(shown: str | None, num_sequences) -> str:
    """The first sample of the output box ("" for a placeholder or nothing shown yet)."""
    text = (shown or "")[:MAX_SHOWN_CHARS].strip()  # the box holds ≤ 5 × 256 tokens; more is not ours
    if not text or text.startswith("("):  # "(no text: …)" and other notes are not model output
        return ""
    if int(num_sequences or 1) > 1:
        text = _NUMBERED.split(text, maxsplit=1)[0]
        text = text[3:] if text.startswith("1. ") else text
    return text.strip()


def _summary_md(ex, how: str) -> str:
    if not ex.tokens:
        return "*The model produced no tokens to explain.*"
    worst = sorted(ex.tokens, key=lambda t: t.probability)[:3]
    shown = ", ".join(f"<code>{html.escape('[end]' if t.is_end else t.text.strip() or repr(t.text))}</code> "
                      f"(p = {t.probability:.3f})" for t in worst)
    return (f"{how} {len(ex.tokens)} tokens, perplexity {ex.perplexity:.2f} (lower = the model was surer). "
            f"Least likely: {shown}. Probabilities are the model's own, before temperature/top-k/top-p.")


def _seconds(model, name, top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences, seed,
             shown, score, no_repeat_ngram_size=0) -> float:
    try:
        return generation_seconds(int(max_new_tokens))
    except (TypeError, ValueError):
        return 60


class ExplainActions:
    """The explain button's handler over one page's runs and model cache."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx
        # Decorated per instance (this attribute hides the method below): ZeroGPU is handed the bound method, so
        # its arguments are the widgets' values only; checked_types runs before asking it for a GPU, and on a
        # ZeroGPU Space the forward passes get a GPU (a no-op elsewhere).
        self.explain = user_errors(checked_types(gpu(_seconds)(self.explain)))

    def explain(self, model: str, name: str, top_k: int, top_p: float, temperature: float, repetition_penalty: float,
                max_new_tokens: int, num_sequences: int, seed: int | None, shown: str | None, score: str,
                no_repeat_ngram_size: int = 0):
        """Per-token probabilities of the selected model's output, as a heat map and a table."""
        from ..explain import explain_generation, explain_text
        from ..generation import clean_name

        if score not in {v for _, v in SCORE_CHOICES}:
            raise InvalidInput("Colour tokens by must be 'surprise' or 'probability'.")
        settings = C.GenerationSettings(top_k=top_k, top_p=top_p, temperature=temperature,
                                        repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens,
                                        num_return_sequences=1, seed=seed,
                                        no_repeat_ngram_size=no_repeat_ngram_size)
        name = clean_name(name)
        m, tok = self.ctx.models.get(generation_target(model, self.ctx.store).model)
        first = first_sample(shown, num_sequences)
        reproducible = settings.greedy or (settings.seed is not None and int(num_sequences) == 1)
        if reproducible or not first:
            ex = explain_generation(m, tok, name, settings)
            how = "Re-generated with these settings and explained:" if not first else "Explained the output:"
            if first and ex.text != first:  # e.g. the model or settings changed since the output was made
                ex, how = explain_text(m, tok, name, first), "Scored the shown output:"
        else:
            ex, how = explain_text(m, tok, name, first), "Scored the first shown sample:"
        frame = ex.to_frame().round(4).dropna(axis=1, how="all")  # e.g. no sampling probability when greedy
        return ex.highlighted(score), _summary_md(ex, how), frame


def build_explain_section(ctx: PageContext, model: gr.Dropdown, name: gr.Textbox, sliders: list,
                          output: gr.Textbox, no_repeat) -> None:
    """The explain button, heat map and token table under the Generate tab's output.

    ``sliders`` are the tab's sampling widgets in ``GenerationSettings`` order (top_k … seed); ``no_repeat`` its
    no_repeat_ngram_size widget (the last /explain parameter: older clients that omit it still work).
    """
    with gr.Accordion("Explain this generation (per-token probabilities)", open=False, elem_id="explain-section"):
        with gr.Row():
            score = gr.Radio(SCORE_CHOICES, value="surprise", label="Colour tokens by", scale=3)
            go = gr.Button("Explain this generation", elem_id="explain-button", scale=1)
        # Scores are 0..1, drawn from clear to full red; Gradio's own legend runs -1..+1 (purple for the negative
        # half we never use), so the label says what the colour means instead.
        heat = gr.HighlightedText(label=HEAT_LABELS["surprise"], show_legend=False, elem_id="explain-heatmap")
        note = gr.Markdown(elem_id="explain-summary")
        table = gr.Dataframe(label="Per token: probability, rank and the model's top alternatives",
                             interactive=False, wrap=True, elem_id="explain-table")
    explain = ExplainActions(ctx).explain

    score.change(lambda s: gr.update(label=HEAT_LABELS.get(s, HEAT_LABELS["surprise"])), inputs=score,
                 outputs=heat, api_visibility="private", show_progress="hidden")
    go.click(explain, inputs=[model, name, *sliders, output, score, no_repeat], outputs=[heat, note, table],
             api_name="explain", concurrency_limit=2, concurrency_id="generate", show_progress="minimal",
             show_progress_on=note)  # a refusal marks the summary line, not the last heat map
