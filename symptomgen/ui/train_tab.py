"""Train tab: model and hyperparameters, Start/Stop, and the job's live view.

The job lives in the server's ``JobManager`` (the page context's); this tab only starts, stops and
follows it, through the methods of ``TrainActions`` (callable without a page).
``follow`` turns job snapshots into widget values (progress, per-epoch table, loss
plot, summary, metrics CSV) and streams them; the page's load event re-attaches to a
running job the same way.
"""

from __future__ import annotations

import html
import math
import shutil
import time
from dataclasses import dataclass, replace

import gradio as gr
import pandas as pd

from .. import config as C
from ..catalog import model_choices, resumable_choices
from ..errors import InvalidInput, UserError, first_line
from ..events import perplexity
from ..jobs import JobManager, JobSnapshot
from ..layout import DOWNLOADS_DIR
from ..runs import Run, parent_run_id
from .charts import loss_chart, loss_points, score_chart
from .context import PageContext
from .data_tab import DATA_INPUTS, DataTab, data_config
from .fit import EpochTimer, duration, fix_updates, fix_values
from .form import cli_command, form_of
from .widgets import (
    CUSTOM,
    CUSTOM_LABEL,
    ListedChoices,
    chart_toggles,
    checked_types,
    link_preset,
    named_parameters,
    setting_widget,
    user_errors,
)

PRESETS: dict[str, C.TrainConfig] = {"defaults": C.TrainConfig(), **C.TRAIN_PRESETS}
PRESET_CHOICES = [("Defaults (distilgpt2, loss on the whole text)", "defaults"),
                  ("Seed notebook (its exact settings)", "seed-notebook"),
                  ("Quick CPU demo (small scratch model)", "quick-cpu")]
MODEL_CHOICES = [C.DEFAULT_MODEL, "gpt2", "gpt2-medium", C.SCRATCH_MODEL]
# TrainConfig fields shown as widgets, in field order: the order of ``TrainTab.widgets``, of the presets'
# values and of the Start handler's (and so the /train API's) parameters after the data tab's.
TRAIN_FIELDS = C.ui_fields(C.TrainConfig)
# Layout only: a new row of widgets starts at each of these fields; from MORE_FROM on, under "More settings".
ROW_STARTS = ("learning_rate", "scheduler", "grad_accum", "scratch_layers", "lora_rank", "report_to")
MORE_FROM = "scheduler"
WIDGET_OVERRIDES = {"model": {"choices": MODEL_CHOICES}}  # suggestions; any Hub id or scratch is accepted
TABLE_COLUMNS = ["epoch", "train loss", "val loss", "perplexity", "seconds", "tokens/s", "learning rate", "best"]
STREAM_INTERVAL_S = 0.4  # at most this often for step progress; epoch rows are sent at once


def offline_model_choices() -> list[tuple[str, str]]:
    """The model list while the Hub cannot be reached: a Hub model not in the local cache says in its label that it
    would train the small scratch model instead (the swap the estimate and Start then announce)."""
    from ..offline import needs_hub_for_model

    return [(f"{m} (not downloaded; offline it trains scratch)" if needs_hub_for_model(m) else m, m)
            for m in MODEL_CHOICES]


def train_config(**values) -> C.TrainConfig:
    """Widget values by field name → ``TrainConfig`` (its ``__post_init__`` raises ``InvalidInput`` on bad values)."""
    return C.TrainConfig(**{**values, "model": (values.get("model") or "").strip()})


