"""Evaluate tab: honest numbers for a finished run, its base model, and several runs' loss curves.

``evaluate`` runs ``evaluation.evaluate_run`` on the run's own stored validation split
("unseen": rows it never trained on) and on as many of its training rows ("taught"), for
the fine-tuned model and its base, greedy and optionally with a sampling preset, and
renders a summary table (each row labelled with its set, with the constant-answer and lookup
baselines beside, and one sentence naming the best above it) plus a per-disease table per set
with the matched symptom phrases highlighted.  Evaluation is CPU-heavy, so a "rows" limit
keeps it short and the status line ticks while it works.  ``compare_runs`` draws the
train/validation loss of several runs (their ``metrics.csv``) on one plot.  The handlers
are methods of ``EvaluateActions`` (callable without a page).  The keep-and-share accordion
lives in ``share_panel``.
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import config as C
from ..baselines import BASELINE_LABELS, BASELINES, verdict
from ..catalog import data_label, model_choices, run_choices, runs_with_curves, tokenizer_label
from ..errors import InvalidInput
from ..phrases import phrase_pieces
from ..runs import Run
from ..store import RunStore
from .calls import bounded_names
from .charts import PALETTE, loss_chart, loss_points
from .context import PageContext
from .share_panel import build_share_section
from .widgets import ListedChoices, chart_toggles, checked_types, setting_widget, user_errors

SAMPLING_CHOICES = [("Greedy only (fastest)", "none"), ("Greedy + seed-notebook sampling", "seed-notebook"),
                    ("Greedy + creative sampling", "creative")]
SUMMARY_COLUMNS = ["rows", "metric", "fine-tuned", "base model", "change", *BASELINE_LABELS.values()]
# The sets evaluate_run scores, as the summary's "rows" column names them, unseen first.
SET_NAMES = [("unseen", "unseen (validation)"), ("taught", "taught (training)")]
COMPARE_TITLE = "Loss per real token: one colour per run (solid: train, dashed: validation)"
MAX_COMPARED = 8  # runs on one compare plot (more are unreadable, and each costs a metrics read)
COMPARE_COLUMNS = ["run", "model", "epochs", "best epoch", "best val loss", "data"]  # data: added last (API)
# (label, EvalReport field); lower is better for the first two, higher for the rest.
METRICS = [("validation loss (per real token)", "val_loss"), ("perplexity", "perplexity"),
           ("symptom precision (greedy)", "precision"), ("symptom recall (greedy)", "recall"),
           ("symptom F1 (greedy)", "f1"), ("symptom precision (sampled)", "sampled_precision"),
           ("symptom recall (sampled)", "sampled_recall"), ("symptom F1 (sampled)", "sampled_f1"),
           # Free-text runs (``scoring``): ROUGE instead of phrase overlap; a run has one kind or the other.
           ("ROUGE-L (greedy)", "rougeL"), ("ROUGE-1 (greedy)", "rouge1"),
           ("ROUGE-L (sampled)", "sampled_rougeL"), ("ROUGE-1 (sampled)", "sampled_rouge1")]


# -- rendering --------------------------------------------------------------------------------
def mark_phrases(text: str, matched: set[str]) -> str:
    """``text`` HTML-escaped, with the phrases in ``matched`` (normalised as evaluation does) in bold."""
    out = []
    for part, norm in phrase_pieces(text):
        if norm and norm in matched:
            core = part.strip()
            lead, trail = part[: len(part) - len(part.lstrip())], part[len(part.rstrip()):]
            out.append(f"{html.escape(lead)}<mark><b>{html.escape(core)}</b></mark>{html.escape(trail)}")
        else:
            out.append(html.escape(part))
    return "".join(out)


def rows_html(table: pd.DataFrame, title: str = "") -> str:
    """The per-disease table (under ``title``); every cell from the data is escaped (names and symptoms are user
    data)."""
    head_html = f"<h4>{html.escape(title)}</h4>" if title else ""
    if table is None or not len(table):
        return head_html + "<p>No rows evaluated.</p>"
    text = "rougeL" in table.columns  # a free-text run's rows carry ROUGE, not phrases: no "matched" column
    score = "rougeL" if text else "f1"
    head = "".join(f"<th>{h}</th>" for h in ("#", "disease", "reference" if text else "reference symptoms",
                                             "generated (greedy)", *(() if text else ("matched",)),
                                             "ROUGE-L" if text else "F1"))
    body = []
    for i, r in enumerate(table.itertuples(index=False), 1):
        matched = set() if text else {m for m in str(r.matched).split(", ") if m}
        count = "" if text else f"<td>{len(matched)}</td>"
        body.append(f"<tr><td>{i}</td><td>{html.escape(str(r.name))}</td>"
                    f"<td>{mark_phrases(r.reference, matched)}</td><td>{mark_phrases(r.generated, matched)}</td>"
                    f"{count}<td>{float(getattr(r, score)):.2f}</td></tr>")
    note = ("ROUGE-L: the words the generated text shares with the reference, in order (free text has no symptom "
            "phrases to match)." if text else "Highlighted: symptom phrases found in both the reference and the "
            "generated text (lower-cased, split on commas).")
    return (f"{head_html}<table class='eval-rows'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<p><small>{note}</small></p>")


def summary_frame(result: dict) -> pd.DataFrame:
    """One row per metric and set of rows (unseen, then taught): fine-tuned, base, the change, and the constant
    answer's and the lookup's scores on the same rows (blank for losses and sampled scores: they have none)."""
    rows = []
    for key_set, set_label in SET_NAMES:
        scored = result.get(key_set)
        if scored is None:
            continue
        ft, base = scored["fine_tuned"], scored.get("base") or {}
        for label, key in METRICS:
            a, b = ft.get(key), base.get(key)
            if a is None and b is None:
                continue  # sampled numbers when no sampling was asked for
            if key == "val_loss" and key_set == "taught":
                label = "training-row loss (per real token)"
            change = round(a - b, 4) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
            rows.append([set_label, label, a, b, change, *((scored.get(k) or {}).get(key) for k in BASELINES)])
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def curves_frame(store: RunStore, run_ids, rates: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the chart's points: epoch, loss, series, run, kind; one summary row per run).  ``rates``, when given, is
    filled with each run's learning rate per epoch (``run id → [(epoch, rate)]``, from its metrics.csv)."""
    if isinstance(run_ids, str):
        run_ids = [run_ids]
    points, summary = [], []
    for run_id in run_ids or []:
        run = store.get(run_id)
        m, rec = run.metrics(), run.record()
        for col, kind in (("training_loss", "train"), ("validation_loss", "validation")):
            points += [(run.run_id, kind, e, v) for e, v in zip(m["epoch"], m[col]) if pd.notna(v)]
        if rates is not None:
            lr = pd.to_numeric(m["learning_rate"], errors="coerce")
            rates[run.run_id] = [(float(e), float(v)) for e, v in zip(m["epoch"], lr) if pd.notna(v) and pd.notna(e)]
        best = rec.best_val_loss
        summary.append([run.run_id, rec.model, len(m), rec.best_epoch,
                        round(best, 4) if best is not None else None, data_label(rec)])
    return loss_points(points), pd.DataFrame(summary, columns=COMPARE_COLUMNS)


