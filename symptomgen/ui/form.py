"""The Train form as a whole: remembered across reloads, filled from a run, written as a CLI command.

The form is the Data tab's widgets (``DATA_INPUTS``), the preset and the Train tab's settings (``TRAIN_FIELDS``).
``remember`` turns their values into a dict the browser keeps (``gr.BrowserState``); ``restored`` gives them back
on the next visit (an uploaded file only while the server still holds it); a running job's own settings fill the
form when the browser has none.  ``from_run`` reads any run's ``config.json``; ``cli_command`` writes the
``python -m symptomgen train`` line of the form, its flags taken from each setting's ``config.Spec``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .. import config as C
from ..hub import looks_like_hub_id
from .data_tab import DATA_INPUTS, NO_COLUMN, data_config

FORM_VERSION = 1  # a remembered form of another shape is ignored


def remember(fields: tuple[str, ...], values) -> dict:
    """The form's values by name, as the browser keeps them (an upload as its server path)."""
    out = {"version": FORM_VERSION}
    for name, value in zip(fields, values):
        if name == "upload" and value is not None:
            value = str(value if isinstance(value, str) else getattr(value, "path", value))
        out[name] = value
    return out


def restored(saved: dict | None, fields: tuple[str, ...], defaults: dict) -> dict:
    """``defaults`` overlaid with a remembered form's values for ``fields`` (an upload the server no longer holds
    is dropped, and its source falls back to the default)."""
    if not isinstance(saved, dict) or saved.get("version") != FORM_VERSION:
        return dict(defaults)
    out = dict(defaults)
    for name in fields:
        if name in saved and saved[name] is not None:
            out[name] = saved[name]
    upload = out.get("upload")
    if upload and not Path(str(upload)).is_file():
        out["upload"] = None
        if out.get("source") == "upload":
            out["source"] = defaults.get("source", "sample")
    return out


def form_of(data: C.DataConfig, train: C.TrainConfig) -> dict:
    """The form's values for a run's (or a job's) settings: the data source as the page offers it."""
    values: dict = {n: getattr(train, n) for n in C.ui_fields(C.TrainConfig)}
    src = data.source
    if src == C.SAMPLE_SOURCE:
        values["source"] = "sample"
    elif Path(src).is_file():
        values.update(source="upload", upload=src)
    elif looks_like_hub_id(src):
        values.update(source="hub", hub_dataset=src, hub_split=data.split)
    values.update(prompt_column=data.prompt_column, target_column=data.target_column,
                  extra_target_column=data.extra_target_column or NO_COLUMN, val_fraction=data.val_fraction,
                  split_seed=data.seed, split_by=data.split_by)
    return values


def cli_command(values: dict) -> str:
    """The ``python -m symptomgen train …`` line of the form's values: every setting that differs from the CLI's
    default, by its own flag (an uploaded file by its name: the command runs where the file is)."""
    args = ["python", "-m", "symptomgen", "train"]
    dcfg = data_config(**{n: values.get(n) for n in DATA_INPUTS})
    source = dcfg.source
    if values.get("source") == "upload":
        source = Path(source).name
    cli_defaults = {"source": C.DEFAULT_DATASET}  # the CLI trains on the Hub dataset by default
    for spec in C.settings_of(C.DataConfig):
        value = source if spec.name == "source" else getattr(dcfg, spec.name)
        if spec.cli_flag is None:
            continue
        if value != cli_defaults.get(spec.name, spec.default):
            args += [spec.cli_flag, C.fmt_number(value) if spec.kind == "number" else str(value)]
    for spec in C.settings_of(C.TrainConfig):
        if spec.cli_flag is None or spec.name not in values:
            continue
        value = spec.check(values[spec.name])
        if value == spec.default:
            continue
        if spec.kind == "switch":
            args.append(spec.cli_flag)  # a switch's flag turns it away from its default
        else:
            args += [spec.cli_flag, C.fmt_number(value) if spec.kind == "number" else str(value)]
    return " ".join(shlex.quote(a) for a in args)
