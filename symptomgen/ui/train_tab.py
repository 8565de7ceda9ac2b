"""Train tab: model and hyperparameters, Start/Stop, and the job's live view.

The job lives in the server's ``JobManager``; this tab only starts, stops and
follows it.  ``follow`` turns job snapshots into widget values (progress,
per-epoch table, loss plot, summary, metrics CSV) and streams them; the page's
load event re-attaches to a running job the same way.
"""

from __future__ import annotations

import html
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import config as C
from ..jobs import JobManager, JobSnapshot
from ..runs import Run, parent_run_id
from .widgets import named_parameters, setting_widget, user_errors
from .data_tab import DATA_INPUTS, DataTab, data_config

PRESETS: dict[str, C.TrainConfig] = {"defaults": C.TrainConfig(), **C.TRAIN_PRESETS}
PRESET_CHOICES = [("Defaults (distilgpt2, loss on the symptoms)", "defaults"),
                  ("Seed notebook (its exact settings)", "seed-notebook"),
                  ("Quick CPU demo (small scratch model)", "quick-cpu")]
MODEL_CHOICES = [C.DEFAULT_MODEL, "gpt2", "gpt2-medium", C.SCRATCH_MODEL]
# TrainConfig fields shown as widgets, in field order: the order of ``TrainTab.widgets``, of the presets'
# values and of the Start handler's (and so the /train API's) parameters after the data tab's.
TRAIN_FIELDS = C.ui_fields(C.TrainConfig)
# Layout only: a new row of widgets starts at each of these fields; from MORE_FROM on, under "More settings".
ROW_STARTS = ("learning_rate", "scheduler", "grad_accum", "scratch_layers")
MORE_FROM = "scheduler"
WIDGET_OVERRIDES = {"model": {"choices": MODEL_CHOICES}}  # suggestions; any Hub id or scratch is accepted
TABLE_COLUMNS = ["epoch", "train loss", "val loss", "perplexity", "seconds", "tokens/s", "learning rate", "best"]
STREAM_INTERVAL_S = 0.4  # at most this often for step progress; epoch rows are sent at once


def train_config(**values) -> C.TrainConfig:
    """Widget values by field name → ``TrainConfig`` (its ``__post_init__`` raises ``InvalidInput`` on bad values)."""
    return C.TrainConfig(**{**values, "model": (values.get("model") or "").strip()})


def preset_values(name: str) -> list:
    cfg = PRESETS.get(name)
    if cfg is None:
        raise gr.Error(f"Unknown preset {name!r}.", print_exception=False)
    return [getattr(cfg, f) for f in TRAIN_FIELDS]


def _rows(names: tuple[str, ...]) -> list[list[str]]:
    """``names`` cut into rows before each of ``ROW_STARTS`` (a new field joins the row before it)."""
    rows: list[list[str]] = []
    for n in names:
        if not rows or n in ROW_STARTS:
            rows.append([])
        rows[-1].append(n)
    return rows


@dataclass
class TrainTab:
    preset: gr.Dropdown
    widgets: list
    start: gr.Button
    stop: gr.Button
    notice: gr.Markdown
    progress: gr.HTML
    table: gr.Dataframe
    plot: gr.LinePlot
    summary: gr.Markdown
    metrics_file: gr.File

    @property
    def outputs(self) -> list:
        return [self.progress, self.table, self.plot, self.summary, self.metrics_file]


def build_train_tab(offline: bool) -> TrainTab:
    start_preset = "quick-cpu" if offline else "defaults"
    d = PRESETS[start_preset]
    preset = gr.Dropdown(PRESET_CHOICES, value=start_preset, label="Preset", elem_id="train-preset")
    built: dict[str, gr.components.Component] = {}

    def place(names: tuple[str, ...]) -> None:
        for row in _rows(names):
            with gr.Row():
                for n in row:
                    built[n] = setting_widget(C.TrainConfig, n, value=getattr(d, n),
                                              elem_id=f"train-{n.replace('_', '-')}", **WIDGET_OVERRIDES.get(n, {}))

    split = TRAIN_FIELDS.index(MORE_FROM)
    place(TRAIN_FIELDS[:split])
    with gr.Accordion("More settings", open=False):
        place(TRAIN_FIELDS[split:])
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="start-button")
        stop = gr.Button("Stop", variant="stop", elem_id="stop-button")
    notice = gr.Markdown(elem_id="train-notice")
    progress = gr.HTML("<p>No training yet.</p>", elem_id="train-progress")
    with gr.Row():
        table = gr.Dataframe(pd.DataFrame(columns=TABLE_COLUMNS), label="Epochs", interactive=False,
                             elem_id="epoch-table", scale=3)
        plot = gr.LinePlot(_plot_frame(()), x="epoch", y="loss", color="series", label="Loss per token",
                           x_title="epoch", y_title="loss", x_axis_format=".3~r", elem_id="loss-plot", scale=2)
    summary = gr.Markdown(elem_id="train-summary")
    metrics_file = gr.File(label="Metrics CSV", interactive=False, height=90, elem_id="metrics-file")
    widgets = [built[n] for n in TRAIN_FIELDS]
    preset.change(preset_values, inputs=preset, outputs=widgets, api_visibility="private")
    return TrainTab(preset, widgets, start, stop, notice, progress, table, plot, summary, metrics_file)


