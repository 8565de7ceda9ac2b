"""Generate tab: pick a finished run (or the base model), a disease name and sampling settings.

Output streams token by token, the selected run side by side with its base
model, and when the name is in the run's data the reference symptoms are shown
with the generated phrases that match them.  Generation reads finished runs
only, so it works while a training job runs.  "Explain this generation" (a
per-token heat map, computed on request) comes from ``explain_panel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import NOT_MEDICAL_ADVICE
from .. import config as C
from ..catalog import BASE_LABEL, RUNS_COLUMNS, generation_target, model_choices, reference_for, runs_frame
from ..errors import first_line
from ..gpu import generation_seconds, gpu
from .widgets import setting_widget, user_errors
from .explain_panel import build_explain_section

EXAMPLES = ["Kidney Failure", "Asthma", "Influenza", "Migraine", "Common Cold", "Pneumonia"]
GEN_PRESET_CHOICES = [("Seed notebook", "seed-notebook"), ("Greedy (deterministic)", "greedy"),
                      ("Creative", "creative")]
GEN_FIELDS = C.ui_fields(C.GenerationSettings)  # the sampling widgets' order (and the presets' values)
# The page words two labels for people; the API and error messages use the transformers names.
GEN_OVERRIDES = {"num_return_sequences": {"label": "number of sequences"}, "seed": {"label": "seed (blank = random)"}}


EMPTY = "(no text: the model ended at once; try another seed or train longer)"


def _as_text(texts: list[str], final: bool = False) -> str:
    texts = [t or EMPTY for t in texts] if final else texts
    return texts[0] if len(texts) == 1 else "\n\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))


def _reference_md(name: str, ref, outputs: dict[str, list[str]], extra_column: str | None = None) -> str:
    from ..phrases import overlap

    if ref is None:
        return f"*{name} is not in this model's data, so there is no reference to compare with.*"
    text, where = ref
    lines = [f"**Reference symptoms for {name}** (from {where}): {text}"]
    total = len(overlap(text, text, extra_column).matched)
    for side, texts in outputs.items():
        for i, t in enumerate(texts, 1):
            m = overlap(t, text, extra_column).matched
            lines.append(f"- {side}, sample {i}: {len(m)} of {total} reference phrases matched"
                         + (f": {', '.join(m)}" if m else ""))
    return "\n".join(lines)


def _generate_seconds(model, name, top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences,
                      seed, compare) -> float:
    """GPU seconds to ask ZeroGPU for one Generate click (twice the work when the base model runs too)."""
    try:
        return generation_seconds(int(max_new_tokens), int(num_sequences)) * (2 if compare else 1)
    except (TypeError, ValueError):
        return 60


@dataclass
class GenerateTab:
    model: gr.Dropdown
    runs: gr.Dataframe


class LazyModelCache:
    """A ``generation.ModelCache`` made on first use, so building the page does not import torch."""

    def __init__(self, capacity: int = 4):
        self.capacity, self._cache = capacity, None

    def get(self, spec):
        if self._cache is None:
            from ..generation import ModelCache

            self._cache = ModelCache(self.capacity)
        return self._cache.get(spec)


def build_generate_tab(demo: gr.Blocks, runs_dir: Path, cache: LazyModelCache, tab: gr.Tab) -> GenerateTab:
    gr.Markdown(f"⚠️ **{NOT_MEDICAL_ADVICE}**", elem_id="not-medical-advice")
    with gr.Row():
        model = gr.Dropdown([(BASE_LABEL, C.DEFAULT_MODEL)], value=C.DEFAULT_MODEL, label="Model",
                            allow_custom_value=True, elem_id="gen-model", scale=3)
        refresh = gr.Button("Refresh runs", scale=1)
        compare = gr.Checkbox(True, label="Side by side with the run's base model", scale=1)
    name = gr.Textbox("Kidney Failure", label="Disease name", max_length=C.MAX_PROMPT_CHARS, elem_id="gen-name")
    gr.Examples([[e] for e in EXAMPLES], inputs=[name], label="Examples")
    preset = gr.Dropdown(GEN_PRESET_CHOICES, value="seed-notebook", label="Sampling preset")
    sampling = {}
    for row in (GEN_FIELDS[:4], GEN_FIELDS[4:]):  # knobs of the distribution, then of the output
        with gr.Row():
            for n in row:
                sampling[n] = setting_widget(C.GenerationSettings, n, **GEN_OVERRIDES.get(n, {}))
    top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences, seed = sampling.values()
    go = gr.Button("Generate", variant="primary", elem_id="generate-button")
    with gr.Row():
        output = gr.Textbox("", label="Selected model", lines=6, interactive=False, elem_id="gen-output")
        base_output = gr.Textbox(label="Base model (same prompt and settings)", lines=6, interactive=False,
                                 elem_id="gen-base-output")
    reference = gr.Markdown(elem_id="gen-reference")
    sliders = [top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences, seed]
    build_explain_section(runs_dir, cache, model, name, sliders, output)
    with gr.Accordion("Runs", open=False):
        runs = gr.Dataframe(pd.DataFrame(columns=RUNS_COLUMNS), interactive=False, label="Runs on this server")

    preset.change(lambda p: [getattr(C.GENERATION_PRESETS[p], f) for f in GEN_FIELDS], inputs=preset,
                  outputs=sliders, api_visibility="private")

    def list_runs_(current: str | None = None):
        """The runs table, and the model choices (finished runs first, then the base model)."""
        choices = model_choices(runs_dir)
        values = [v for _, v in choices]
        return runs_frame(runs_dir), gr.update(choices=choices, value=current if current in values else values[0])

    @user_errors
    @gpu(_generate_seconds)  # ZeroGPU: a GPU for this call only, sized to the tokens asked for; no-op elsewhere
    def generate(model, name, top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences, seed,
                 compare):
        """Stream generated symptoms for a disease name: selected model, its base, reference matches."""
        from ..generation import clean_name, stream

        settings = C.GenerationSettings(top_k=top_k, top_p=top_p, temperature=temperature,
                                        repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens,
                                        num_return_sequences=num_sequences, seed=seed)
        name = clean_name(name)
        target = generation_target(model, runs_dir)  # run names and Hub ids only: never a server path
        base_spec, run = target.base, target.run
        m, tok = cache.get(target.model)
        texts: list[str] = []
        for texts in stream(m, tok, name, settings):
            yield _as_text(texts), "", "Generating…"
        outputs = {"Selected model": texts}
        base_text = "" if base_spec else ("(No base model is recorded for this run.)" if run is not None
                                          else "(The selected model is a base model.)")
        if compare and base_spec:
            try:
                bm, btok = cache.get(base_spec)
            except Exception as exc:  # e.g. distilgpt2 offline: say so, keep the fine-tuned output
                base_text = f"(Base model unavailable: {first_line(exc)})"
            else:
                for btexts in stream(bm, btok, name, settings):
                    yield _as_text(texts), _as_text(btexts), "Generating the base model's text…"
                outputs["Base model"] = btexts
                base_text = _as_text(btexts, final=True)
        extra = run.record().extra_target_column if run is not None else None
        yield _as_text(texts, final=True), base_text, _reference_md(name, reference_for(run, name), outputs, extra)

    refresh.click(list_runs_, inputs=model, outputs=[runs, model], api_name="list_runs")
    # Opening the tab shows runs finished, imported or deleted since the page loaded.
    tab.select(list_runs_, inputs=model, outputs=[runs, model], api_visibility="private", show_progress="hidden")
    # A fresh page selects the newest finished run (the base model when there is none): after training, that is
    # what people come to try, and offline the base model (distilgpt2) cannot be loaded at all.
    demo.load(lambda: list_runs_(None), outputs=[runs, model], api_visibility="private")
    # Generation is CPU-bound: two at a time (2 cores); the queue holds the rest, so every client is answered.
    inputs = [model, name, *sliders, compare]
    go.click(generate, inputs=inputs, outputs=[output, base_output, reference], api_name="generate",
             concurrency_limit=2, concurrency_id="generate", show_progress="minimal")
    name.submit(generate, inputs=inputs, outputs=[output, base_output, reference], api_visibility="private",
                concurrency_limit=2, concurrency_id="generate", show_progress="minimal")
    return GenerateTab(model, runs)
