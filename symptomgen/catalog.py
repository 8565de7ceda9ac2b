"""Questions about runs and models, answered once for both doors (CLI and web page).

Which runs can serve a model now, how they are labelled, what a typed model name means (``ModelSpec``), what a
run started from (its base model), and the reference text for a name.  The web page passes ``allow_paths=False``
so nothing a visitor types reaches the server's filesystem; the CLI, run by the machine's own user, allows folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from .config import DEFAULT_MODEL, SAMPLE_SOURCE, SCRATCH_MODEL, is_scratch
from .data import load_records, squash_spaces
from .errors import InvalidInput, RunNotFoundError
from .hub import check_model_allowed, looks_like_hub_id
from .records import RunStatus
from .runs import RUN_ID_RE, Run, is_run_folder, list_runs, looks_like_run_id, resolve_run

BASE_LABEL = f"Base model: {DEFAULT_MODEL} (not fine-tuned)"
RUNS_COLUMNS = ["run", "status", "model", "epochs", "best epoch", "best val loss", "model saved"]


@dataclass(frozen=True)
class ModelSpec:
    """A model named by a person, parsed once: what it is and what to load."""

    kind: Literal["scratch", "hub", "run", "folder"]
    name: str
    """The Hub id, the run's name, the folder as given, or ``scratch``."""
    path: Path | None = None
    """The folder to load from (a run's ``best/``, or the folder given)."""

    @property
    def is_scratch(self) -> bool:
        return self.kind == "scratch"

    @property
    def target(self) -> str:
        """What ``from_pretrained`` (or the scratch builder) is given."""
        return str(self.path) if self.path is not None else self.name

    @classmethod
    def parse(cls, text: object, runs_dir: Path | str, *, allow_paths: bool = False,
              trained_only: bool = False) -> ModelSpec:
        """``scratch``, a run's name (with a saved model), an allowed Hub id, or — ``allow_paths`` only — a run
        folder or a ``save_pretrained`` folder.  ``trained_only`` (generation) refuses ``scratch``.
        Raises ``InvalidInput`` naming what is accepted."""
        spec = str(text or "").strip()
        if not spec:
            raise InvalidInput("Pick a model first: a finished run, a Hub model id, or 'scratch'.")
        if is_scratch(spec) and not trained_only:
            return cls("scratch", SCRATCH_MODEL)
        if allow_paths and Path(spec).expanduser().exists():
            path = Path(spec).expanduser()
            if is_run_folder(path):
                return cls("run", path.name, Run(path).require_model().best_dir)
            return cls("folder", spec, path)
        if RUN_ID_RE.match(spec) and (Path(runs_dir) / spec).is_dir():
            return cls("run", spec, resolve_run(runs_dir, spec).require_model().best_dir)
        if looks_like_run_id(spec):  # a run listed when the page loaded, deleted since
            resolve_run(runs_dir, spec)
        if looks_like_hub_id(spec) and (allow_paths or not Path(spec).exists()):
            check_model_allowed(spec)
            return cls("hub", spec)
        paths = ", a model folder" if allow_paths else ""
        if trained_only:
            raise InvalidInput(f"'{spec[:80]}' is neither a finished run{paths} nor a Hugging Face model id.")
        raise InvalidInput(f"Model '{spec[:80]}' must be 'scratch', a Hub model id such as 'distilgpt2'{paths} "
                           "or the name of a finished run.")


def find_run(text: object, runs_dir: Path | str, *, allow_paths: bool = False) -> Run:
    """A run by name inside ``runs_dir`` (or, ``allow_paths``, its folder or its ``best/``)."""
    spec = str(text or "").strip()
    if allow_paths:
        path = Path(spec).expanduser()
        if path.name == "best" and (path.parent / "config.json").is_file():
            path = path.parent
        if is_run_folder(path):
            return Run(path)
    return resolve_run(runs_dir, spec)


