"""Questions about runs and models, answered once for both doors (CLI and web page).

How runs are labelled, what a typed model name means (``ModelSpec``), what a run started from (its base model),
and the reference text for a name.  A name becomes a run through the store (``RunStore.get``/``open``) or, where a
folder may be typed too, through ``find_run``.  The web page passes ``allow_paths=False``
so nothing a visitor types reaches the server's filesystem; the CLI, run by the machine's own user, allows folders.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from . import layout as L
from .config import DEFAULT_MODEL, SAMPLE_SOURCE, SCRATCH_MODEL, is_scratch
from .data import load_records, squash_spaces
from .errors import HubUnreachableError, InvalidInput
from .hub import check_model_allowed, hub_reachable, looks_like_hub_id, model_cached, unreachable_reason
from .runs import Run, is_run_folder, looks_like_run_id, parent_run_id
from .scoring import LIST, detect_target_kind
from .store import RunStore

BASE_LABEL = f"Base model: {DEFAULT_MODEL} (not fine-tuned)"
UNTRAINED_LABEL = "Untrained scratch model (random weights: gibberish until you train a run)"
RUNS_COLUMNS = ["run", "status", "model", "epochs", "best epoch", "best val loss", "model saved", "data"]


def data_label(rec) -> str:
    """A run's data in a few words: ``sample``, a Hub id, an uploaded file's name (never a server path)."""
    data = getattr(rec, "data", None)
    src = str(getattr(data, "source", "") or "")
    if not src:
        return "?"
    if src == SAMPLE_SOURCE:
        return "sample"
    return Path(src).name if Path(src).suffix else src


def tokenizer_label(rec) -> str:
    """Which tokenizer a run's losses are measured in: a scratch run's own (trained on its data, its vocabulary
    size), or the pretrained model's (runs continued from a run share their parent's)."""
    train = getattr(rec, "train", None)
    model = str(getattr(rec, "model", "") or getattr(train, "model", "") or "")
    if is_scratch(model):
        return f"own {getattr(train, 'scratch_vocab', '?')}-token tokenizer trained on {data_label(rec)}"
    return f"{model.split('/')[-1]}'s tokenizer"


@dataclass(frozen=True)
class ModelSpec:
    """A model named by a person, parsed once: what it is and what to load."""

    kind: Literal["scratch", "hub", "run", "folder"]
    name: str
    """The Hub id, the run's name, the folder as given, or ``scratch``."""
    path: Path | None = None
    """The folder to load from (a run's ``best/``, or the folder given)."""
    run: Run | None = None
    """The run, when the name is one."""

    @property
    def is_scratch(self) -> bool:
        return self.kind == "scratch"

    @property
    def target(self) -> str:
        """What ``from_pretrained`` (or the scratch builder) is given."""
        return str(self.path) if self.path is not None else self.name

    @classmethod
    def parse(cls, text: object, store: RunStore, *, allow_paths: bool = False,
              trained_only: bool = False) -> ModelSpec:
        """``scratch``, a run's name (with a saved model), an allowed Hub id, or — ``allow_paths`` only — a run
        folder or its ``best/`` (both the run), or a ``save_pretrained`` folder.  ``trained_only`` (generation)
        refuses ``scratch``.  Raises ``InvalidInput`` naming what is accepted."""
        store = RunStore.at(store)  # jobs.py passes its folder until it holds the store
        spec = str(text or "").strip()
        if not spec:
            raise InvalidInput("Pick a model first: a finished run, a Hub model id, or 'scratch'.")
        if is_scratch(spec) and not trained_only:
            return cls("scratch", SCRATCH_MODEL)
        if allow_paths and Path(spec).expanduser().exists():
            path = Path(spec).expanduser()
            if run_folder_of(path) is not None:  # a run folder or its best/: the run (its split, its base)
                run = find_run(spec, store, allow_paths=True)
                store.repair(run)  # opened for use
                return cls("run", run.run_id, run.require_model().best_dir, run)
            return cls("folder", spec, path)
        if L.RUN_ID_RE.match(spec) and store.get(spec, must_exist=False).path.is_dir():
            run = store.open(spec)
            return cls("run", spec, run.best_dir, run)
        if looks_like_run_id(spec):  # a run listed when the page loaded, deleted since
            store.get(spec)
        if looks_like_hub_id(spec) and (allow_paths or not Path(spec).exists()):
            check_model_allowed(spec)
            return cls("hub", spec)
        paths = ", a model folder" if allow_paths else ""
        if trained_only:
            raise InvalidInput(f"'{spec[:80]}' is neither a finished run{paths} nor a Hugging Face model id.")
        raise InvalidInput(f"Model '{spec[:80]}' must be 'scratch', a Hub model id such as 'distilgpt2'{paths} "
                           "or the name of a finished run.")


