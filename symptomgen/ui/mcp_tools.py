"""Tools for AI assistants: symptom generation and the list of finished runs, served over MCP.

``python app.py --mcp`` (or ``SYMPTOMGEN_MCP=1``) launches Gradio's MCP server (``launch(mcp_server=True)``,
streamable HTTP at ``/gradio_api/mcp/``).  Gradio turns each public API endpoint into a tool named after its
handler function and described by the handler's docstring: the summary, one line per parameter under
``Args:``, and ``Returns:``.  The page's own endpoints return widget values (tables, dropdown updates,
Markdown) and take a dozen parameters, which suit a page, not an assistant; so ``add_tools`` adds two plain
endpoints written for one (``/generate_symptoms``, ``/list_finished_runs``; also callable with
``gradio_client``), and ``expose_only_tools`` keeps those two as the MCP server's tools.  The page's endpoints
stay callable through the ordinary API.
"""

from __future__ import annotations

import contextlib

import gradio as gr

from .. import config as C
from ..catalog import generation_target
from ..errors import InvalidInput
from ..gpu import generation_seconds, gpu
from .context import PageContext
from .widgets import checked_types, user_errors

TOOLS = ("generate_symptoms", "list_finished_runs")
"""The handlers served as MCP tools (Gradio names a tool after its handler function)."""


def _seconds(disease="", run="", temperature=0.5, max_new_tokens=48, seed=0) -> float:
    try:
        return generation_seconds(int(max_new_tokens))
    except (TypeError, ValueError):
        return 60


class Tools:
    """The tools' handlers over one page's runs and model cache (Gradio names each tool after its method)."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx
        # Decorated per instance (this attribute hides the method below): ZeroGPU is handed the bound method, so
        # its arguments are the caller's values only.  ZeroGPU: a GPU for this call only; a no-op elsewhere.
        # checked_types: a run sent as a list (or any value of the wrong kind) is refused in one sentence.
        self.generate_symptoms = user_errors(checked_types(gpu(_seconds)(self.generate_symptoms)))

    def generate_symptoms(self, disease: str, run: str = "", temperature: float = 0.5, max_new_tokens: int = 48,
                          seed: int = 0) -> str:
        """Generate a comma-separated list of symptoms for a disease name with a SymptomGen model fine-tuned on
        disease-to-symptoms data. The text comes from a small language model: it is not medical advice.

        Args:
            disease: The disease name, for example "Kidney Failure" or "Asthma" (at most 200 characters).
            run: The name of a finished run, as returned by list_finished_runs; leave empty for the newest one.
            temperature: Sampling temperature from 0 to 2: 0 always gives the same, most likely text; 0.5 is the
                default.
            max_new_tokens: The most tokens to generate, from 1 to 256 (48 is enough for a symptom list).
            seed: Sampling seed, from 0; the same seed and settings give the same text.

        Returns:
            The generated symptoms for the disease, as one line of text.
        """
        from ..generation import generate

        choice = (run or "").strip()
        if not choice:
            finished = self.ctx.store.finished()
            if not finished:
                raise InvalidInput("No finished run on this server yet: train one first.")
            choice = finished[0].run_id  # newest first
        settings = C.GenerationSettings(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        target = generation_target(choice, self.ctx.store)  # run names and Hub ids, never paths
        with self.ctx.store.using(target.run.run_id, "generating") if target.run is not None \
                else contextlib.nullcontext():
            model, tok = self.ctx.models.get(target.model)
            return generate(model, tok, disease, settings)[0]

    @user_errors
    def list_finished_runs(self) -> list[dict]:
        """List the fine-tuned SymptomGen runs this server can generate from, newest first.

        Returns:
            One entry per run: its name (pass it as generate_symptoms' run), the model it was fine-tuned from, its
            status, and its best validation loss (lower is better).
        """
        out = []
        for run in self.ctx.store.finished():
            rec = run.record()
            out.append({"run": run.run_id, "base_model": rec.model, "status": str(rec.status),
                        "best_val_loss": None if rec.best_val_loss is None else round(rec.best_val_loss, 4),
                        "lora": bool(rec.train and rec.train.lora)})
        return out


def add_tools(ctx: PageContext) -> None:
    """Register the tools' endpoints on the Blocks being built (call inside its ``with`` block)."""
    tools = Tools(ctx)
    # No api_description: the docstrings are the tools' descriptions.
    gr.api(tools.generate_symptoms, api_name="generate_symptoms", concurrency_limit=2, concurrency_id="generate")
    gr.api(tools.list_finished_runs, api_name="list_finished_runs", queue=False)  # O(runs): never waits


def expose_only_tools(demo: gr.Blocks) -> list[str]:
    """Keep only ``TOOLS`` on a launched demo's MCP server; returns the tools it serves.

    Gradio 6.31 makes every public endpoint a tool and offers no per-endpoint switch short of hiding the endpoint
    from the API as well; its server keeps the tool → endpoint map in ``tool_to_endpoint``, which listing, schemas
    and calls all read, so narrowing that map narrows all three.
    """
    server = getattr(demo, "mcp_server_obj", None)
    if server is None:
        return []
    wanted = {f"{server.tool_prefix}{name}" for name in TOOLS}  # on a Space, tool names carry its name
    server.tool_to_endpoint = {t: e for t, e in server.tool_to_endpoint.items() if t in wanted}
    return sorted(server.tool_to_endpoint)
