"""Generate tab: pick a finished run (or the base model), a disease name and sampling settings.

Output streams token by token, the selected run side by side with its base
model, and when the name is in the run's data the reference symptoms are shown
with the generated phrases that match them.  Generation reads finished runs
only, so it works while a training job runs.  "Explain this generation" (a
per-token heat map, computed on request) comes from ``explain_panel``; "Arena" (several models side by side) from
``arena_panel``; "Generate for many names" (a CSV) from ``bulk_panel``.  The handlers are methods of
``GenerateActions`` (callable without a page).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import config as C
from ..catalog import (
    BASE_LABEL,
    RUNS_COLUMNS,
    UNTRAINED_LABEL,
    base_description,
    data_label,
    generation_target,
    model_choices,
    reference_for,
    runs_frame,
    target_kind,
)
from ..config import is_scratch
from ..errors import HubUnreachableError, first_line
from ..gpu import generation_seconds, gpu
from ..hub import unreachable_reason
from ..store import RunStore
from .arena_panel import build_arena_section
from .bulk_panel import build_bulk_section
from .context import PageContext
from .explain_panel import build_explain_section
from .widgets import CUSTOM, CUSTOM_LABEL, checked_types, link_preset, setting_widget, user_errors

EXAMPLES = ["Kidney Failure", "Asthma", "Influenza", "Migraine", "Common Cold", "Pneumonia"]
GEN_PRESET_CHOICES = [("Seed notebook", "seed-notebook"), ("Greedy (deterministic)", "greedy"),
                      ("Creative", "creative")]
GEN_FIELDS = C.ui_fields(C.GenerationSettings)  # the sampling widgets' order (and the presets' values)
# The page words two labels for people; the API and error messages use the transformers names.
GEN_OVERRIDES = {"num_return_sequences": {"label": "number of sequences"}, "seed": {"label": "seed (blank = random)"}}


def example_names(model: str | None, store: RunStore | None, count: int = len(EXAMPLES)) -> list[str]:
    """Disease names to try with this model: the first names of its run's own training rows (what it learned),
    else the bundled sample's (``EXAMPLES``)."""
    run = None
    if store is not None and model:
        try:
            run = store.open(model)
        except Exception:  # noqa: BLE001 - a Hub id or scratch: the sample's names
            run = None
    return (run.training_names(count) if run is not None else []) or list(EXAMPLES)


def output_labels(model: str | None, store: RunStore | None = None):
    """Labels of the two output boxes for the chosen model (``store``: where its run lives); the text they held
    belonged to the model before, so they are cleared."""
    if is_scratch(model):
        return gr.update(label=UNTRAINED_LABEL, value=""), gr.update(label="Base model", value="")
    run = None
    if store is not None:
        try:
            run = store.open(model)
        except Exception:  # noqa: BLE001 - a Hub id, or a typed name that is no run: plain labels
            run = None
    data = f" (trained on {data_label(run.record())})" if run is not None else ""
    return (gr.update(label=f"Fine-tuned: {run.run_id}{data}" if run is not None else "Selected model", value=""),
            gr.update(label=f"{base_description(run)} (same prompt and settings)" if run is not None
                      else "Base model (same prompt and settings)", value=""))


EMPTY = "(no text: the model ended at once; try another seed or train longer)"


def _as_text(texts: list[str], final: bool = False) -> str:
    texts = [t or EMPTY for t in texts] if final else texts
    return texts[0] if len(texts) == 1 else "\n\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))