def run_folder_of(path: Path) -> Path | None:
    """The run folder ``path`` names: itself when it is one, the run whose ``best/`` it is, else None."""
    if path.name == L.BEST and is_run_folder(path.parent):
        return path.parent
    return path if is_run_folder(path) else None


def find_run(text: object, store: RunStore, *, allow_paths: bool = False) -> Run:
    """The one name → run resolver where a folder may be typed: a run by name in ``store`` (``RunStore.get``) or,
    ``allow_paths`` (the CLI), a run folder or its ``best/``."""
    spec = str(text or "").strip()
    if allow_paths:
        folder = run_folder_of(Path(spec).expanduser())
        if folder is not None:
            return Run(folder)
    return store.get(spec)


def base_model(run: Run) -> str | None:
    """What this run started from, to compare with: its own ``base/`` (scratch runs, runs trained on from
    another run), else the model it names.  For an imported run (its record came from a stranger's zip or
    repo) only a Hub id this server allows: never a path on this machine.  None when there is none."""
    if (run.base_dir / L.MODEL_CONFIG).is_file():
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


def generation_target(choice: object, store: RunStore, *, allow_paths: bool = False) -> GenerationTarget:
    if is_scratch(choice):  # the untrained starting point (offline, the one model there is before a run)
        return GenerationTarget(SCRATCH_MODEL, None, None)
    spec = ModelSpec.parse(choice, store, allow_paths=allow_paths, trained_only=True)
    if spec.kind == "hub" and not allow_paths:
        check_loadable(spec.name)
    return GenerationTarget(spec.target, base_model(spec.run) if spec.run is not None else None, spec.run)


def resumable_choices(store: RunStore) -> list[tuple[str, str]]:
    """(label, run id) for every run that can continue from its last checkpoint now, newest first."""
    out = []
    for r in store.resumable():
        rec = r.record()
        out.append((f"{r.run_id} ({r.status()}, {rec.epochs_done} of {rec.train.epochs} epochs)", r.run_id))
    return out


def run_choices(store: RunStore) -> list[tuple[str, str]]:
    """(label, run id) for every finished run, newest first."""
    out = []
    for r in store.finished():
        rec, kept = r.record(), r.best_info()  # the loss of the weights in best/, recorded with them
        loss = f", val loss {kept.val_loss:.3f}" if kept.val_loss is not None else ""
        out.append((f"{r.run_id} ({r.status()}, {data_label(rec)}, {rec.model or '?'}{loss})", r.run_id))
    return out


def check_loadable(model_id: str) -> None:
    """Raise ``HubUnreachableError``, in the page's words, when a Hub model is neither cached nor downloadable
    (the page takes finished runs and Hub ids, never folders, so that is what the sentence offers)."""
    if model_cached(model_id) or hub_reachable():
        return
    raise HubUnreachableError(f"{model_id[:80]!r} cannot be loaded here: it is not downloaded yet and "
                              f"{unreachable_reason()}. Pick a finished run (train one first) or the untrained "
                              "scratch model.")


def base_choice() -> tuple[str, str]:
    """(label, model) of the base model generation offers: ``distilgpt2`` when it can load (the Hub answers, or
    it is in the local cache), else the untrained ``scratch`` model, which needs neither (a fresh offline
    server's page then preselects something that works)."""
    if model_cached(DEFAULT_MODEL) or hub_reachable():
        return BASE_LABEL, DEFAULT_MODEL
    return UNTRAINED_LABEL, SCRATCH_MODEL