def api_types() -> dict[str, object]:
    """What the /train API accepts per parameter (``checked_types``): text for the data widgets' text and choices,
    and for each setting what its kind holds (numbers are range-checked by their widgets); None where a widget
    can be empty.  The upload is the file widget's."""
    kinds = {"number": float | None, "switch": bool | None, "choice": str | None, "text": str | None}
    types = {n: C.setting(C.TrainConfig, n).kind for n in TRAIN_FIELDS}
    out: dict[str, object] = {n: kinds[k] for n, k in types.items()}
    out.update({n: str | None for n in DATA_INPUTS if n not in ("upload", "val_fraction", "split_seed")})
    return out


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
    plot: gr.HTML
    summary: gr.Markdown
    metrics_file: gr.File
    resume_run: gr.Dropdown | None = None
    resume: gr.Button | None = None
    estimate: gr.Button | None = None
    estimate_note: gr.Markdown | None = None
    preset_note: gr.Markdown | None = None
    fit_budget: gr.Button | None = None
    fit_epochs: gr.Button | None = None
    resume_box: gr.Accordion | None = None
    load_run: gr.Dropdown | None = None
    load_button: gr.Button | None = None
    cli_button: gr.Button | None = None
    cli_output: gr.Code | None = None

    @property
    def outputs(self) -> list:
        return [self.progress, self.table, self.plot, self.summary, self.metrics_file]


def build_train_tab(ctx: PageContext) -> TrainTab:
    start_preset = "quick-cpu" if ctx.offline else "defaults"
    d = PRESETS[start_preset]
    preset = gr.Dropdown(PRESET_CHOICES + [(CUSTOM_LABEL, CUSTOM)], value=start_preset, label="Preset",
                         elem_id="train-preset")
    preset_note = gr.Markdown(elem_id="train-preset-note")
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
        start = gr.Button("Start training", variant="primary", elem_id="start-button", scale=2)
        estimate = gr.Button("Estimate time", elem_id="estimate-button", scale=1)
        # Enabled (and red) only while a job runs: with none it would do nothing.
        stop = gr.Button("Stop", variant="secondary", interactive=False, elem_id="stop-button", scale=2)
    estimate_note = gr.Markdown("*Estimate time* times a few training steps of this model on this machine and "
                                "says how long an epoch should take, before you start.", elem_id="train-estimate")
    with gr.Row():  # the one-click fixes when the time budget does not fit the epochs (shown by the estimate)
        fit_budget = gr.Button(visible=False, elem_id="fit-budget-button", size="sm")
        fit_epochs = gr.Button(visible=False, elem_id="fit-epochs-button", size="sm")
    with gr.Accordion("Reuse settings: from a run, or as a CLI command", open=False, elem_id="reuse-settings"):
        with gr.Row():
            load_run = gr.Dropdown([], value=None, label="Run", info="any run's config.json: its data and settings "
                                   "fill the form", elem_id="load-run", scale=3)
            load_button = gr.Button("Load settings from this run", elem_id="load-settings-button", scale=1)
            cli_button = gr.Button("Show as CLI command", elem_id="cli-button", scale=1)
        cli_output = gr.Code(language="shell", label="The same run from the command line", interactive=False,
                             elem_id="cli-command", visible=False)
    with gr.Accordion("Resume a stopped or interrupted run", open=False, elem_id="resume-box") as resume_box:
        with gr.Row():
            resume_run = ListedChoices([], value=None, label="Run", info="continues from its last checkpoint, "
                                     "with its own settings", elem_id="resume-run", scale=3)
            resume = gr.Button("Resume", elem_id="resume-button", scale=1)
    notice = gr.Markdown(elem_id="train-notice")
    progress = gr.HTML("<p>No training yet.</p>", elem_id="train-progress")
    with gr.Row():
        table = gr.Dataframe(pd.DataFrame(columns=TABLE_COLUMNS), label="Epochs", interactive=False,
                             elem_id="epoch-table", scale=3, min_width=320)
        with gr.Column(scale=2, min_width=320):
            plot = gr.HTML(_plot(()), elem_id="loss-plot", padding=True)
            chart_toggles("loss-plot")  # smoothing, log scale, learning rate, grad norm: in the browser only
    summary = gr.Markdown(elem_id="train-summary")
    metrics_file = gr.File(label="Metrics CSV", interactive=False, height=90, elem_id="metrics-file")
    widgets = [built[n] for n in TRAIN_FIELDS]
    link_preset(preset, widgets, PRESETS, TRAIN_FIELDS)
    return TrainTab(preset, widgets, start, stop, notice, progress, table, plot, summary, metrics_file, resume_run,
                    resume, estimate, estimate_note, preset_note, fit_budget, fit_epochs, resume_box, load_run,
                    load_button, cli_button, cli_output)


