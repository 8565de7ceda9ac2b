"""*Arena*, on the Generate tab: one disease name, two to four models (finished runs and the base model), their
generations side by side with the same seed and the same sampling settings.

It reuses the tab's name box and sampling widgets, the page's model cache and ``generation.stream``, so each column
is exactly what Generate would show for that model.  Bounded like Generate: at most ``MAX_ARENA`` models (names
deduplicated and capped before any work), ``MAX_GENERATED_TOKENS`` in all (tokens × sequences × models), in the
"generate" concurrency group (two at a time, and a visitor's few waiting calls: ``calls.VisitorLimit``).  A blank
seed becomes one random seed shared by every column (and shown), so the columns differ only by model.  A model that
cannot be loaded (the base model offline) says so in one sentence in its own column; the others still generate.
The handler is a method of ``ArenaPanel`` (callable without a page).
"""

from __future__ import annotations

import html
import secrets
from contextlib import nullcontext

import gradio as gr

from .. import config as C
from ..catalog import data_label, generation_target, model_choices
from ..errors import HubUnreachableError, InvalidInput, UserError, first_line
from ..gpu import generation_seconds, gpu
from ..hub import unreachable_reason
from .calls import bounded_names
from .context import PageContext
from .widgets import ListedChoices, checked_types, user_errors

MAX_ARENA, MIN_ARENA = 4, 2  # models side by side (the model cache holds four)
EMPTY = "(no text: the model ended at once)"


def _arena_seconds(models, name, top_k, top_p, temperature, repetition_penalty, max_new_tokens, num_sequences,
                   seed, no_repeat_ngram_size=0) -> float:
    """GPU seconds to ask ZeroGPU for one arena call: one generation per model."""
    try:
        count = min(len(models), MAX_ARENA) if isinstance(models, (list, tuple)) else 1
        return generation_seconds(int(max_new_tokens), int(num_sequences)) * max(1, count)
    except (TypeError, ValueError):
        return 60


def arena_html(columns: list[tuple[str, str, list[str] | str]], note: str = "") -> str:
    """The columns side by side: ``(heading, detail, texts or a one-sentence problem)`` each, every piece of text
    escaped (run names and generations are user data).  Each column wraps under the others on a phone."""
    cells = []
    for heading, detail, body in columns:
        if isinstance(body, str):
            inner = f"<p class='sg-arena-problem'><em>{html.escape(body)}</em></p>"
        else:
            inner = "".join(f"<p class='sg-arena-text'>{html.escape(t)}</p>" for t in body) or "<p>…</p>"
        cells.append(f"<div class='sg-arena-col' style='flex:1 1 220px;min-width:220px;border:1px solid #d1d5db;"
                     f"border-radius:8px;padding:8px 10px'><h4 class='sg-arena-heading' style='margin:0 0 2px 0'>"
                     f"{html.escape(heading)}</h4><div style='font-size:12px;opacity:.75;margin-bottom:6px'>"
                     f"{html.escape(detail)}</div>{inner}</div>")
    foot = f"<p style='font-size:12px'>{html.escape(note)}</p>" if note else ""
    return f"<div class='sg-arena' style='display:flex;flex-wrap:wrap;gap:10px'>{''.join(cells)}</div>{foot}"