def compare_warning(store: RunStore, run_ids) -> str:
    """One line when the runs on one plot were trained on different data or measure loss in different tokenizers
    (their losses are then not comparable), else ""."""
    recs = [store.get(r).record() for r in ([run_ids] if isinstance(run_ids, str) else run_ids or [])]
    if len(recs) < 2:
        return ""
    why = []
    data = {data_label(r) for r in recs}
    if len(data) > 1:
        why.append(f"different data ({', '.join(sorted(data))})")
    tokenizers = {tokenizer_label(r) for r in recs}
    if len(tokenizers) > 1:
        why.append(f"different tokenizers ({'; '.join(sorted(tokenizers))})")
    if not why:
        return ""
    return ("⚠️ These runs differ in " + " and ".join(why) + ": a loss per token is measured on other rows or "
            "other tokens, so lower here does not mean better.")


def _status(run: Run, n: int, passes: str, elapsed: float, done: bool = False) -> str:
    what = (f"{n} validation row(s) (unseen) and {n} training row(s) (taught) of run `{run.run_id}`, fine-tuned "
            f"and base model, {passes}")
    if not done:
        return (f"Evaluating {what}… {elapsed:.0f} s elapsed (about {n} × 4 generations per pass on CPU)."
                "<progress style='width:100%'></progress>")
    return (f"**Done:** evaluated {what} in {elapsed:.0f} s. *Unseen* rows come from the run's own validation "
            "split, never from its training rows: how it does on rows it never saw. *Taught* rows are a seeded "
            "sample of its training rows: how faithfully it reproduces what it was taught. Lower loss/perplexity "
            "and higher precision/recall/F1 (ROUGE for free text) are better; *change* is fine-tuned minus base. "
            "*Constant answer* (one answer for every row) and *lookup* (the training target of the same or the most "
            "similar taught name) are built from the training rows alone: a model that learned something beats them.")