# -- rendering snapshots -----------------------------------------------------------------------
def _plot(epochs, planned: int | None = None, steps=()) -> str:
    """The loss chart of one job: x spans the epochs it plans, so the curves grow into the plot; ``steps`` (the
    training loss every few steps) draws the curve within epochs."""
    points = loss_points([("", kind, e.epoch, loss) for e in epochs
                          for kind, loss in (("train", e.train_loss), ("validation", e.val_loss))])
    return loss_chart(points, epochs=planned, title="Loss per token (solid: train, dashed: validation)",
                      steps=list(steps)) + _score_plot(epochs, planned)


def _score_plot(epochs, planned: int | None = None) -> str:
    """The second chart under the loss chart (issue 21): the per-epoch sample's taught and unseen scores, and the
    constant answer's on the same unseen rows, dashed.  Empty (a note) for runs that score nothing per epoch."""
    rows = [(kind, e.epoch, v) for e in epochs for kind, v in (
        ("taught", getattr(e, "taught_score", None)), ("unseen", getattr(e, "unseen_score", None)),
        ("constant answer", getattr(e, "constant_score", None)))]
    return f"<div id='score-plot' style='margin-top:12px'>{score_chart(rows, planned)}</div>"


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
            f"of {p.total_steps} overall · {duration(s.elapsed)} elapsed{_time_left(s)}{_in_use(p)}</p>"
            f"<progress value='{within:.3f}' max='1' style='width:100%'></progress>")


def _in_use(p) -> str:
    """`` · 1.2 GiB in use · 48,000 tokens seen``: the training process's memory now (RAM, or GPU memory on CUDA)
    and the real tokens trained on so far, as the CLI's progress bar shows them; nothing before they are known."""
    from ..memory import gib

    parts = [f"{gib(p.memory_bytes)} in use"] if getattr(p, "memory_bytes", None) else []
    if getattr(p, "tokens_seen", None):
        parts.append(f"{p.tokens_seen:,} tokens seen")
    return "".join(f" · {x}" for x in parts)


