"""Data tab: pick the source, map the columns, preview what training will see.

``data_config`` turns the tab's widget values into a validated ``DataConfig``;
the Train tab passes the same widgets to its Start handler, so preview and
training read the data the same way.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from ..config import DEFAULT_DATASET, SAMPLE_SOURCE, SCRATCH_MODEL, DataConfig, TrainConfig
from ..data import FILE_SUFFIXES, load_records, prepare
from ..errors import InvalidInput, first_line
from ..hub import looks_like_hub_id
from ..offline import with_offline_fallback
from .context import PageContext
from .widgets import ListedChoices, checked_types, setting_widget, user_errors

SOURCES = [("Bundled sample (offline)", "sample"), ("Hugging Face dataset", "hub"), ("Uploaded file", "upload")]
NO_COLUMN = "(none)"
PREVIEW_ROWS = 12


def data_config(source: str, hub_dataset: str, hub_split: str, upload, prompt_column: str, target_column: str,
                extra_target_column: str | None, val_fraction: float, split_seed, split_by: str = "auto") -> DataConfig:
    """Widget values → ``DataConfig`` (raises ``ValueError`` with one sentence)."""
    if source == "sample":
        src = SAMPLE_SOURCE
    elif source == "hub":
        src = (hub_dataset or "").strip()
        # Only Hub ids here: a path typed into this box must not read files on the server.
        if not looks_like_hub_id(src) or Path(src).suffix.lower() in FILE_SUFFIXES or Path(src).exists():
            raise InvalidInput(f"'{src[:80]}' is not a Hugging Face dataset id (expected owner/name).")
    elif source == "upload":
        if not upload:
            raise InvalidInput("Please upload a CSV, JSON, JSONL or Parquet file first (or pick another source).")
        src = str(upload if isinstance(upload, str) else getattr(upload, "path", upload))
    else:
        raise InvalidInput(f"Data source must be one of sample, hub or upload, got {source!r}.")
    extra = (extra_target_column or "").strip()
    return DataConfig(source=src, prompt_column=(prompt_column or "").strip(),
                      target_column=(target_column or "").strip(),
                      extra_target_column=None if extra in ("", NO_COLUMN) else extra,
                      split=(hub_split or "train").strip() or "train", val_fraction=val_fraction,
                      seed=0 if split_seed is None else split_seed, split_by=split_by or "auto")


# The data widgets' names, in ``data_config``'s order: ``DataTab.inputs`` and the first parameters of /train.
DATA_INPUTS = tuple(inspect.signature(data_config).parameters)


@dataclass
class DataTab:
    source: gr.Radio
    hub_dataset: gr.Textbox
    hub_split: gr.Textbox
    upload: gr.File
    prompt_column: gr.Dropdown
    target_column: gr.Dropdown
    extra_target_column: gr.Dropdown
    val_fraction: gr.Slider
    split_seed: gr.Number
    split_by: gr.Radio

    @property
    def inputs(self) -> list:
        return [getattr(self, n) for n in DATA_INPUTS]


@user_errors
@checked_types
def preview_data(source: str, hub_dataset: str | None, hub_split: str | None, upload, prompt_column: str | None,
                 target_column: str | None, extra_target_column: str | None, val_fraction: float, split_seed,
                 split_by: str | None = "auto"):
    """Read and split the data as training would; show counts, how it was split and why, and the first rows."""
    cfg = data_config(source, hub_dataset, hub_split, upload, prompt_column, target_column, extra_target_column,
                      val_fraction, split_seed, split_by)
    cfg, _, notices = with_offline_fallback(cfg, TrainConfig(model=SCRATCH_MODEL))
    raw = load_records(cfg.source, cfg.split)
    found = [str(c) for c in raw.columns]
    # The columns first: when the mapping does not fit (a missing column), the page's lists offer the real ones.
    yield gr.skip(), gr.skip(), found
    prepared = prepare(cfg, frame=raw)
    # A few rows from each side of the split, so both are visible; ``split`` first, so long text cannot push it
    # out of view.
    rows = pd.concat([prepared.train.head(PREVIEW_ROWS - PREVIEW_ROWS // 3).assign(split="train"),
                      prepared.val.head(PREVIEW_ROWS // 3).assign(split="validation")])
    rows = rows[["split", *[c for c in rows.columns if c != "split"]]]
    lines = [f"⚠️ {n}" for n in notices] + [f"**{prepared.summary()}**"]
    lines.append(f"Columns found: {', '.join(found)}.")
    yield "\n\n".join(lines), rows.reset_index(drop=True), found


PROMPT_NAMES = ("name", "disease", "condition", "label", "prompt", "title")
TARGET_NAMES = ("symptoms", "symptom", "signs", "text", "target", "description")


def guess_columns(columns: list[str], prompt: str | None, target: str | None, extra: str | None):
    """Keep the current mapping where the file has those columns; otherwise guess from the names."""
    lower = {c.lower(): c for c in columns}

    def pick(current, names, fallback):
        if current in columns:
            return current
        return next((lower[n] for n in names if n in lower), fallback)

    p = pick(prompt, PROMPT_NAMES, columns[0])
    rest = [c for c in columns if c != p] or [p]
    t = pick(target if target != p else None, TARGET_NAMES, rest[0])
    e = extra if extra in columns and extra not in (p, t) else NO_COLUMN
    return p, t, e


def offer_columns(columns, prompt, target, extra) -> tuple:
    """The three lists offering ``columns``, the chosen mapping kept as it is (never swapped for another column:
    a preview that found no such column has said so)."""
    if not columns:
        return gr.skip(), gr.skip(), gr.skip()
    columns = [str(c) for c in columns]
    return (gr.update(choices=columns), gr.update(choices=columns), gr.update(choices=[NO_COLUMN] + columns))


def sample_columns() -> list[str]:
    """The bundled sample's columns (the Hub dataset's default has the same)."""
    return [str(c) for c in load_records(SAMPLE_SOURCE).columns]


def source_chosen(source: str, upload, prompt: str | None, target: str | None, extra: str | None) -> tuple:
    """A source was picked: show its own inputs, and map the columns of *that* source (the sample's Name and
    Symptoms; an uploaded file's, guessed from their names; none yet when no file is uploaded)."""
    shown = (gr.update(visible=source == "hub"), gr.update(visible=source == "upload"))
    if source == "upload":
        if upload:
            _, note, *updates = read_columns(upload, prompt, target, extra)
            return (*shown, note, *updates)
        return (*shown, "Upload a file; its columns will be offered below.",
                gr.update(choices=[], value=None), gr.update(choices=[], value=None),
                gr.update(choices=[NO_COLUMN], value=NO_COLUMN))
    d = DataConfig()
    columns = sample_columns()
    return (*shown, "", gr.update(choices=columns, value=d.prompt_column),
            gr.update(choices=columns, value=d.target_column),
            gr.update(choices=[NO_COLUMN] + columns, value=NO_COLUMN))


def column_updates(columns, prompt, target, extra) -> tuple:
    """The three column dropdowns offering ``columns``, with a mapping that fits them."""
    if not columns:
        return gr.skip(), gr.skip(), gr.skip()
    p, t, e = guess_columns([str(c) for c in columns], prompt, target, extra)
    return (gr.update(choices=columns, value=p), gr.update(choices=columns, value=t),
            gr.update(choices=[NO_COLUMN] + list(columns), value=e))


def read_columns(upload, prompt_column: str, target_column: str, extra_target_column: str | None):
    """An upload arrived: offer its columns in the mapping (guessed from their names) and say what was found.

    Never raises: a file that cannot be read is reported in the summary, and the widgets stay usable.
    """
    if not upload:
        return gr.skip(), "", gr.skip(), gr.skip(), gr.skip()
    path = str(upload if isinstance(upload, str) else getattr(upload, "path", upload))
    try:
        columns = [str(c) for c in load_records(path).columns]
    except Exception as exc:  # noqa: BLE001 - shown to the user as one sentence
        message = first_line(exc).replace(path, Path(path).name)  # the upload's temp path is the server's
        return "upload", f"⚠️ {message}", gr.skip(), gr.skip(), gr.skip()
    if not columns:
        return "upload", f"⚠️ {Path(path).name} has no columns.", gr.skip(), gr.skip(), gr.skip()
    updates = column_updates(columns, prompt_column, target_column, extra_target_column)
    p, t = updates[0]["value"], updates[1]["value"]
    return ("upload", f"Columns in {Path(path).name}: {', '.join(columns)}. Mapped **{p}** → **{t}**; change "
                      "the mapping above if that is wrong, then preview.", *updates)


def read_columns_while_chosen(source: str, upload, *columns) -> tuple:
    """``read_columns`` for the page's own upload event, skipped unless the source is still "upload"."""
    if source != "upload":
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return read_columns(upload, *columns)


def build_data_tab(ctx: PageContext) -> DataTab:
    gr.Markdown("Choose the examples to train on. Each row becomes `Name | Symptoms`; the split is seeded. "
                "*Split by* auto: by row, stratified by name, when names repeat (each name on both sides), by name "
                "when they do not; *by-name* validates on unseen names. The preview says which was used and why.")
    start = "sample" if ctx.offline else "hub"
    source = gr.Radio(SOURCES, value=start, label="Source", elem_id="data-source")
    # Each source shows its own inputs only: after a refused upload the source still reads "Uploaded file", so
    # Preview says a file is needed instead of quietly previewing the sample.
    with gr.Row(visible=start == "hub") as hub_row:
        hub_dataset = gr.Textbox(DEFAULT_DATASET, label="Hub dataset id", scale=2, elem_id="data-hub-dataset")
        hub_split = gr.Textbox("train", label="Hub split", scale=1)
    upload = gr.File(label="Your file (CSV, TSV, JSON, JSONL, Parquet)", file_types=sorted(FILE_SUFFIXES),
                     type="filepath", height=150, elem_id="data-upload", visible=False)
    # Lists of the source's own columns, picked from, never typed: Enter cannot swap in another column, and a
    # column the data lacks (sent through the API) is refused by the preview with the columns found.
    columns_now = ["Code", "Name", "Symptoms", "Treatments"]  # the sample's, until the page asks the source
    with gr.Row():
        prompt_column = ListedChoices(columns_now, value="Name", label="Prompt column (disease name)",
                                      filterable=False, elem_id="data-prompt-column")
        target_column = ListedChoices(columns_now, value="Symptoms", label="Target column (text to learn)",
                                      filterable=False, elem_id="data-target-column")
        extra_target_column = ListedChoices([NO_COLUMN, *columns_now], value=NO_COLUMN,
                                            label="Also learn (optional column)", filterable=False,
                                            elem_id="data-extra-column")
    with gr.Row():
        val_fraction = setting_widget(DataConfig, "val_fraction")
        split_seed = setting_widget(DataConfig, "seed")
        split_by = setting_widget(DataConfig, "split_by", radio=True, elem_id="data-split-by")
    preview_btn = gr.Button("Preview data", elem_id="preview-button")
    summary = gr.Markdown(elem_id="data-summary")
    # Shown by the first preview (empty, it would show placeholder headers 1 2 3).
    table = gr.Dataframe(label="First rows (as the model will see them)", interactive=False, wrap=True,
                         visible=False, elem_id="data-preview")
    tab = DataTab(source, hub_dataset, hub_split, upload, prompt_column, target_column, extra_target_column,
                  val_fraction, split_seed, split_by)
    columns = [prompt_column, target_column, extra_target_column]
    # The page reads an upload's columns only while its source is "upload": Gradio's file box fires its upload
    # event again when it is hidden, and that stray call would switch a source just picked back to the file.
    upload.upload(read_columns_while_chosen, inputs=[source, upload, *columns], outputs=[source, summary, *columns],
                  api_visibility="private")
    # The API's /read_columns (a file in, its columns out) is the same function, without the source.
    api_only = gr.Button(visible=False, elem_id="read-columns-api")
    api_only.click(read_columns, inputs=[upload, *columns], outputs=[source, summary, *columns],
                   api_name="read_columns")
    source.change(source_chosen, inputs=[source, upload, *columns], outputs=[hub_row, upload, summary, *columns],
                  api_visibility="private", show_progress="hidden")
    # The dropdowns are not outputs of the preview itself: a failed preview (say, a missing column) would put
    # an error badge over them, just when they need changing.  They get the columns it found, even when it fails.
    found = gr.State([])
    found.change(offer_columns, inputs=[found, *columns], outputs=columns, api_visibility="private",
                 show_progress="hidden")
    preview_btn.click(preview_data, inputs=tab.inputs, outputs=[summary, table, found], api_name="preview_data",
                      show_progress_on=summary) \
        .success(lambda: gr.update(visible=True), outputs=table, api_visibility="private", show_progress="hidden")
    return tab