# -- rendering snapshots -----------------------------------------------------------------------
def _plot_frame(epochs) -> pd.DataFrame:
    rows = [{"epoch": e.epoch, "loss": e.train_loss, "series": "train"} for e in epochs]
    rows += [{"epoch": e.epoch, "loss": e.val_loss, "series": "validation"} for e in epochs]
    return pd.DataFrame(rows, columns=["epoch", "loss", "series"])


def _table(epochs) -> pd.DataFrame:
    best = min(epochs, key=lambda e: e.val_loss).epoch if epochs else None
    return pd.DataFrame([[e.epoch, round(e.train_loss, 4), round(e.val_loss, 4), round(e.perplexity, 1),
                          round(e.epoch_seconds, 1), round(e.tokens_per_sec), f"{e.learning_rate:.2e}",
                          "★ best" if e.epoch == best else ""] for e in epochs], columns=TABLE_COLUMNS)


def _progress_html(s: JobSnapshot) -> str:
    notes = "".join(f"<p>⚠️ {html.escape(n)}</p>" for n in s.notices)
    t = s.train
    model = parent_run_id(t.model) or t.model  # a run continued from: its name, not a server path
    # This job's own settings: after a reload the controls above show defaults (they set the *next* run).
    settings = (f"{t.epochs} epochs, batch {t.batch_size}, learning rate {t.learning_rate:g}, "
                f"max length {t.max_length}, loss on {t.loss_on}")
    head = (f"{notes}<p>{html.escape(s.data_summary)} Model: <code>{html.escape(model)}</code> "
            f"({html.escape(settings)}).</p>")
    if s.done:
        return head
    p = s.progress
    if p is None:
        return head + "<p>Preparing the model and tokenizer…</p>"
    epoch_idx = min(int(math.floor(p.epoch + 1e-9)), s.train.epochs - 1)
    within = max(0.0, min(1.0, p.epoch - epoch_idx))
    return (head + f"<p>Epoch {epoch_idx + 1} of {s.train.epochs}: {within:.0%} of this epoch · step {p.step} "
            f"of {p.total_steps} overall · {s.elapsed:.0f} s elapsed</p>"
            f"<progress value='{within:.3f}' max='1' style='width:100%'></progress>")


def _summary_md(s: JobSnapshot) -> str:
    if s.error:
        return f"**{s.error}**"
    r = s.summary
    if r is None:
        return ""
    best = (f"best epoch **{r.best_epoch}** (validation loss {r.best_val_loss:.4f}, perplexity "
            f"{math.exp(min(r.best_val_loss, 50)):.1f})" if r.best_epoch else "no epoch finished, so no model saved")
    extra = f" {r.message}" if r.message else ""
    listed = " It is listed on the Generate tab." if r.best_epoch else ""
    return (f"**Run `{r.run_dir.name}` {r.status}**: {best}; {r.epochs_done} epoch(s) in {r.seconds:.0f} s."
            f"{extra} Saved in `{r.run_dir.parent.name}/{r.run_dir.name}`.{listed}")


def _metrics_copy(s: JobSnapshot) -> str | None:
    """A copy of the run's metrics.csv named after the run, in the temp dir (served by gradio)."""
    if s.summary is None or not Run(s.summary.run_dir).metrics_path.is_file():
        return None
    dest = Path(tempfile.gettempdir()) / "symptomgen-downloads" / f"{s.summary.run_dir.name}-metrics.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Run(s.summary.run_dir).metrics_path, dest)
    return str(dest)


