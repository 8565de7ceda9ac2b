"""The Gradio Blocks app: Data, Train, Generate and Evaluate tabs over the ``symptomgen`` package.

``build_page`` builds one ``PageContext`` (run store, job manager, model cache, offline
switch), hands it to every tab, lays out the page and wires events: no model is loaded, no
data is read and nothing touches the network until a page or API client calls
an event.  ``build_demo`` is its thin door for Spaces and ``app.py``.  ``main`` parses
``--share/--host/--port`` (and environment variables) and launches.  The tabs live in
``data_tab``, ``train_tab``, ``generate_tab`` and ``evaluate_tab`` (with ``explain_panel``
and ``share_panel``); the context in ``context``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import sys
from pathlib import Path

import gradio as gr

from .. import NOT_MEDICAL_ADVICE, quiet_libraries
from ..cputune import preload_env
from ..errors import InvalidInput, UserError, first_line
from ..hub import hub_reachable, offline_requested, unreachable_message
from ..settings import Settings, current, keep_owner_token_private
from ..store import RunStore
from ..sweeper import start_sweeper
from .calls import VisitorLimit, check_call_values
from .charts import toggle_css
from .context import PageContext
from .data_tab import DATA_INPUTS, build_data_tab
from .evaluate_tab import build_evaluate_tab
from .form import form_of, remember, restored
from .generate_tab import build_generate_tab
from .guard import guard_app_kwargs
from .mcp_tools import add_tools, expose_only_tools
from .train_tab import PRESETS, TRAIN_FIELDS, build_train_tab, offline_model_choices, wire_train

BUSY_ERRNOS = (errno.EADDRINUSE, errno.EACCES)
# The page's own CSS.  Gradio 6 takes css= in launch(); build_demo hands it to the demo as launch()'s fallback, so
# a demo launched by someone else (a notebook's demo.launch(), `gradio app.py`) is styled too.  Layout that must
# hold without it (phones: one column) comes from the widgets' min_width; this adds what only CSS can say.
PAGE_CSS = """
/* Empty states: the metrics download appears with its file, not as an empty box under a running job. */
#metrics-file:not(:has([data-testid=download-link])) { display: none !important; }
/* Long cells wrap inside the box instead of running past its right edge (data preview, explain table). */
#data-preview td, #explain-table td { white-space: normal !important; overflow-wrap: anywhere; }
#data-preview, #explain-table { overflow-x: auto; }
/* A long value in a list ends in an ellipsis before the arrow (and its box), never under it. */
.secondary-wrap input { text-overflow: ellipsis; padding-right: 2.2em; }
/* Phones: rows of outputs read top to bottom, one per line. */
@media (max-width: 640px) {
  .stack-on-phone { flex-direction: column !important; }
  .stack-on-phone > * { min-width: 100% !important; }
  /* The epochs table fits a phone's width (no sideways scrolling): epoch, losses and best.  Perplexity (the
     exponent of the validation loss), seconds, tokens/s and learning rate are left to the desktop and the CSV. */
  #epoch-table th:nth-child(n+4):nth-child(-n+7), #epoch-table td:nth-child(n+4):nth-child(-n+7) { display: none; }
  #epoch-table table { font-size: 12px; }
}
"""
# The charts' toggles (``charts.toggle_css``): checkboxes set <html> attributes in the browser; these rules show the
# views they name.  The toggle rows sit tight under their charts.
PAGE_CSS += toggle_css(("loss-plot", "compare-plot")) + ".sg-chart-toggles { gap: 4px 16px !important; }\n"
QUEUE_SIZE = 64  # requests waiting in the queue (all events); beyond that a client is told the queue is full


def build_demo(runs_dir: Path | str | None = None) -> gr.Blocks:
    """The whole page (``build_page``'s), for Spaces and ``app.py``.  ``runs_dir`` holds run folders (default
    ``runs/`` or ``$SYMPTOMGEN_RUNS_DIR``)."""
    return build_page(RunStore(runs_dir) if runs_dir is not None else None)[0]


def build_page(store: RunStore | None = None) -> tuple[gr.Blocks, PageContext]:
    """The whole page over ``store`` (default: ``runs/`` or ``$SYMPTOMGEN_RUNS_DIR``), and the context its tabs
    share (its job manager: for tests and shutdown)."""
    store = store if store is not None else RunStore(current().runs_dir)
    if not current().lends_hub_token:  # a visitor's Hub model or dataset id never reads with the owner's token
        keep_owner_token_private()
    ctx = PageContext.create(store, offline=offline_requested())  # an environment variable, not a network check
    # No usage analytics: the app must not phone home (and must not wait on a network that is absent).
    # Uploads and generated downloads live in Gradio's temp cache; sweep files older than an hour, hourly.
    with gr.Blocks(title="SymptomGen", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# SymptomGen\nFine-tune a small GPT-2 on disease → symptoms data, watch the losses per "
                    "epoch, then generate symptom lists for a disease name.")
        banner = gr.Markdown(elem_id="hub-banner")
        gr.Markdown(f"⚠️ *{NOT_MEDICAL_ADVICE}*", elem_id="not-medical-advice")
        with gr.Tabs():
            with gr.Tab("Data", id="data"):
                data = build_data_tab(ctx)
            with gr.Tab("Train", id="train"):
                train = build_train_tab(ctx)
            with gr.Tab("Generate", id="generate") as generate_tab:
                gen = build_generate_tab(demo, ctx, generate_tab)
            with gr.Tab("Evaluate", id="evaluate") as evaluate_tab:
                build_evaluate_tab(demo, ctx, evaluate_tab, gen.model)
        wire_train(demo, train, data, ctx, gen.model)
        add_tools(ctx)  # the MCP tools (--mcp): train, status, stop, runs, evaluate, generate, export

        # The form survives a reload: the browser keeps its values (the upload as the server's copy), and a
        # fresh page shows them again; without them, the running job's own settings.
        form_names = (*DATA_INPUTS, "preset", *TRAIN_FIELDS)
        form = [*data.inputs, train.preset, *train.widgets]
        memory = gr.BrowserState(None, storage_key="symptomgen-form")
        gr.on([c.change for c in form], lambda *values: remember(form_names, values), inputs=form, outputs=memory,
              api_visibility="private", show_progress="hidden", trigger_mode="always_last")

        def check_hub(saved):
            """Offline (or Hub unreachable): say so, and switch the defaults to the sample and scratch; then the
            remembered form (or the running job's settings) over them."""
            defaults: dict = {}
            msg, models = "", None
            if not hub_reachable():
                why = ("offline mode is on (HF_HUB_OFFLINE=1)" if offline_requested()
                       else "the Hugging Face Hub cannot be reached from this server")
                msg = (f"⚠️ **Offline:** {why}. Using the bundled sample data and the small `scratch` model "
                       "(the quick CPU preset); Hub datasets and pretrained models are unavailable.")
                defaults = {"source": "sample", "preset": "quick-cpu",
                            **{f: getattr(PRESETS["quick-cpu"], f) for f in TRAIN_FIELDS}}
                models = offline_model_choices()  # Hub models not downloaded say what they would train
            job = ctx.jobs.snapshot()
            if not saved and job is not None and not job.done:
                saved = {**remember(form_names, [None] * len(form_names)),
                         **form_of(job.data, job.train), "preset": "custom"}
                saved = {k: v for k, v in saved.items() if v is not None}
            values = restored(saved, form_names, defaults) if saved else defaults
            if models is not None:
                values["model"] = gr.update(choices=models, **({"value": values["model"]} if "model" in values else {}))
            return (msg, *[values.get(n, gr.skip()) for n in form_names])

        demo.load(check_hub, inputs=memory, outputs=[banner, *form], api_visibility="private")
        # Leftovers of killed writes and imports, and downloads older than an hour: swept from the first visit
        # (however the demo was launched), then hourly; importing app.py starts nothing.
        def sweep_from_first_visit() -> None:  # returns nothing: this event has no outputs (start_sweeper's
            start_sweeper(store)               # False on later visits made Gradio warn on every page load)

        demo.load(sweep_from_first_visit, api_visibility="private", show_progress="hidden")
    demo._deprecated_css = PAGE_CSS  # what launch() uses when not given css= (Gradio 6.x)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    check_call_values(demo)  # too few values, a file never uploaded: one sentence, not Gradio's silence
    VisitorLimit({"generate"}).install(demo)  # a few generations per visitor in the queue, then a refusal
    return demo, ctx


def parse_auth(text: str | None) -> list[tuple[str, str]] | None:
    """``"user:pass"`` or ``"u1:p1,u2:p2"`` → credentials; empty → None (no login)."""
    if not text or not text.strip():
        return None
    pairs = []
    for item in text.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise InvalidInput("SYMPTOMGEN_AUTH must look like user:password (several separated by commas).")
        pairs.append((user, password))
    return pairs


def build_parser(env: Settings | None = None) -> argparse.ArgumentParser:
    env = env or Settings.from_env()
    p = argparse.ArgumentParser(prog="python app.py", description="SymptomGen web app (Gradio).",
                                epilog="Environment: SYMPTOMGEN_AUTH=user:pass enables a login; "
                                       "SYMPTOMGEN_RUNS_DIR sets where runs are saved; SPACE_ID (set by "
                                       "Hugging Face Spaces) makes 0.0.0.0 the default host.")
    p.add_argument("--share", action="store_true", default=env.share,
                   help="also serve on a temporary public *.gradio.live link (env SYMPTOMGEN_SHARE=1)")
    p.add_argument("--host", default=env.host or ("0.0.0.0" if env.on_space else "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 on a Space)")
    p.add_argument("--port", type=int, default=env.port,
                   help="port (default 7860)")
    p.add_argument("--mcp", action="store_true", default=env.mcp,
                   help="also serve MCP tools at /gradio_api/mcp/ (start and follow training, stop, list, "
                        "evaluate, generate, export; env SYMPTOMGEN_MCP=1)")
    return p


def guarded_launch(env: Settings, auth: list[tuple[str, str]] | None) -> dict:
    """``launch()`` options every door uses: the request guard (body cap; MCP behind the login) and the upload cap.
    Run zips (a distilgpt2 run is ~330 MB) may exceed the data-file cap; data uploads keep their own check."""
    return dict(max_file_size=max(env.max_file_bytes, env.max_import_bytes),
                app_kwargs=guard_app_kwargs(env.max_request_bytes, auth))


def launch_error(exc: OSError, host: str, port: int | None) -> str:
    """Why the server could not start, in this app's words: a busy port names ``--port`` and
    ``SYMPTOMGEN_PORT`` (Gradio's own message names its ``server_port``/``launch()`` parameters)."""
    text = str(exc).strip().strip("'\"")
    if "port" in text.lower() or isinstance(exc, PermissionError) or getattr(exc, "errno", None) in BUSY_ERRNOS:
        where = f"{host}:{port}" if port else f"{host} (default port)"
        return (f"cannot listen on {where}: the port is in use or not allowed. Choose another port with --port "
                "(or the SYMPTOMGEN_PORT environment variable), or stop the program using this one.")
    return text.splitlines()[0] if text else type(exc).__name__


def main(demo: gr.Blocks, argv: list[str] | None = None, store: RunStore | None = None) -> None:
    """Launch ``demo`` (built over ``store``: default ``$SYMPTOMGEN_RUNS_DIR``, as ``build_demo``'s); a share link
    that cannot be made is reported in one line, and serving goes on."""
    try:
        env = Settings.from_env()
        args = build_parser(env).parse_args(argv)
        auth = parse_auth(env.auth)
    except UserError as exc:
        sys.exit(f"error: {first_line(exc)}")
    quiet_libraries()
    preloaded = preload_env()
    if preloaded is not None:  # the training processes it spawns from now on start with tcmalloc (cputune)
        os.environ["LD_PRELOAD"] = preloaded["LD_PRELOAD"]
    start_sweeper(store if store is not None else RunStore(env.runs_dir))  # now, not only at the first visit
    kwargs = dict(server_name=args.host, server_port=args.port, auth=auth, css=PAGE_CSS, **guarded_launch(env, auth))
    if auth:
        kwargs["auth_message"] = "SymptomGen: please log in."
    share = args.share
    if share and env.on_space:
        print("Note: --share is ignored on a Hugging Face Space (the Space already has a public URL).")
        share = False
    # Gradio explains a failed tunnel in several lines; swallow its output and say it in one.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            demo.launch(share=share, prevent_thread_lock=True, quiet=True, mcp_server=args.mcp, **kwargs)
    except OSError as exc:  # e.g. the port is taken
        sys.exit(f"error: {launch_error(exc, args.host, args.port)}")
    print(f"* Running on local URL:  {demo.local_url}")
    if args.mcp:
        tools = expose_only_tools(demo)
        print(f"* MCP server (streamable HTTP): {demo.local_url}gradio_api/mcp/ — tools: {', '.join(tools)}"
              if tools else f"MCP server not started: {demo.mcp_error or 'pip install mcp'}")
    if demo.share_url:
        print(f"* Running on public URL: {demo.share_url}")
    elif share:
        print(f"Could not create a share link (no internet, or the share tunnel is blocked); "
              f"serving locally only at {demo.local_url}")
    else:
        print("* For a temporary public link, run with --share.")
    if not hub_reachable():
        print(f"Offline: {unreachable_message('models or datasets')}")
    demo.block_thread()


__all__ = ["PAGE_CSS", "build_demo", "build_page", "guarded_launch", "main"]