def _reference_md(name: str, ref, outputs: dict[str, list[str]], extra_column: str | None = None,
                  kind: str = "list") -> str:
    """The reference text for ``name`` and how each output scores against it, by the run's target ``kind``:
    matched phrases for lists, ROUGE-L and ROUGE-1 for free text (``scoring``)."""
    from ..phrases import overlap
    from ..scoring import TEXT, score_text

    if ref is None:
        return f"*{name} is not in this model's data, so there is no reference to compare with.*"
    text, where = ref
    if kind == TEXT:
        lines = [f"**Reference text for {name}** (from {where}): {text}"]
        for side, texts in outputs.items():
            for i, t in enumerate(texts, 1):
                sc = score_text(t, text, TEXT, extra_column)
                lines.append(f"- {side}, sample {i}: ROUGE-L {sc['rougeL']:.2f}, ROUGE-1 {sc['rouge1']:.2f} "
                             "(words shared with the reference, in order / in any order)")
        return "\n".join(lines)
    lines = [f"**Reference symptoms for {name}** (from {where}): {text}"]
    total = len(overlap(text, text, extra_column).matched)
    for side, texts in outputs.items():
        for i, t in enumerate(texts, 1):
            m = overlap(t, text, extra_column).matched
            lines.append(f"- {side}, sample {i}: {len(m)} of {total} reference phrases matched"
                         + (f": {', '.join(m)}" if m else ""))
    return "\n".join(lines)


def _generate_seconds(model, name, top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences,
                      seed, compare, no_repeat_ngram_size=0) -> float:
    """GPU seconds to ask ZeroGPU for one Generate click (twice the work when the base model runs too)."""
    try:
        return generation_seconds(int(max_new_tokens), int(num_sequences)) * (2 if compare else 1)
    except (TypeError, ValueError):
        return 60


MAX_SPARKLINES = 50  # runs drawn in the runs list (newest first); each costs a metrics.csv read


def runs_history_html(store: RunStore, limit: int = MAX_SPARKLINES) -> str:
    """The runs list with a loss sparkline per run (``charts.sparkline``: validation and train loss per epoch,
    from its metrics.csv), newest first.  Everything from a run folder (its name, status, model, a damaged or
    hostile metrics file) is escaped or parsed as numbers: an imported run is a stranger's input."""
    import html

    from .charts import sparkline

    runs = store.list()
    if not runs:
        return "<p class='sg-runs-empty'>No runs yet: train one on the Train tab.</p>"
    rows = []
    for r in runs[:limit]:
        try:
            m = r.metrics()
            epochs = pd.to_numeric(m["epoch"], errors="coerce")
            curves = [list(zip(epochs, pd.to_numeric(m[c], errors="coerce")))
                      for c in ("training_loss", "validation_loss")]
        except (OSError, ValueError, KeyError):  # unreadable metrics: the row without a line
            curves = [[], []]
        rec = r.record()
        best = r.best_info().val_loss
        rows.append(f"<tr><td><code>{html.escape(r.run_id)}</code></td><td>{html.escape(str(r.status()))}</td>"
                    f"<td>{html.escape(str(rec.model or '?')[:80])}</td>"
                    f"<td>{'' if best is None else f'{best:.4f}'}</td>"
                    f"<td>{sparkline(*curves, label=r.run_id)}</td></tr>")
    more = (f"<p><small>The newest {limit} of {len(runs)} runs.</small></p>" if len(runs) > limit else "")
    return ("<table class='sg-runs'><thead><tr><th>run</th><th>status</th><th>model</th><th>best val loss</th>"
            "<th>loss per epoch (validation solid, train light)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{more}")


@dataclass
class GenerateTab:
    model: gr.Dropdown
    runs: gr.Dataframe