def render(s: JobSnapshot | None) -> tuple:
    if s is None:
        return ("<p>No training has run since the server started.</p>", _table(()), _plot_frame(()), "", None)
    return (_progress_html(s), _table(s.epochs), _plot_frame(s.epochs), _summary_md(s),
            _metrics_copy(s) if s.done else None)


def follow(manager: JobManager, job_id: int, runs_update):
    """Yield rendered views of a job until it ends.

    After the views come ``runs_update(snapshot)`` and the notice line: cleared on the first view (an old
    "Stopping…" from an earlier job) and on the last (the job has ended, so it is no longer stopping).
    """
    after, shown_epochs, last = -1, -1, 0.0
    while True:
        s = manager.wait(job_id, after, timeout=1.0)
        if s is None:
            return
        if s.version == after:
            continue  # no news yet
        wait_more = STREAM_INTERVAL_S - (time.monotonic() - last)
        if not s.done and len(s.epochs) == shown_epochs and wait_more > 0:
            time.sleep(wait_more)  # throttle step-by-step progress; wait() returns the newest state next
            continue
        if shown_epochs >= 0:  # epochs that ended during a throttle pause (fast epochs) still get a view each
            for k in range(shown_epochs + 1, len(s.epochs)):
                yield (*render(replace(s, epochs=s.epochs[:k], state="running", summary=None)), gr.skip(),
                       gr.skip())
        first = shown_epochs < 0
        after, shown_epochs, last = s.version, len(s.epochs), time.monotonic()
        yield (*render(s), runs_update(s), "" if first or s.done else gr.skip())
        if s.done:
            return


def wire_train(demo: gr.Blocks, tab: TrainTab, data: DataTab, manager: JobManager, runs_dropdown: gr.Dropdown,
               runs_choices) -> None:
    """Connect Start/Stop and the page-load re-attach; ``runs_choices()`` lists models for generation."""

    # The finished run's id goes to a hidden box, whose change selects it on the Generate tab.  The dropdown
    # itself is not an output of Start: a refused Start (bad settings) would put an error badge over it.
    last_run = gr.Textbox(visible=False, elem_id="last-run")

    def runs_update(s: JobSnapshot):
        return s.summary.run_dir.name if s.done and s.summary and s.summary.best_epoch else gr.skip()

    def select_run(run_id: str):
        choices = runs_choices()
        return gr.update(choices=choices, value=run_id) if run_id else gr.update(choices=choices)

    params = (*DATA_INPUTS, *TRAIN_FIELDS)  # the /train API's parameter names: clients call it by keyword

    @user_errors
    @named_parameters(params)
    def train(*values):
        """Start a training run and stream its progress (per-epoch rows, loss plot, summary)."""
        given = dict(zip(params, values, strict=True))
        dcfg = data_config(**{n: given[n] for n in DATA_INPUTS})
        tcfg = train_config(**{n: given[n] for n in TRAIN_FIELDS})
        snap = manager.start(dcfg, tcfg)
        yield from follow(manager, snap.job_id, runs_update)

    def attach():
        """Show the latest job (running or finished) and keep streaming it while it runs."""
        s = manager.snapshot()
        if s is None:
            yield (*render(None), gr.skip(), gr.skip())
            return
        # Only a job that ends while this page follows it selects its run; for one that had already ended,
        # the page's own load picks the newest run (two selections at once would race).
        yield from follow(manager, s.job_id, (lambda snap: gr.skip()) if s.done else runs_update)

    def stop():
        """Ask the running job to stop after the current optimizer step."""
        return manager.stop()

    outputs = tab.outputs + [last_run, tab.notice]
    # Streams mostly wait on the job, so they take no CPU: no concurrency limit (many tabs may follow).
    # The tab draws its own progress: a small spinner, not an overlay on every output.
    tab.start.click(train, inputs=data.inputs + tab.widgets, outputs=outputs, api_name="train",
                    concurrency_limit=None, show_progress="minimal")
    tab.stop.click(stop, outputs=tab.notice, api_name="stop", concurrency_limit=None)
    demo.load(attach, outputs=outputs, api_name="attach", concurrency_limit=None, show_progress="hidden")
    last_run.change(select_run, inputs=last_run, outputs=runs_dropdown, api_visibility="private",
                    show_progress="hidden")