def finished_run(runs_dir: Path | str, run_id: object) -> Run:
    """The named run inside ``runs_dir``, with a saved model and no training going on, or an error saying why."""
    return resolve_run(runs_dir, str(run_id or "")).require_model()


def base_model(run: Run) -> str | None:
    """What this run started from, to compare with: its own ``base/`` (scratch runs, runs trained on from
    another run), else the model it names.  For an imported run (its record came from a stranger's zip or
    repo) only a Hub id this server allows: never a path on this machine.  None when there is none."""
    if (run.base_dir / "config.json").is_file():
        return str(run.base_dir)
    rec = run.record()
    model = rec.model.strip()
    if not model or is_scratch(model) or looks_like_run_id(model):
        return None
    if not rec.imported_from:
        return model  # trained here, from a Hub id or a folder this machine's user chose
    if not looks_like_hub_id(model):
        return None
    try:
        check_model_allowed(model)
    except InvalidInput:
        return None
    return model


@dataclass(frozen=True)
class GenerationTarget:
    """What the Generate tab (or ``generate``) loads for a choice: the model, its base, and the run if any."""

    model: str
    base: str | None
    run: Run | None


def generation_target(choice: object, runs_dir: Path | str, *, allow_paths: bool = False) -> GenerationTarget:
    spec = ModelSpec.parse(choice, runs_dir, allow_paths=allow_paths, trained_only=True)
    run = Run(spec.path.parent) if spec.kind == "run" and spec.path is not None else None
    return GenerationTarget(spec.target, base_model(run) if run is not None else None, run)


def usable_runs(runs_dir: Path | str) -> list[Run]:
    """Runs that finished at least one epoch and are not training now, newest first."""
    return [r for r in list_runs(runs_dir) if r.status() is not RunStatus.RUNNING and r.has_best()]


def run_choices(runs_dir: Path | str) -> list[tuple[str, str]]:
    """(label, run id) for every usable run, newest first."""
    out = []
    for r in usable_runs(runs_dir):
        rec = r.record()
        loss = f", val loss {rec.best_val_loss:.3f}" if rec.best_val_loss is not None else ""
        out.append((f"{r.run_id} ({r.status()}, {rec.model or '?'}{loss})", r.run_id))
    return out


def model_choices(runs_dir: Path | str) -> list[tuple[str, str]]:
    """Usable runs, then the base model: what generation can pick from."""
    return run_choices(runs_dir) + [(BASE_LABEL, DEFAULT_MODEL)]


def runs_frame(runs_dir: Path | str) -> pd.DataFrame:
    """Every run on this server, one row each (``RUNS_COLUMNS``)."""
    rows = []
    for r in list_runs(runs_dir):
        rec = r.record()
        best = round(rec.best_val_loss, 4) if rec.best_val_loss is not None else None
        rows.append([r.run_id, str(r.status()), rec.model, rec.epochs_done, rec.best_epoch, best,
                     "yes" if r.has_best() else "no"])
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def runs_with_curves(runs_dir: Path | str) -> list[str]:
    """Runs with at least a metrics file (loss curves to draw)."""
    return [r.run_id for r in list_runs(runs_dir) if r.metrics_path.is_file()]


def reference_for(run: Run | None, name: str) -> tuple[str, str] | None:
    """(reference text, where it comes from) for ``name``: the run's own split, or the bundled sample."""
    key = squash_spaces(name).lower()  # spacing as format_prompt normalises it
    if run is not None:
        train, val = run.split_frames()
        for frame, where in ((train, "the run's training split"), (val, "the run's validation split (unseen)")):
            hit = frame[frame["prompt"].map(lambda p: squash_spaces(p).lower()) == key]
            if len(hit):
                return str(hit["target"].iloc[0]), where
        return None
    sample = load_records(SAMPLE_SOURCE)
    hit = sample[sample["Name"].map(lambda p: squash_spaces(p).lower()) == key]
    return (str(hit["Symptoms"].iloc[0]), "the bundled sample") if len(hit) else None
