"""*Generate for many names*, on the Generate tab: a list of names (or the run's whole table) → a CSV to download.

The work is ``bulk.generate_many`` in a worker thread, with the tab's model and sampling settings; the handler
streams a status line and drives the page's progress bar (``gr.Progress``).  Stop sets that session's flag, so the
worker ends after its current name and the rows so far still come back as the CSV; a closed page stops it the same
way.  The handlers are methods of ``BulkPanel`` (callable without a page).
"""

from __future__ import annotations

import tempfile
import threading

import gradio as gr

from .. import config as C
from ..catalog import generation_target
from ..errors import InvalidInput
from ..layout import DOWNLOADS_DIR
from .context import PageContext
from .widgets import checked_types, user_errors


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "direct"


class BulkPanel:
    """The bulk accordion's handlers over one page's runs and model cache, with one stop flag per session."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @user_errors
    @checked_types
    def generate_many(self, model: str, names: str | None, whole_table: bool, top_k: int, top_p: float,
                      temperature: float, repetition_penalty: float, max_new_tokens: int, seed: int | None,
                      no_repeat_ngram_size: int = 0, request: gr.Request = None, progress=gr.Progress()):
        """Generate for each name (one per line, or the run's whole table) and stream progress; ends with a CSV of
        name, generated text, reference where known and score."""
        from ..bulk import generate_many, parse_names, table_names, write_csv

        settings = C.GenerationSettings(top_k=top_k, top_p=top_p, temperature=temperature,
                                        repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens,
                                        seed=seed, no_repeat_ngram_size=no_repeat_ngram_size)
        target = generation_target(model, self.ctx.store)  # run names and Hub ids only: never a server path
        if whole_table:
            if target.run is None:
                raise InvalidInput("The whole table means a run's own data: pick a fine-tuned run above, or list "
                                   "the names.")
            wanted = table_names(target.run, C.MAX_BULK_NAMES)
        else:
            wanted = parse_names(names or "", C.MAX_BULK_NAMES)
        m, tok = self.ctx.models.get(target.model)
        stop, key, done, out = threading.Event(), _session(request), [0], {}
        with self._lock:
            self._stops[key] = stop  # this session's latest bulk run is the one its Stop ends

        def work():
            try:
                out["result"] = generate_many(m, tok, wanted, settings, target.run, stop,
                                              on_row=lambda n, total, row: done.__setitem__(0, n))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the handler, so the page shows its sentence
                out["error"] = exc

        worker = threading.Thread(target=work, daemon=True, name="bulk-generate")
        worker.start()
        try:
            while worker.is_alive():
                progress((done[0], len(wanted)), desc="names", unit="names")
                yield f"Generating {done[0]} of {len(wanted)} names…", gr.skip()
                worker.join(timeout=0.5)
        finally:
            stop.set()  # cancelled or the page closed: the worker ends after its current name
            with self._lock:
                if self._stops.get(key) is stop:
                    self._stops.pop(key)
        if "error" in out:
            raise out["error"]
        result = out["result"]
        DOWNLOADS_DIR.mkdir(parents=True, exist_ok=True)  # swept after an hour (RunStore.sweep)
        label = target.run.run_id if target.run is not None else "base"
        with tempfile.NamedTemporaryFile(dir=DOWNLOADS_DIR, prefix=f"{label}-{len(result.rows)}-names-",
                                         suffix=".csv", delete=False) as fh:
            path = fh.name
        write_csv(result, path)
        yield f"**{result.summary()}**", path

    def stop_many(self, request: gr.Request = None) -> str:
        """Stop this session's bulk generation after its current name; the rows so far come back as the CSV."""
        with self._lock:
            stop = self._stops.get(_session(request))
        if stop is None:
            return "Nothing is generating for many names now."
        stop.set()
        return "Stopping after the current name; the rows so far come back as the CSV."


def build_bulk_section(ctx: PageContext, model: gr.Dropdown, sliders: list, no_repeat) -> None:
    """The "Generate for many names" accordion, using the tab's ``model`` and sampling widgets (``sliders`` in the
    /generate order: top_k, top_p, temperature, repetition_penalty, max_new_tokens, sequences, seed)."""
    with gr.Accordion("Generate for many names", open=False, elem_id="bulk-section"):
        gr.Markdown("One row per name in a CSV: the generated text, the reference where the name is in the run's data, "
                    "and its score (phrase F1 for symptom lists, ROUGE-L for free text). Uses the model and sampling "
                    "settings above (one sequence per name).")
        names = gr.Textbox("", label=f"Disease names, one per line (at most {C.MAX_BULK_NAMES})", lines=6,
                           placeholder="Kidney Failure\nAsthma\nMigraine", elem_id="bulk-names")
        whole = gr.Checkbox(False, label="The whole table instead: every name in the selected run's own data",
                            elem_id="bulk-whole-table")
        with gr.Row():
            go = gr.Button("Generate CSV", variant="primary", elem_id="bulk-button", scale=2)
            stop = gr.Button("Stop", variant="stop", elem_id="bulk-stop", scale=1)
        status = gr.Markdown(elem_id="bulk-status")
        csv_file = gr.File(label="Generated CSV", interactive=False, height=90, elem_id="bulk-file")
    panel = BulkPanel(ctx)
    top_k, top_p, temperature, repetition_penalty, max_new_tokens, _, seed = sliders
    inputs = [model, names, whole, top_k, top_p, temperature, repetition_penalty, max_new_tokens, seed, no_repeat]
    go.click(panel.generate_many, inputs=inputs, outputs=[status, csv_file], api_name="generate_many",
             concurrency_limit=2, concurrency_id="generate", show_progress="full", show_progress_on=status)
    stop.click(panel.stop_many, outputs=status, api_name="stop_many", concurrency_limit=None)

