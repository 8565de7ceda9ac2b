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

from ..errors import first_line, InvalidInput
from .. import NOT_MEDICAL_ADVICE
from .. import config as C
from ..data import load_records, squash_spaces
from ..gpu import generation_seconds, gpu
from ..hub import check_model_allowed, looks_like_hub_id
from ..runs import Run, RunNotFoundError, list_runs, looks_like_run_id, resolve_run
from .widgets import NamedNumber, slider, user_errors
from .explain_panel import build_explain_section

EXAMPLES = ["Kidney Failure", "Asthma", "Influenza", "Migraine", "Common Cold", "Pneumonia"]
GEN_PRESET_CHOICES = [("Seed notebook", "seed-notebook"), ("Greedy (deterministic)", "greedy"),
                      ("Creative", "creative")]
GEN_FIELDS = ("top_k", "top_p", "temperature", "repetition_penalty", "max_new_tokens", "num_return_sequences", "seed")
RUNS_COLUMNS = ["run", "status", "model", "epochs", "best epoch", "best val loss", "model saved"]
BASE_LABEL = f"Base model: {C.DEFAULT_MODEL} (not fine-tuned)"


def usable_runs(runs_dir: Path) -> list[Run]:
    """Runs that finished at least one epoch and are not training now."""
    return [r for r in list_runs(runs_dir) if r.has_best() and r.status() != "running"]


def run_choices(runs_dir: Path) -> list[tuple[str, str]]:
    """(label, run id) for every finished run, newest first."""
    out = []
    for r in usable_runs(runs_dir):
        cfg = r.read_config()
        best = cfg.get("best_val_loss")
        loss = f", val loss {best:.3f}" if isinstance(best, (int, float)) else ""
        out.append((f"{r.run_id} ({r.status()}, {cfg.get('train', {}).get('model', '?')}{loss})", r.run_id))
    return out


def runs_choices(runs_dir: Path) -> list[tuple[str, str]]:
    """Finished runs, then the base model: the Generate tab's model choices."""
    return run_choices(runs_dir) + [(BASE_LABEL, C.DEFAULT_MODEL)]


def runs_table(runs_dir: Path) -> pd.DataFrame:
    rows = []
    for r in list_runs(runs_dir):
        cfg = r.read_config()
        best = cfg.get("best_val_loss")
        rows.append([r.run_id, r.status(), cfg.get("train", {}).get("model", ""), cfg.get("epochs_done", 0),
                     cfg.get("best_epoch"), round(best, 4) if isinstance(best, (int, float)) else None,
                     "yes" if r.has_best() else "no"])
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def resolve_model(choice: str, runs_dir: Path) -> tuple[str, str | None, Run | None]:
    """(model to load, its base model or None, the run or None) for a dropdown value."""
    choice = choice.strip() if isinstance(choice, str) else ""
    if not choice:
        raise InvalidInput("Pick a finished run or the base model first.")
    try:
        run = resolve_run(runs_dir, choice)
    except RunNotFoundError:
        if looks_like_run_id(choice):  # a run listed when the page loaded, deleted since
            raise
        run = None
    if run is not None:
        if run.status() == "running":
            raise InvalidInput(f"Run {run.run_id} is still training; pick a finished run.")
        if not run.has_best():
            raise InvalidInput(f"Run {run.run_id} has no saved model (no epoch finished).")
        return str(run.best_dir), run.base_model(), run
    # Hub ids only: a path typed into the box must not load folders from the server's disk.
    if looks_like_hub_id(choice) and not Path(choice).exists():
        check_model_allowed(choice)
        return choice, None, None
    raise InvalidInput(f"'{choice[:80]}' is neither a finished run nor a Hugging Face model id.")


def reference_for(run: Run | None, name: str) -> tuple[str, str] | None:
    """(reference text, where it comes from) for the name, from the run's data or the bundled sample."""
    key = squash_spaces(name).lower()  # spacing as format_prompt normalises it
    if run is not None:
        train, val = run.split_frames()
        for frame, where in ((train, "the run's training split"), (val, "the run's validation split (unseen)")):
            hit = frame[frame["prompt"].map(lambda p: squash_spaces(p).lower()) == key]
            if len(hit):
                return str(hit["target"].iloc[0]), where
        return None
    sample = load_records(C.SAMPLE_SOURCE)
    hit = sample[sample["Name"].str.strip().str.lower() == key]
    return (str(hit["Symptoms"].iloc[0]), "the bundled sample") if len(hit) else None


EMPTY = "(no text: the model ended at once; try another seed or train longer)"


def _as_text(texts: list[str], final: bool = False) -> str:
    texts = [t or EMPTY for t in texts] if final else texts
    return texts[0] if len(texts) == 1 else "\n\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))


def _reference_md(name: str, ref, outputs: dict[str, list[str]], extra_column: str | None = None) -> str:
    from ..evaluation import overlap

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
    g = C.GenerationSettings()
    preset = gr.Dropdown(GEN_PRESET_CHOICES, value="seed-notebook", label="Sampling preset")
    with gr.Row():
        top_k = slider(C.TOP_K_RANGE, "top_k", step=1, info="0 = no limit")
        top_p = slider(C.TOP_P_RANGE, "top_p", step=0.01)
        temperature = slider(C.TEMPERATURE_RANGE, "temperature", step=0.05, info="0 = greedy")
        repetition_penalty = slider(C.REPETITION_PENALTY_RANGE, "repetition_penalty", step=0.05)
    with gr.Row():
        max_new_tokens = slider(C.MAX_NEW_TOKENS_RANGE, "max_new_tokens", step=1)
        num_sequences = slider(C.NUM_SEQUENCES_RANGE, "number of sequences", step=1)
        seed = NamedNumber(g.seed, label="seed (blank = random)", precision=0, minimum=0, maximum=2**32 - 1)
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
        choices = runs_choices(runs_dir)
        values = [v for _, v in choices]
        return runs_table(runs_dir), gr.update(choices=choices, value=current if current in values else values[0])

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
        spec, base_spec, run = resolve_model(model, runs_dir)
        m, tok = cache.get(spec)
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
        extra = (run.read_config().get("data") or {}).get("extra_target_column") if run is not None else None
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