class ArenaPanel:
    """The arena accordion's handlers over one page's runs and model cache."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx
        # As Generate: ZeroGPU gets the bound method (its arguments are the widgets' values only); the types are
        # checked before asking for a GPU.
        self.compare = user_errors(checked_types(gpu(_arena_seconds)(self.compare)))

    def choices(self, current=None, preselect: bool = True):
        """The models to pick from (finished runs, then the base model); the picks still listed are kept, and with
        none (``preselect``) the two newest runs and the base model are picked, ready to compare."""
        listed = model_choices(self.ctx.store)
        values = [v for _, v in listed]
        keep = [c for c in (current if isinstance(current, list) else []) if c in values][:MAX_ARENA]
        if not keep and preselect:
            runs = values[:-1][:MAX_ARENA - 1]
            keep = runs[:2] + values[-1:] if runs else []
        return gr.update(choices=listed, value=keep)

    def compare(self, models: list[str] | None, name: str, top_k: int, top_p: float, temperature: float,
                repetition_penalty: float, max_new_tokens: int, num_sequences: int, seed: int | None,
                no_repeat_ngram_size: int = 0):
        """Generate for one disease name with 2 to 4 models (runs or the base model), side by side, with the same
        seed and sampling settings; streams the columns as they fill."""
        from ..generation import clean_name, stream

        chosen = bounded_names(models, MAX_ARENA, "models in the arena")
        if len(chosen) < MIN_ARENA:
            raise InvalidInput(f"Pick {MIN_ARENA} to {MAX_ARENA} models for the arena (finished runs or the base "
                               "model).")
        name = clean_name(name)
        drawn = seed is None
        seed = secrets.randbelow(C.MAX_SEED + 1) if drawn else seed
        settings = C.GenerationSettings(top_k=top_k, top_p=top_p, temperature=temperature,
                                        repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens,
                                        num_return_sequences=num_sequences, seed=seed,
                                        no_repeat_ngram_size=no_repeat_ngram_size)
        work = settings.max_new_tokens * settings.num_return_sequences * len(chosen)
        if work > C.MAX_GENERATED_TOKENS:
            raise InvalidInput(f"One arena call may generate at most {C.MAX_GENERATED_TOKENS} tokens in all; "
                               f"{settings.max_new_tokens} tokens × {settings.num_return_sequences} sequence(s) × "
                               f"{len(chosen)} models is {work}: lower max_new_tokens, the sequences or the models.")
        # Every name is resolved before any generation: a name that is no run or allowed model is refused whole;
        # a Hub model that cannot be downloaded here gets its sentence in its own column.
        labels = {v: label for label, v in model_choices(self.ctx.store)}
        targets, columns = [], []
        for choice in chosen:
            try:
                target = generation_target(choice, self.ctx.store)
            except HubUnreachableError as exc:
                target, problem = None, first_line(exc)
            run = target.run if target is not None else None
            heading = run.run_id if run is not None else labels.get(choice, choice)
            detail = (f"trained on {data_label(run.record())}, {run.record().model or '?'}" if run is not None
                      else "not fine-tuned")
            targets.append(target)
            columns.append([heading, detail, [] if target is not None else problem])
        how = "greedy" if settings.greedy else f"seed {seed}" + (" (drawn at random, the same for all)" if drawn
                                                                  else "")
        note = (f"Same prompt “{name}” and settings for every column: {how}, top_k {settings.top_k}, top_p "
                f"{settings.top_p}, temperature {settings.temperature}, up to {settings.max_new_tokens} new tokens.")
        yield arena_html([tuple(c) for c in columns], note), "Generating…"
        for column, target in zip(columns, targets):
            if target is None:
                continue
            hold = self.ctx.store.using(target.run.run_id, "generating") if target.run is not None else nullcontext()
            try:
                with hold:  # a delete waits for (is refused during) this run's generation
                    m, tok = self.ctx.models.get(target.model)
                    for texts in stream(m, tok, name, settings):
                        column[2] = texts
                        yield arena_html([tuple(c) for c in columns], note), gr.skip()
                column[2] = [t or EMPTY for t in column[2]]
            except HubUnreachableError:
                column[2] = f"Not available: not downloaded, and {unreachable_reason()}."
            except UserError as exc:
                column[2] = first_line(exc)
            except Exception as exc:  # noqa: BLE001 - any library error becomes one sentence in its column
                column[2] = f"This model could not generate: {first_line(exc)[:200]}"
        yield arena_html([tuple(c) for c in columns], note), "Done."


def build_arena_section(ctx: PageContext, name, sliders: list, no_repeat) -> None:
    """The "Arena" accordion, using the tab's disease ``name`` and sampling widgets (``sliders`` in the /generate
    order: top_k, top_p, temperature, repetition_penalty, max_new_tokens, sequences, seed)."""
    panel = ArenaPanel(ctx)
    with gr.Accordion("Arena: the same prompt, several models side by side", open=False,
                      elem_id="arena-section") as box:
        gr.Markdown(f"Pick {MIN_ARENA} to {MAX_ARENA} models (finished runs, the base model): each generates for the "
                    "disease name above with the same sampling settings and the same seed (a blank seed draws one, "
                    "shared by all).")
        with gr.Row():
            models = ListedChoices([], value=[], multiselect=True, max_choices=MAX_ARENA,
                                   label=f"Models ({MIN_ARENA} to {MAX_ARENA})", elem_id="arena-models", scale=4)
            go = gr.Button("Compare", variant="primary", elem_id="arena-button", scale=1)
        notice = gr.Markdown(elem_id="arena-notice")
        output = gr.HTML(elem_id="arena-output", padding=True)
    # The list is read when the accordion opens and when the list is focused: runs finish while the page is open.
    box.expand(panel.choices, inputs=models, outputs=models, api_visibility="private", queue=False,
               show_progress="hidden")
    models.focus(lambda current: panel.choices(current, preselect=False), inputs=models, outputs=models,
                 api_visibility="private", queue=False, show_progress="hidden")
    inputs = [models, name, *sliders, no_repeat]
    go.click(panel.compare, inputs=inputs, outputs=[output, notice], api_name="arena", concurrency_limit=2,
             concurrency_id="generate", show_progress="minimal", show_progress_on=notice)