# -- the tab ----------------------------------------------------------------------------------
@dataclass
class EvaluateTab:
    run: gr.Dropdown
    compare: gr.Dropdown


class EvaluateActions:
    """The Evaluate tab's handlers over one page's runs."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx

    @user_errors
    @checked_types
    def evaluate(self, run_id: str | None, rows: int | None, sampling: str):
        """Evaluate a finished run and its base model on the run's own validation rows (unseen) and on as many of
        its training rows (taught), scored apart."""
        from ..evaluation import evaluate_run

        run = self.ctx.store.open(run_id)
        if sampling not in {v for _, v in SAMPLING_CHOICES}:
            raise InvalidInput(f"Decoding must be one of {', '.join(v for _, v in SAMPLING_CHOICES)}.")
        settings = None if sampling == "none" else C.GENERATION_PRESETS[sampling].with_(num_return_sequences=1)
        n_val = len(run.split_frames()[1])
        if n_val == 0:
            raise InvalidInput(f"Run {run.run_id} has no validation rows to evaluate.")
        if rows is None or isinstance(rows, bool) or not isinstance(rows, (int, float)) or rows != rows:
            raise InvalidInput("Validation rows to evaluate must be a number.")
        n = min(int(rows), n_val)
        passes = "greedy" + (f" and {sampling} sampling" if settings else "")
        result: dict = {}
        stop = threading.Event()

        def work():
            try:
                result["out"] = evaluate_run(run.path, sampling=settings, limit=n, stop=stop)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the handler, so the page shows its sentence
                result["error"] = exc

        started = time.monotonic()
        worker = threading.Thread(target=work, daemon=True, name=f"evaluate-{run.run_id}")
        worker.start()
        try:
            yield _status(run, n, passes, 0.0), pd.DataFrame(columns=SUMMARY_COLUMNS), "", ""
            while worker.is_alive():
                worker.join(timeout=1.0)
                if worker.is_alive():
                    yield _status(run, n, passes, time.monotonic() - started), gr.skip(), gr.skip(), gr.skip()
        finally:
            # Cancelled or disconnected (the generator is closed): the worker stops after its current row,
            # so an abandoned evaluation does not keep a core busy behind the one-at-a-time limit.
            stop.set()
        if "error" in result:
            raise result["error"]
        out = result["out"]
        note = _status(run, n, passes, time.monotonic() - started, done=True)
        sentence = verdict(out)  # the one sentence naming the best of model, base and baselines
        if sentence:
            note += f"\n\n**{sentence}**"
        unseen_base = out["unseen"].get("base") or {}
        if "error" in unseen_base:
            note += f"\n\n⚠️ Base model not evaluated: {unseen_base['error']}"
        yield (note, summary_frame(out), rows_html(out["table"], "Unseen: validation rows (never trained on)"),
               rows_html(out.get("taught_table"), "Taught: training rows (a seeded sample)"))

    @user_errors
    @checked_types
    def compare_runs(self, runs: list[str] | None):
        """Train and validation loss per epoch of several runs (at most 8, repeats counted once), on one plot."""
        names = bounded_names(runs, MAX_COMPARED, "runs to compare")
        rates: dict = {}
        points, table = curves_frame(self.ctx.store, names, rates)
        warning = compare_warning(self.ctx.store, names)
        shown = f"<p class='sg-compare-warning'>{html.escape(warning)}</p>" if warning else ""
        # The learning rate per epoch, a line per run in its colour (hidden until "Learning rate" is ticked).
        colours = {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(dict.fromkeys(points["run"]))}
        aux = {"lr": [(r, colours[r], rates[r]) for r in colours if rates.get(r)]}
        return shown + loss_chart(points, title=COMPARE_TITLE, aux=aux), table

    def refresh_choices(self, current, chosen, picked: bool = True):
        """The finished runs (newest first) and the runs with loss curves (the compared ones kept while listed).
        A run the visitor ``picked`` stays selected while listed; otherwise the newest is, so a run that just
        finished is what the tab shows."""
        choices = run_choices(self.ctx.store)
        values = [v for _, v in choices]
        curves = runs_with_curves(self.ctx.store)
        listed = set(curves)
        given = chosen if isinstance(chosen, list) else []
        keep = [c for c in dict.fromkeys(c for c in given if isinstance(c, str)) if c in listed][:MAX_COMPARED]
        run = current if picked and current in values else (values[0] if values else None)
        return gr.update(choices=choices, value=run), gr.update(choices=curves, value=keep)


def build_evaluate_tab(demo: gr.Blocks, ctx: PageContext, tab: gr.Tab, gen_model: gr.Dropdown) -> EvaluateTab:
    """Lay out the Evaluate tab inside ``tab`` and wire its events (and the share accordion)."""

    gr.Markdown("Measure what a finished run learned, on rows it never trained on (*unseen*) and on rows it was "
                "trained on (*taught*), scored apart: loss and perplexity per real token, and how many reference "
                "symptom phrases its generations recover — next to the same numbers for its base model.")
    with gr.Row():
        run = ListedChoices([], value=None, label="Finished run", elem_id="eval-run", scale=3)
        refresh = gr.Button("Refresh runs", scale=1)
    with gr.Row():
        rows = setting_widget(C.EvaluationSettings, "rows", elem_id="eval-rows")
        sampling = gr.Dropdown(SAMPLING_CHOICES, value="none", label="Decoding",
                               info="sampling presets as on the Generate tab (fixed seed)")
        go = gr.Button("Evaluate", variant="primary", elem_id="evaluate-button")
    status = gr.Markdown(elem_id="eval-status")
    summary = gr.Dataframe(pd.DataFrame(columns=SUMMARY_COLUMNS),
                           label="Fine-tuned vs base model, a constant answer and a lookup, on unseen and taught rows",
                           interactive=False, elem_id="eval-summary")
    table = gr.HTML(elem_id="eval-table")
    taught_table = gr.HTML(elem_id="eval-taught-table")
    with gr.Accordion("Compare runs: loss curves on one plot", open=False):
        # Only listed runs can be picked: a half-typed name and Enter add nothing (API callers are checked).
        compare = ListedChoices([], value=[], multiselect=True, max_choices=MAX_COMPARED,
                                 label=f"Runs (at most {MAX_COMPARED})", elem_id="compare-runs")
        plot = gr.HTML(loss_chart(loss_points([]), title=COMPARE_TITLE), elem_id="compare-plot", padding=True)
        chart_toggles("compare-plot", ("log", "lr"))  # per epoch from metrics.csv: no step curve, no grad norm
        compare_table = gr.Dataframe(pd.DataFrame(columns=COMPARE_COLUMNS), interactive=False,
                                     label="Runs compared")
    build_share_section(ctx, run, lambda: (gr.update(choices=runs_with_curves(ctx.store)),
                                           gr.update(choices=model_choices(ctx.store))),
                        [compare, gen_model])
    actions = EvaluateActions(ctx)
    evaluate, compare_runs, refresh_choices = actions.evaluate, actions.compare_runs, actions.refresh_choices

    go.click(evaluate, inputs=[run, rows, sampling], outputs=[status, summary, table, taught_table],
             api_name="evaluate",
             concurrency_limit=1, concurrency_id="evaluate", show_progress="minimal", show_progress_on=status)
    compare.change(compare_runs, inputs=compare, outputs=[plot, compare_table], api_name="compare_runs",
                   show_progress_on=compare, queue=False)  # a refused name marks the list, not the plot drawn before
    # Selection follows the newest run until the visitor picks one (per page: a State set by their own input).
    picked = gr.State(False)
    run.input(lambda: True, outputs=picked, api_visibility="private", show_progress="hidden", queue=False)
    for trigger in (refresh.click, tab.select, demo.load):
        trigger(refresh_choices, inputs=[run, compare, picked], outputs=[run, compare],
                api_visibility="private", queue=False)
    return EvaluateTab(run, compare)