class GenerateActions:
    """The Generate tab's handlers over one page's runs and model cache."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx
        # Decorated per instance (this attribute hides the method below): ZeroGPU is handed the bound method, so
        # its arguments are the widgets' values only; checked_types runs before asking it for a GPU.
        self.generate = user_errors(checked_types(gpu(_generate_seconds)(self.generate)))

    def output_labels(self, model: str | None):
        """Labels of the two output boxes for the chosen model."""
        return output_labels(model, self.ctx.store)

    def model_chosen(self, model: str | None):
        """Another model: its labels, empty outputs and reference, and names from its own data to try."""
        return (*output_labels(model, self.ctx.store), "",
                gr.update(samples=[[n] for n in example_names(model, self.ctx.store)]))

    @user_errors
    @checked_types
    def list_runs(self, current: str | None = None, picked: bool = True):
        """The runs table, and the model choices (finished runs first, then the base model).  A model the visitor
        ``picked`` stays selected while listed; otherwise the newest run is (selection follows new runs)."""
        choices = model_choices(self.ctx.store)
        values = [v for _, v in choices]
        keep = picked and current in values
        return runs_frame(self.ctx.store), gr.update(choices=choices, value=current if keep else values[0])

    def generate(self, model: str, name: str, top_k: int, top_p: float, temperature: float, repetition_penalty: float,
                 max_new_tokens: int, num_sequences: int, seed: int | None, compare: bool,
                 no_repeat_ngram_size: int = 0):
        """Stream generated symptoms for a disease name: selected model, its base, reference matches."""
        from ..generation import clean_name

        settings = C.GenerationSettings(top_k=top_k, top_p=top_p, temperature=temperature,
                                        repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens,
                                        num_return_sequences=num_sequences, seed=seed,
                                        no_repeat_ngram_size=no_repeat_ngram_size)
        C.check_generation_work(settings, sides=2 if compare else 1)
        name = clean_name(name)
        target = generation_target(model, self.ctx.store)  # run names and Hub ids only: never a server path
        if target.run is not None:  # a delete waits for (is refused during) this generation
            with self.ctx.store.using(target.run.run_id, "generating"):
                yield from self._generate(target, name, settings, compare)
        else:
            yield from self._generate(target, name, settings, compare)

    def _generate(self, target, name: str, settings: C.GenerationSettings, compare: bool):
        from ..generation import stream

        base_spec, run = target.base, target.run
        m, tok = self.ctx.models.get(target.model)
        texts: list[str] = []
        for texts in stream(m, tok, name, settings):
            yield _as_text(texts), "", "Generating…"
        outputs = {"Selected model": texts}
        base_text = "" if base_spec else ("(No base model is recorded for this run.)" if run is not None
                                          else "(The selected model is a base model.)")
        if compare and base_spec:
            try:
                bm, btok = self.ctx.models.get(base_spec)
            except HubUnreachableError:  # e.g. distilgpt2 offline: say so, keep the fine-tuned output
                base_text = f"(Base model {base_spec} unavailable: not downloaded, and {unreachable_reason()}.)"
            except Exception as exc:  # noqa: BLE001 - any library error becomes one sentence
                base_text = f"(Base model unavailable: {first_line(exc)})"
            else:
                for btexts in stream(bm, btok, name, settings):
                    yield _as_text(texts), _as_text(btexts), "Generating the base model's text…"
                outputs["Base model"] = btexts
                base_text = _as_text(btexts, final=True)
        extra = run.record().extra_target_column if run is not None else None
        yield _as_text(texts, final=True), base_text, _reference_md(name, reference_for(run, name), outputs, extra,
                                                                    target_kind(run))


def build_generate_tab(demo: gr.Blocks, ctx: PageContext, tab: gr.Tab) -> GenerateTab:
    # The not-medical-advice line is the page's own, above the tabs (once, not twice here).
    with gr.Row():
        model = gr.Dropdown([(BASE_LABEL, C.DEFAULT_MODEL)], value=C.DEFAULT_MODEL, label="Model",
                            allow_custom_value=True, elem_id="gen-model", scale=3)
        refresh = gr.Button("Refresh runs", scale=1)
        compare = gr.Checkbox(True, label="Side by side with the run's base model", scale=1)
    name = gr.Textbox("Kidney Failure", label="Disease name", max_length=C.MAX_PROMPT_CHARS, elem_id="gen-name",
                      info=f"Up to {C.MAX_PROMPT_CHARS} characters (the box takes no more).")
    examples = gr.Examples([[e] for e in EXAMPLES], inputs=[name], label="Examples (names from the run's data)",
                           elem_id="gen-examples")
    preset = gr.Dropdown(GEN_PRESET_CHOICES + [(CUSTOM_LABEL, CUSTOM)], value="seed-notebook",
                         label="Sampling preset", elem_id="gen-preset")
    sampling = {}
    for row in (GEN_FIELDS[:4], GEN_FIELDS[4:]):  # knobs of the distribution, then of the output
        with gr.Row():
            for n in row:
                sampling[n] = setting_widget(C.GenerationSettings, n, **GEN_OVERRIDES.get(n, {}))
    top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences, seed, no_repeat = sampling.values()
    go = gr.Button("Generate", variant="primary", elem_id="generate-button")
    notice = gr.Markdown(elem_id="gen-notice")  # a refused Generate is marked here, not over the last output
    # min_width: on a phone the two outputs stack instead of sharing 390 px.
    with gr.Row(elem_classes="stack-on-phone"):
        output = gr.Textbox("", label="Selected model", lines=6, interactive=False, elem_id="gen-output",
                            min_width=320)
        base_output = gr.Textbox(label="Base model (same prompt and settings)", lines=6, interactive=False,
                                 elem_id="gen-base-output", min_width=320)
    reference = gr.Markdown(elem_id="gen-reference")
    # The /generate and /explain parameters, in their order (no_repeat_ngram_size, added later, goes last).
    sliders = [top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences, seed]
    build_explain_section(ctx, model, name, sliders, output, no_repeat)
    build_arena_section(ctx, name, sliders, no_repeat)
    build_bulk_section(ctx, model, sliders, no_repeat)
    with gr.Accordion("Runs", open=False):
        history = gr.HTML(elem_id="runs-history", padding=True)
        runs = gr.Dataframe(pd.DataFrame(columns=RUNS_COLUMNS), interactive=False, label="Runs on this server")

    knobs = list(sampling.values())
    link_preset(preset, knobs, C.GENERATION_PRESETS, GEN_FIELDS)
    # The output boxes say what they show: an untrained model's text is labelled as such.
    actions = GenerateActions(ctx)
    list_runs_, generate = actions.list_runs, actions.generate
    model.change(actions.model_chosen, inputs=model, outputs=[output, base_output, reference, examples.dataset],
                 api_visibility="private", show_progress="hidden")
    picked = gr.State(False)  # the visitor chose a model: keep it; until then the newest run is selected
    model.input(lambda: True, outputs=picked, api_visibility="private", show_progress="hidden")

    # The lists never wait in the queue behind generations (queue=False): they cost O(runs).
    refresh.click(list_runs_, inputs=model, outputs=[runs, model], api_name="list_runs", queue=False)
    # Opening the tab shows runs finished, imported or deleted since the page loaded.
    tab.select(list_runs_, inputs=[model, picked], outputs=[runs, model], api_visibility="private",
               show_progress="hidden", queue=False)
    # A fresh page selects the newest finished run (the base model when there is none): after training, that is
    # what people come to try, and offline the base model (distilgpt2) cannot be loaded at all.
    demo.load(lambda: list_runs_(None), outputs=[runs, model], api_visibility="private", queue=False)
    # The sparklines follow the table (the /list_runs API keeps its two outputs).
    runs.change(lambda: runs_history_html(ctx.store), outputs=history, api_visibility="private",
                show_progress="hidden", queue=False)
    # Generation is CPU-bound: two at a time (2 cores); the queue holds the rest, so every client is answered, and
    # each visitor may have only a few waiting or running (calls.VisitorLimit on the "generate" group, page.py).
    inputs = [model, name, *sliders, compare, no_repeat]  # new parameters go last, with defaults: old clients work
    go.click(generate, inputs=inputs, outputs=[output, base_output, reference], api_name="generate",
             concurrency_limit=2, concurrency_id="generate", show_progress="minimal", show_progress_on=notice)
    name.submit(generate, inputs=inputs, outputs=[output, base_output, reference], api_visibility="private",
                concurrency_limit=2, concurrency_id="generate", show_progress="minimal", show_progress_on=notice)
    return GenerateTab(model, runs)
