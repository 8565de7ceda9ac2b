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
from ..hub import looks_like_hub_id
from ..offline import with_offline_fallback
from ..errors import first_line, InvalidInput
from .widgets import setting_widget, user_errors

SOURCES = [("Bundled sample (offline)", "sample"), ("Hugging Face dataset", "hub"), ("Uploaded file", "upload")]
NO_COLUMN = "(none)"
PREVIEW_ROWS = 12


def data_config(source: str, hub_dataset: str, hub_split: str, upload, prompt_column: str, target_column: str,
                extra_target_column: str | None, val_fraction: float, split_seed) -> DataConfig:
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
                      seed=0 if split_seed is None else split_seed)


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

    @property
    def inputs(self) -> list:
        return [getattr(self, n) for n in DATA_INPUTS]


@user_errors
def preview_data(source: str, hub_dataset: str, hub_split: str, upload, prompt_column: str, target_column: str,
                 extra_target_column: str | None, val_fraction: float, split_seed):
    """Read and split the data as training would; show counts and the first rows."""
    cfg = data_config(source, hub_dataset, hub_split, upload, prompt_column, target_column, extra_target_column,
                      val_fraction, split_seed)
    cfg, _, notices = with_offline_fallback(cfg, TrainConfig(model=SCRATCH_MODEL))
    raw = load_records(cfg.source, cfg.split)
    prepared = prepare(cfg, frame=raw)
    # A few rows from each side of the split, so both are visible.
    rows = pd.concat([prepared.train.head(PREVIEW_ROWS - PREVIEW_ROWS // 3).assign(split="train"),
                      prepared.val.head(PREVIEW_ROWS // 3).assign(split="validation")])
    lines = [f"⚠️ {n}" for n in notices] + [f"**{prepared.summary()}**"]
    lines.append(f"Columns found: {', '.join(map(str, raw.columns))}.")
    return "\n\n".join(lines), rows.reset_index(drop=True), [str(c) for c in raw.columns]


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
                      "the mapping below if that is wrong, then preview.", *updates)


def build_data_tab(offline: bool) -> DataTab:
    gr.Markdown("Choose the examples to train on. Each row becomes `Name | Symptoms`; the split is seeded "
                "and by name, so a disease never sits in both train and validation.")
    with gr.Row():
        source = gr.Radio(SOURCES, value="sample" if offline else "hub", label="Source", elem_id="data-source")
        hub_dataset = gr.Textbox(DEFAULT_DATASET, label="Hub dataset id", scale=2)
        hub_split = gr.Textbox("train", label="Hub split", scale=1)
    upload = gr.File(label="Upload CSV / TSV / JSON / JSONL / Parquet", file_types=sorted(FILE_SUFFIXES),
                     type="filepath", height=120, elem_id="data-upload")
    with gr.Row():
        prompt_column = gr.Dropdown(["Name"], value="Name", label="Prompt column (disease name)",
                                    allow_custom_value=True, elem_id="data-prompt-column")
        target_column = gr.Dropdown(["Symptoms"], value="Symptoms", label="Target column (text to learn)",
                                    allow_custom_value=True, elem_id="data-target-column")
        extra_target_column = gr.Dropdown([NO_COLUMN, "Treatments"], value=NO_COLUMN,
                                          label="Also learn (optional column)", allow_custom_value=True)
    with gr.Row():
        val_fraction = setting_widget(DataConfig, "val_fraction")
        split_seed = setting_widget(DataConfig, "seed")
    preview_btn = gr.Button("Preview data", elem_id="preview-button")
    summary = gr.Markdown(elem_id="data-summary")
    table = gr.Dataframe(label="First rows (as the model will see them)", interactive=False, wrap=True)
    tab = DataTab(source, hub_dataset, hub_split, upload, prompt_column, target_column, extra_target_column,
                  val_fraction, split_seed)
    columns = [prompt_column, target_column, extra_target_column]
    upload.upload(read_columns, inputs=[upload, *columns], outputs=[source, summary, *columns],
                  api_name="read_columns")
    # The dropdowns are not outputs of the preview itself: a failed preview (say, a missing column) would put
    # an error badge over them, just when they need changing.  They follow only a successful one.
    found = gr.State([])
    preview_btn.click(preview_data, inputs=tab.inputs, outputs=[summary, table, found], api_name="preview_data") \
        .success(column_updates, inputs=[found, *columns], outputs=columns, api_visibility="private",
                 show_progress="hidden")
    return tab
