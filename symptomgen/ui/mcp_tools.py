"""Tools for AI assistants: the whole loop (train, watch, stop, list, evaluate, generate, export), served over MCP.

``python app.py --mcp`` (or ``SYMPTOMGEN_MCP=1``) launches Gradio's MCP server (``launch(mcp_server=True)``,
streamable HTTP at ``/gradio_api/mcp/``).  Gradio turns each public API endpoint into a tool named after its
handler function and described by the handler's docstring: the summary, one line per parameter under
``Args:``, and ``Returns:``.  The page's own endpoints return widget values (tables, dropdown updates,
Markdown) and take a dozen parameters, which suit a page, not an assistant; so ``add_tools`` adds plain
endpoints written for one (``gr.api``: hidden from the page, also callable with ``gradio_client``), and
``expose_only_tools`` keeps those (``TOOLS``) as the MCP server's tools.  The page's endpoints stay callable
through the ordinary API.

The tools share the page's ``PageContext``: its job manager (one training at a time: a second start is refused
with the page's busy sentence), its runs and its model cache; the page's login covers them (``guard``).  Every
error is one sentence (``user_errors``), which the MCP client receives as the tool's error text.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import gradio as gr

from .. import config as C
from ..catalog import generation_target
from ..errors import InvalidInput
from ..gpu import generation_seconds, gpu
from ..jobs import JobSnapshot
from ..runs import parent_run_id
from .context import PageContext
from .data_tab import data_config
from .widgets import checked_types, user_errors

TOOLS = ("start_training", "get_training_status", "stop_training", "list_training_runs", "list_finished_runs",
         "evaluate_run", "generate_symptoms", "export_run_zip")
"""The handlers served as MCP tools (Gradio names a tool after its handler function, so none may share a page
handler's name: the second of two equal names becomes ``name_1``)."""

MAX_CSV_BYTES = 256 * 1024  # CSV text in one tool call (the request guard caps the whole body at 1 MB)
MAX_WAIT_S = 60  # get_training_status waits at most this long for news
_T = {s.name: s.default for s in C.settings_of(C.TrainConfig)}  # the Train tab's defaults, from config


def _seconds(disease="", run="", temperature=0.5, max_new_tokens=48, seed=0) -> float:
    try:
        return generation_seconds(int(max_new_tokens))
    except (TypeError, ValueError):
        return 60


def _data(data: str, csv_text: str, prompt_column: str, target_column: str, folder: Path) -> C.DataConfig:
    """The tool's data arguments → ``DataConfig``: CSV text (written to ``folder``), the sample or a Hub id."""
    columns = dict(prompt_column=prompt_column, target_column=target_column, extra_target_column=None,
                   val_fraction=C.setting(C.DataConfig, "val_fraction").default, split_seed=_T["seed"])
    if csv_text.strip():
        size = len(csv_text.encode("utf-8"))
        if size > MAX_CSV_BYTES:
            raise InvalidInput(f"The CSV text is {size // 1024} KB; this tool takes at most {MAX_CSV_BYTES // 1024} "
                               "KB (upload a larger table on the page's Data tab, or use a Hub dataset id).")
        path = folder / "assistant-data.csv"  # the run records the file's name only
        path.write_text(csv_text, encoding="utf-8")
        return data_config("upload", "", "train", str(path), **columns)
    data = data.strip()
    if data in ("", C.SAMPLE_SOURCE):
        return data_config("sample", "", "train", None, **{**columns, "prompt_column": "Name",
                                                          "target_column": "Symptoms"})
    return data_config("hub", data, "train", None, **columns)  # Hub ids only: never a path on the server


def _epoch(e) -> dict:
    return {"epoch": e.epoch, "train_loss": round(e.train_loss, 4), "val_loss": round(e.val_loss, 4),
            "perplexity": round(e.perplexity, 2), "seconds": round(e.epoch_seconds, 1), "best_so_far": e.is_best}


def status_of(s: JobSnapshot) -> dict:
    """A job snapshot as an assistant reads it (plain JSON values)."""
    out: dict = {"job": s.job_id, "state": s.state, "run": s.run_id, "model": parent_run_id(s.train.model)
                 or s.train.model, "data": s.data_summary, "notices": list(s.notices), "epochs_planned":
                 s.train.epochs, "epochs": [_epoch(e) for e in s.epochs], "elapsed_seconds": round(s.elapsed)}
    p = s.progress
    if not s.done and p is not None:
        left = getattr(p, "seconds_left", None)
        out["progress"] = {"epoch": round(p.epoch, 2), "step": p.step, "total_steps": p.total_steps,
                           "seconds_left": None if left is None else round(left)}
    if s.summary is not None:
        r = s.summary
        out["run"] = r.run_dir.name
        out["outcome"] = {"status": str(r.status), "epochs_done": r.epochs_done, "best_epoch": r.best_epoch,
                          "best_val_loss": None if r.best_val_loss is None else round(r.best_val_loss, 4),
                          "message": r.message}
    if s.error:
        out["error"] = s.error
    if not s.done:
        out["next"] = "Still training: call get_training_status again (wait_seconds waits for the next epoch)."
    elif s.summary is not None and s.summary.best_epoch:
        out["next"] = f"Run {out['run']} has a saved model: generate_symptoms, evaluate_run or export_run_zip."
    return out


class Tools:
    """The tools' handlers over one page's context (Gradio names each tool after its method)."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx
        # Decorated per instance (this attribute hides the method below): ZeroGPU is handed the bound method, so
        # its arguments are the caller's values only.  ZeroGPU: a GPU for this call only; a no-op elsewhere.
        # checked_types: a run sent as a list (or any value of the wrong kind) is refused in one sentence.
        self.generate_symptoms = user_errors(checked_types(gpu(_seconds)(self.generate_symptoms)))

    # -- training ------------------------------------------------------------------------------------------------
    @user_errors
    @checked_types
    def start_training(self, data: str = "sample", csv_text: str = "", prompt_column: str = "Name",
                       target_column: str = "Symptoms", model: str = _T["model"], epochs: int = _T["epochs"],
                       batch_size: int = _T["batch_size"], learning_rate: float = _T["learning_rate"],
                       max_length: int = _T["max_length"], lora_rank: int = _T["lora_rank"],
                       max_minutes: float = _T["max_minutes"], scratch_layers: int = _T["scratch_layers"],
                       scratch_width: int = _T["scratch_width"]) -> dict:
        """Start fine-tuning a SymptomGen model (a small GPT-2 that learns disease name -> symptoms) on this server.
        Training runs in the background, one run at a time per server: if one is already running this is refused,
        so call get_training_status first. Returns at once; follow the run with get_training_status.

        Args:
            data: "sample" (the bundled table of about 100 diseases) or a Hugging Face dataset id such as
                "QuyenAnhDE/Diseases_Symptoms". Ignored when csv_text is given.
            csv_text: Optional CSV contents to train on instead (a header row, then one row per example; at most
                256 KB), with a disease-name column and a symptoms column named by the next two arguments.
            prompt_column: The column holding the disease name (the prompt); "Name" in the sample.
            target_column: The column holding the text to learn (the symptoms); "Symptoms" in the sample.
            model: The model to start from: a Hub id such as "distilgpt2" (the default) or "gpt2", the name of a
                finished run to train further, or "scratch" (a small random GPT-2 that works offline).
            epochs: Passes over the training rows, 1 to 100. The epoch that scores best on a small per-epoch
                sample of taught and unseen rows is kept.
            batch_size: Examples per step, 1 to 256.
            learning_rate: Peak learning rate of AdamW, 1e-6 to 0.1 (5e-4 is the default).
            max_length: Longest example in tokens, 8 to 1024; longer ones are truncated.
            lora_rank: 0 fine-tunes every weight; 1 to 256 trains small LoRA adapters of that rank instead.
            max_minutes: Time budget in minutes (0 = none): training stops at the next step after it, keeping the
                best finished epoch.
            scratch_layers: Layers of the "scratch" model, 1 to 24 (ignored for other models).
            scratch_width: Hidden width of the "scratch" model, 16 to 2048, a multiple of 4 (ignored otherwise).

        Returns:
            The job: its number, state ("running"), the data summary, any notices (such as an offline fallback to the
            sample or the scratch model) and the settings; the run's name appears in get_training_status.
        """
        train = C.TrainConfig(model=model.strip(), epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                              max_length=max_length, lora_rank=lora_rank, max_minutes=max_minutes,
                              scratch_layers=scratch_layers, scratch_width=scratch_width)
        with tempfile.TemporaryDirectory(prefix="symptomgen-mcp-") as folder:
            # start() takes the slot first (a second start gets the page's busy sentence), then reads and splits
            # the data before it returns (preflight): the file may go afterwards.
            snap = self.ctx.jobs.start(_data(data, csv_text, prompt_column, target_column, Path(folder)), train)
        out = status_of(snap)
        out["settings"] = {k: getattr(snap.train, k) for k in ("model", "epochs", "batch_size", "learning_rate",
                                                                "max_length", "lora_rank", "max_minutes")}
        return out

    @user_errors
    @checked_types
    def get_training_status(self, wait_seconds: float = 0) -> dict:
        """The latest training run on this server: whether it is running or done, its run name, the epochs finished
        so far with their train and validation loss, progress through the current epoch, and how it ended. Call it
        after start_training, and again until state is "done".

        Args:
            wait_seconds: Wait up to this many seconds (0 to 60) for the next finished epoch or the end of the run
                before answering; 0 answers at once.

        Returns:
            state ("running", "done" or "idle" when nothing has trained since the server started), run, epochs (one
            entry per finished epoch: train_loss, val_loss, perplexity, seconds, best_so_far), progress (while
            running), outcome (status finished/stopped/early-stopped/failed, best_epoch, best_val_loss) and error.
        """
        if isinstance(wait_seconds, bool) or not 0 <= wait_seconds <= MAX_WAIT_S:
            raise InvalidInput(f"wait_seconds must be between 0 and {MAX_WAIT_S}, got {wait_seconds!r}.")
        jobs = self.ctx.jobs
        snap = jobs.snapshot()
        if snap is None:
            return {"state": "idle", "message": "No training has run since this server started: call "
                                                "start_training, or list_training_runs for earlier runs."}
        deadline, seen = time.monotonic() + wait_seconds, len(snap.epochs)
        while not snap.done and len(snap.epochs) == seen and (left := deadline - time.monotonic()) > 0:
            snap = jobs.wait(snap.job_id, snap.version, timeout=min(1.0, left)) or snap
        return status_of(snap)

    @user_errors
    def stop_training(self) -> str:
        """Stop the training run that is running on this server, after its current step. The best finished epoch
        is kept, so a stopped run with at least one epoch can still generate, be evaluated and be exported.

        Returns:
            One sentence: stopping, or that no training is running.
        """
        return self.ctx.jobs.stop()

    # -- runs ----------------------------------------------------------------------------------------------------
    @user_errors
    def list_training_runs(self) -> list[dict]:
        """List every run on this server, newest first, whatever its state (running, finished, stopped, failed,
        interrupted). Use list_finished_runs for only the runs that can generate.

        Returns:
            One entry per run: its name, status, the model it started from, epochs done, best epoch and best
            validation loss, and whether it has a saved model (needed by generate_symptoms, evaluate_run and
            export_run_zip).
        """
        out = []
        for run in self.ctx.store.list():
            rec = run.record()
            out.append({"run": run.run_id, "status": str(run.status()), "base_model": parent_run_id(rec.model)
                        or rec.model, "epochs_done": rec.epochs_done, "best_epoch": rec.best_epoch,
                        "best_val_loss": None if rec.best_val_loss is None else round(rec.best_val_loss, 4),
                        "has_model": run.has_best(), "created": rec.created})
        return out

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

    @user_errors
    @checked_types
    def evaluate_run(self, run: str, rows: int = 10, include_base: bool = True) -> dict:
        """Measure a finished run: loss, perplexity and how many reference symptoms its greedy generations recover
        (phrase precision, recall and F1; ROUGE for free-text targets), on rows of its own validation split it never
        trained on ("unseen") and on as many of its training rows ("taught"), beside its base model. Takes seconds
        to minutes on a CPU: keep rows small.

        Args:
            run: The name of a finished run (from list_finished_runs or get_training_status).
            rows: Validation rows to score, 1 to 500 (and as many training rows); 10 by default.
            include_base: Also score the model it was fine-tuned from, for comparison.

        Returns:
            For "unseen" and "taught": the rows and names scored, and the fine-tuned model's scores (and the base
            model's, or why it could not be scored); plus a few example rows (name, reference, generated).
        """
        from ..evaluation import evaluate_run

        found = self.ctx.store.open(run)
        n = C.EvaluationSettings(rows=rows).rows
        out = evaluate_run(found.path, limit=n, include_base=include_base)
        table = out.pop("table")
        out.pop("taught_table", None)
        out["examples"] = [{"name": r.name, "reference": r.reference, "generated": r.generated}
                           for r in table.head(3).itertuples(index=False)]
        out["note"] = ("Higher precision/recall/F1 (or ROUGE) and lower loss are better; compare the fine-tuned "
                       "model with its base on the unseen rows.")
        return out

    # -- using a run ---------------------------------------------------------------------------------------------
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
    @checked_types
    def export_run_zip(self, run: str) -> gr.FileData:
        """Package a finished run as a zip to download: the model (safetensors) and tokenizer, which load with
        transformers' from_pretrained, its settings, per-epoch metrics, data split and a model card.

        Args:
            run: The name of a finished run (from list_finished_runs).

        Returns:
            The zip file (a download URL).
        """
        from .share_panel import SharePanel

        path = SharePanel(self.ctx).export_run(run)[0]
        return gr.FileData(path=path, orig_name=Path(path).name, mime_type="application/zip")


def add_tools(ctx: PageContext) -> None:
    """Register the tools' endpoints on the Blocks being built (call inside its ``with`` block)."""
    tools = Tools(ctx)
    # No api_description: the docstrings are the tools' descriptions.  Waiting on a job takes no CPU (no limit);
    # generation shares the page's generate group (and its per-visitor cap); listing is O(runs) and never waits;
    # evaluation and zips share the page's one-at-a-time groups.
    limits = {"generate_symptoms": dict(concurrency_limit=2, concurrency_id="generate"),
              "list_finished_runs": dict(queue=False), "list_training_runs": dict(queue=False),
              "get_training_status": dict(concurrency_limit=None),
              "evaluate_run": dict(concurrency_limit=1, concurrency_id="evaluate"),
              "export_run_zip": dict(concurrency_limit=1, concurrency_id="share")}
    for name in TOOLS:
        gr.api(getattr(tools, name), api_name=name, **limits.get(name, {}))


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