def _time_left(s: JobSnapshot) -> str:
    """`` · about 40 s left``: to the end of the run (the trainer's estimate, or elapsed time scaled by the share
    of steps still to do); when the time budget ends the run sooner, it says so and at about which epoch."""
    p = s.progress
    left = getattr(p, "seconds_left", None)
    if left is None and p is not None and p.total_steps and p.step:
        left = s.elapsed * (p.total_steps - p.step) / p.step
    if left is None:
        return ""
    budget = getattr(p, "budget_left", None)
    if budget is not None and budget < left and p.total_steps:
        per_epoch = p.total_steps / max(1, s.train.epochs)
        speed = left / max(1, p.total_steps - p.step)  # seconds per step
        reach = int((p.step + budget / max(speed, 1e-9)) // per_epoch)
        return (f" · about {duration(left)} left for all {s.train.epochs} epochs, but the time budget ends the run in "
                f"{duration(budget)} (after about epoch {min(reach, s.train.epochs)}; the rest is not trained)")
    return f" · about {duration(left)} left"


def _summary_md(s: JobSnapshot) -> str:
    if s.error:
        return f"**{s.error}**"
    r = s.summary
    if r is None:
        return ""
    best = (f"best epoch **{r.best_epoch}** (validation loss {r.best_val_loss:.4f}, perplexity "
            f"{perplexity(r.best_val_loss):.1f})" if r.best_epoch else "no epoch finished, so no model saved")
    extra = f" {r.message}" if r.message else ""
    listed = " It is listed on the Generate tab." if r.best_epoch else ""
    return (f"**Run `{r.run_dir.name}` {r.status}**: {best}; {r.epochs_done} epoch(s) in {r.seconds:.0f} s."
            f"{extra} Saved in `{r.run_dir.parent.name}/{r.run_dir.name}`.{listed}")


def _metrics_copy(s: JobSnapshot) -> str | None:
    """A copy of the run's metrics.csv named after the run, in the temp dir (served by gradio)."""
    if s.summary is None or not Run(s.summary.run_dir).metrics_path.is_file():
        return None
    dest = DOWNLOADS_DIR / f"{s.summary.run_dir.name}-metrics.csv"  # swept after an hour (RunStore.sweep)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Run(s.summary.run_dir).metrics_path, dest)
    return str(dest)


def render(s: JobSnapshot | None) -> tuple:
    if s is None:
        return ("<p>No training has run since the server started.</p>", _table(()), _plot(()), "", None)
    return (_progress_html(s), _table(s.epochs), _plot(s.epochs, s.train.epochs, s.steps), _summary_md(s),
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


def runs_update(s: JobSnapshot):
    """The finished run's id (for the hidden box that selects it on the Generate tab), once the job has one."""
    return s.summary.run_dir.name if s.done and s.summary and s.summary.best_epoch else gr.skip()


PARAMS = (*DATA_INPUTS, *TRAIN_FIELDS)  # the /train API's parameter names: clients call it by keyword


class TrainActions:
    """The Train tab's handlers over one page's job manager and runs."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx
        self.timer = EpochTimer(ctx.store)  # the estimate and Start's budget check share its probes

    @property
    def jobs(self) -> JobManager:
        return self.ctx.jobs

    @user_errors
    @checked_types
    @named_parameters(PARAMS, api_types(), method=True)
    def train(self, *values):
        """Start a training run and stream its progress (per-epoch rows, loss plot, summary)."""
        self.jobs.refuse_if_busy()  # before any config is built or any data read
        given = dict(zip(PARAMS, values, strict=True))
        dcfg = data_config(**{n: given[n] for n in DATA_INPUTS})
        tcfg = train_config(**{n: given[n] for n in TRAIN_FIELDS})
        if not self.jobs.busy():  # a busy slot is refused by start() in its own words
            self.timer.refuse_unless_fits(dcfg, tcfg)  # a budget that cannot finish one epoch keeps nothing
        snap = self.jobs.start(dcfg, tcfg)
        yield from follow(self.jobs, snap.job_id, runs_update)

    def attach(self):
        """Show the latest job (running or finished) and keep streaming it while it runs."""
        s = self.jobs.snapshot()
        if s is None:
            yield (*render(None), gr.skip(), gr.skip())
            return
        # Only a job that ends while this page follows it selects its run; for one that had already ended,
        # the page's own load picks the newest run (two selections at once would race).
        yield from follow(self.jobs, s.job_id, (lambda snap: gr.skip()) if s.done else runs_update)

    @user_errors
    @named_parameters(PARAMS, method=True)
    def estimate(self, *values):
        """Seconds per epoch of these settings on this machine, before Start (``timing``)."""
        from ..timing import planned_seconds

        if self.jobs.busy():
            return "*A run is training now; estimate after it ends (timing now would compete with it).*"
        given = dict(zip(PARAMS, values, strict=True))
        dcfg = data_config(**{n: given[n] for n in DATA_INPUTS})
        tcfg = train_config(**{n: given[n] for n in TRAIN_FIELDS})
        # Start's own checks (model choice, offline fallback, data), less the disk limits and the GPU plan.
        ready, seconds = self.timer.check(dcfg, tcfg)
        tcfg = ready.train
        total = planned_seconds(seconds, tcfg)
        budget = " (the time budget stops it sooner)" if total < seconds * tcfg.epochs else ""
        notes = "".join(f"⚠️ {n}\n\n" for n in ready.notices)
        return (f"{notes}About **{duration(seconds)} per epoch** on this machine: {tcfg.epochs} epoch(s) ≈ "
                f"{duration(total)}{budget}. Timed from a few steps of a model shaped like "
                f"`{parent_run_id(tcfg.model) or tcfg.model}`; loading it and saving checkpoints add a little.")

    def stop(self):
        """Ask the running job to stop after the current optimizer step."""
        said = self.jobs.stop()
        s = self.jobs.snapshot()
        if said.startswith("Stopping") and s is not None and s.train.save_checkpoints:
            said += (" To continue it later, open *Resume a stopped or interrupted run* below: it is selected "
                     "there once it has stopped.")
        return said

    @user_errors
    @checked_types
    def resume(self, run_id: str | None):
        """Continue a stopped, failed or interrupted run from its last checkpoint, and stream it (as /train)."""
        if not (run_id or "").strip():
            raise InvalidInput("Pick a run to resume first (stopped, failed or interrupted runs with a checkpoint).")
        self.jobs.refuse_if_busy()
        snap = self.jobs.resume(run_id)
        yield from follow(self.jobs, snap.job_id, runs_update)

    def resumable(self):
        """The runs that can be resumed now (with at least one finished epoch), the newest selected."""
        choices = [c for c in resumable_choices(self.ctx.store) if self.ctx.store.get(c[1]).record().epochs_done]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def resume_view(self):
        """The resume list (``resumable``) and its accordion, open when there is a run to resume."""
        listed = self.resumable()
        return listed, gr.update(open=bool(listed["choices"]))

    def controls(self):
        """Start and Stop as the slot is now: while a job runs, Stop is red and Start says it is taken."""
        busy = self.jobs.busy()
        return (gr.update(interactive=not busy, value="Training… (Stop ends it)" if busy else "Start training"),
                gr.update(interactive=busy, variant="stop" if busy else "secondary"))

    def running_controls(self):
        """Start pressed in this tab: Stop is live at once (the job starts in the next call)."""
        return (gr.update(interactive=False, value="Training… (Stop ends it)"),
                gr.update(interactive=True, variant="stop"))

    @named_parameters(PARAMS, method=True)
    def estimate_view(self, *values):
        """The estimate for the page (a busy line first, then the figure with the budget's fit and its fixes, or
        why it cannot be timed), with what the fix buttons would set."""
        yield ("⏳ *Timing a few training steps of this model on this data…*", gr.skip(), gr.skip(), gr.skip())
        try:
            note = self.estimate.__wrapped__(self, *values)
            given = dict(zip(PARAMS, values, strict=True))
            fit = None
            if not self.jobs.busy():
                fit = self.timer.fit(data_config(**{n: given[n] for n in DATA_INPUTS}),
                                     train_config(**{n: given[n] for n in TRAIN_FIELDS}))
        except UserError as exc:
            yield f"⚠️ {first_line(exc)}", *fix_updates(None), {}
            return
        except (MemoryError, RuntimeError) as exc:  # the probe's model does not fit this server's memory
            yield f"⚠️ This model could not be timed here: {first_line(exc)[:200]}", *fix_updates(None), {}
            return
        extra = fit.sentence() if fit is not None else ""
        yield (f"{extra}\n\n{note}" if extra else note), *fix_updates(fit), fix_values(fit)

    @named_parameters(PARAMS, method=True)
    def fit_check(self, *values):
        """Before Start: the estimate when there is a budget; a budget that cannot finish one epoch shows its fixes
        and stops the chain (``refuse_unless``).  Anything else wrong is left to Start, which says it."""
        given = dict(zip(PARAMS, values, strict=True))
        try:
            dcfg = data_config(**{n: given[n] for n in DATA_INPUTS})
            tcfg = train_config(**{n: given[n] for n in TRAIN_FIELDS})
            if not tcfg.max_minutes or self.jobs.busy():
                return gr.skip(), *fix_updates(None), {}, True
            fit = self.timer.fit(dcfg, tcfg)
        except Exception:  # noqa: BLE001 - Start itself raises it, in its own place
            return gr.skip(), gr.skip(), gr.skip(), {}, True
        return (fit.sentence() or gr.skip()), *fix_updates(fit), fix_values(fit), not fit.refused

    @staticmethod
    def refuse_unless(ok: bool):
        if not ok:
            raise gr.Error("Start refused: the time budget cannot finish one epoch of this data. Use a fix under "
                           "the Start button (or change the budget).", print_exception=False)

    def load_choices(self):
        """Every run with settings, newest first (for "Load settings from a run")."""
        return gr.update(choices=[r.run_id for r in self.ctx.store.list()])

    def load_settings(self, run_id: str | None):
        """The form filled from a run's config.json: its data (a file only while it exists here) and settings."""
        if not (run_id or "").strip():
            raise gr.Error("Pick a run whose settings to load.", print_exception=False)
        rec = self.ctx.store.get(run_id).record()
        if rec.data is None or rec.train is None:
            raise gr.Error(f"Run {run_id} has no saved settings.", print_exception=False)
        values = form_of(rec.data, rec.train)
        data_out = [values.get(n, gr.skip()) for n in DATA_INPUTS]
        note = f"Settings of run `{run_id}` loaded."
        if values.get("source") is None:
            note += " Its data file is no longer on this server: upload it again on the Data tab."
        return (*data_out, CUSTOM, *[values[n] for n in TRAIN_FIELDS], note)

    @named_parameters(PARAMS, method=True)
    def cli_view(self, *values):
        """The form as a ``python -m symptomgen train`` command."""
        try:
            line = cli_command(dict(zip(PARAMS, values, strict=True)))
        except UserError as exc:
            return gr.update(visible=True, value=f"# {first_line(exc)}")
        return gr.update(visible=True, value=line)

    def select_run(self, run_id: str):
        """The Generate tab's model list, selecting ``run_id`` when given."""
        choices = model_choices(self.ctx.store)
        return gr.update(choices=choices, value=run_id) if run_id else gr.update(choices=choices)


QUICK_PRESET_NOTE = ("*Quick CPU demo* is sized for the bundled sample, so it no longer applies to your own data: "
                     "the preset reads **Custom** and its settings stay as they are. The estimate below checks them "
                     "against your data (a time budget that cannot finish one epoch is refused at Start).")


def preset_for_source(source: str, preset: str):
    """Own data chosen while a preset built for the bundled sample is on: the dropdown says Custom, with why."""
    if source in ("upload", "hub") and preset == "quick-cpu":
        return CUSTOM, QUICK_PRESET_NOTE
    return gr.skip(), "" if source == "sample" else gr.skip()


def wire_train(demo: gr.Blocks, tab: TrainTab, data: DataTab, ctx: PageContext, runs_dropdown: gr.Dropdown) -> None:
    """Connect Start/Stop, resume and the page-load re-attach; a finished run is selected in ``runs_dropdown``."""

    # The finished run's id goes to a hidden box, whose change selects it on the Generate tab.  The dropdown
    # itself is not an output of Start: a refused Start (bad settings) would put an error badge over it.
    last_run = gr.Textbox(visible=False, elem_id="last-run")
    fixes, fits = gr.State({}), gr.State(True)
    actions = TrainActions(ctx)
    train, attach, stop = actions.train, actions.attach, actions.stop
    resume, resumable, select_run = actions.resume, actions.resumable, actions.select_run
    form = data.inputs + tab.widgets
    controls = [tab.start, tab.stop]
    hidden = dict(api_visibility="private", show_progress="hidden")

    outputs = tab.outputs + [last_run, tab.notice]
    # Streams mostly wait on the job, so they take no CPU: no concurrency limit (many tabs may follow).
    # The tab draws its own progress: a small spinner, not an overlay on every output.
    # A refused Start (a job already running, bad settings) marks only the notice under the buttons: the
    # previous run's progress, table and plot stay as they were, not painted over with "Error" badges.
    # Before it, the time budget is checked against this data (one probe, shared with the estimate): one that
    # cannot finish an epoch stops the chain with its number and fixes.
    (tab.start.click(actions.fit_check, inputs=form, outputs=[tab.estimate_note, tab.fit_budget, tab.fit_epochs,
                                                              fixes, fits],
                     api_visibility="private", concurrency_limit=1, concurrency_id="estimate",
                     show_progress="minimal", show_progress_on=tab.estimate_note)
     .then(actions.refuse_unless, inputs=fits, **hidden)
     .success(actions.running_controls, outputs=controls, **hidden)
     .success(train, inputs=form, outputs=outputs, api_name="train", concurrency_limit=None,
              show_progress="minimal", show_progress_on=tab.notice)
     .then(actions.controls, outputs=controls, **hidden))
    # Stop never waits in the queue (behind a flood of generations, or when the queue is full).
    tab.stop.click(stop, outputs=tab.notice, api_name="stop", queue=False)
    if tab.estimate is not None:
        estimate_out = [tab.estimate_note, tab.fit_budget, tab.fit_epochs, fixes]
        tab.estimate.click(actions.estimate_view, inputs=form, outputs=estimate_out, api_visibility="private",
                           concurrency_limit=1, concurrency_id="estimate", show_progress="minimal",
                           show_progress_on=tab.estimate_note)
        # The estimate follows the data, the model, the batch and the budget as they change (always the last
        # change: a burst of edits costs one probe more at most).
        knobs = [w for n, w in zip(TRAIN_FIELDS, tab.widgets) if n in ("model", "batch_size", "epochs", "max_minutes")]
        gr.on([data.source.input, data.target_column.input, data.prompt_column.input, data.upload.upload,
               *[k.input for k in knobs], tab.preset.input], actions.estimate_view, inputs=form,
              outputs=estimate_out, trigger_mode="always_last", concurrency_limit=1, concurrency_id="estimate",
              **hidden)
        wanted = {"max_minutes": tab.widgets[TRAIN_FIELDS.index("max_minutes")],
                  "epochs": tab.widgets[TRAIN_FIELDS.index("epochs")]}
        for button, name in ((tab.fit_budget, "max_minutes"), (tab.fit_epochs, "epochs")):
            button.click(lambda f, name=name: (f.get(name, gr.skip()), CUSTOM, gr.update(visible=False),
                                               gr.update(visible=False),
                                               f"Set {name.replace('max_minutes', 'the time budget')} to "
                                               f"{f.get(name)}: this run now fits its budget."),
                         inputs=fixes, outputs=[wanted[name], tab.preset, tab.fit_budget, tab.fit_epochs,
                                                tab.estimate_note], **hidden)
    if tab.preset_note is not None:
        data.source.change(preset_for_source, inputs=[data.source, tab.preset], outputs=[tab.preset, tab.preset_note],
                           **hidden)
    if tab.resume is not None:
        resume_out = [tab.resume_run, tab.resume_box] if tab.resume_box is not None else [tab.resume_run]
        (tab.resume.click(actions.running_controls, outputs=controls, **hidden)
         .then(resume, inputs=tab.resume_run, outputs=outputs, api_name="resume", concurrency_limit=None,
               show_progress="minimal", show_progress_on=tab.notice)
         .then(actions.controls, outputs=controls, **hidden)
         .then(actions.resume_view, outputs=resume_out, **hidden))
        # The list is read when opened: runs stop, fail and finish while the page stays open.
        tab.resume_run.focus(resumable, outputs=tab.resume_run, queue=False, **hidden)
        demo.load(actions.resume_view, outputs=resume_out, **hidden)
        tab.notice.change(actions.resume_view, outputs=resume_out, **hidden)  # e.g. "Stopping…", and when a job ends
    if tab.load_run is not None:
        tab.load_run.focus(actions.load_choices, outputs=tab.load_run, **hidden)
        tab.load_button.click(actions.load_settings, inputs=tab.load_run,
                              outputs=[*data.inputs, tab.preset, *tab.widgets, tab.estimate_note], **hidden)
        tab.cli_button.click(actions.cli_view, inputs=form, outputs=tab.cli_output, **hidden)
    # Its own group with no limit: a page's re-attach never waits behind generations.
    (demo.load(attach, outputs=outputs, api_name="attach", concurrency_limit=None, concurrency_id="attach",
               show_progress="hidden")
     .then(actions.controls, outputs=controls, **hidden))
    demo.load(actions.controls, outputs=controls, **hidden)
    last_run.change(select_run, inputs=last_run, outputs=runs_dropdown, api_visibility="private",
                    show_progress="hidden")