def model_choices(store: RunStore) -> list[tuple[str, str]]:
    """Finished runs, then the base model: what generation can pick from."""
    return run_choices(store) + [base_choice()]


def base_description(run: Run | None) -> str:
    """What a run's base model is, in words (the label of the "base model" output next to the run's)."""
    if run is None:
        return "Base model"
    model = run.record().model.strip()
    if is_scratch(model):
        return "Base model: the untrained starting point (scratch, random weights: expect gibberish)"
    parent = parent_run_id(model)
    if parent:
        return f"Base model: run {parent}, which this run continued from"
    return f"Base model: {model[:80]} (not fine-tuned)"


def runs_frame(store: RunStore) -> pd.DataFrame:
    """Every run on this server, one row each (``RUNS_COLUMNS``)."""
    rows = []
    for r in store.list():
        rec = r.record()
        best_epoch, best_val = r.served_best()  # the epoch of the weights served, even after a kill mid-swap
        best = round(best_val, 4) if best_val is not None else None
        rows.append([r.run_id, str(r.status()), rec.model, rec.epochs_done, best_epoch, best,
                     "yes" if r.has_best() else "no", data_label(rec)])
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def runs_with_curves(store: RunStore) -> list[str]:
    """Runs with at least a metrics file (loss curves to draw)."""
    return [r.run_id for r in store.list() if r.metrics_path.is_file()]


def target_kind(run: Run | None) -> str:
    """``list`` or ``text`` (``scoring``): how a run's generations are scored.  Recorded when the run was trained;
    runs from before that (or imported without it) get the same rule applied to their own split.  ``list`` when
    there is no run (the base model on the bundled sample)."""
    if run is None:
        return LIST
    rec = run.record()
    if rec.target_kind is not None:
        return rec.target_kind
    try:
        train, val = run.split_frames()
        targets = pd.concat([train["target"], val["target"]])
    except (OSError, ValueError, KeyError):  # no split files, or not ours
        return LIST
    return detect_target_kind(targets, rec.extra_target_column)


def reference_for(run: Run | None, name: str) -> tuple[str, str] | None:
    """(reference text, where it comes from) for ``name``: the run's own split, or the bundled sample."""
    return _reference_index(run).get(squash_spaces(name).lower())  # spacing as format_prompt normalises it


_REFERENCE_RUNS = 4  # indexes kept: the runs people are generating with now
_references: OrderedDict[tuple, dict[str, tuple[str, str]]] = OrderedDict()
_references_lock = threading.Lock()


def _version(path: Path) -> tuple:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _reference_index(run: Run | None) -> dict[str, tuple[str, str]]:
    """Name (spaces squashed, lower case) → (reference, where) for a run's split or the sample: read once per
    version of the files (inode, mtime, size), so a Generate click never re-reads a large split."""
    files = (run.path / L.TRAIN_SPLIT, run.path / L.VAL_SPLIT) if run is not None else ()
    key = (str(run.path) if run is not None else SAMPLE_SOURCE, *(_version(f) for f in files if f.is_file()))
    with _references_lock:
        if key in _references:
            _references.move_to_end(key)
            return _references[key]
    index: dict[str, tuple[str, str]] = {}
    if run is not None:
        train, val = run.split_frames()
        pairs = [(train, "prompt", "target", "the run's training split"),
                 (val, "prompt", "target", "the run's validation split (unseen)")]
    else:
        pairs = [(load_records(SAMPLE_SOURCE), "Name", "Symptoms", "the bundled sample")]
    for frame, names, targets, where in pairs:
        for name, target in zip(frame[names], frame[targets]):
            index.setdefault(squash_spaces(str(name)).lower(), (str(target), where))  # the first row wins
    with _references_lock:
        for stale in [k for k in _references if k[0] == key[0]]:
            _references.pop(stale)  # the same run's older files
        _references[key] = index
        while len(_references) > _REFERENCE_RUNS:
            _references.popitem(last=False)
    return index
