"""Every folder and file name of the runs folder and of a shared run, written once.

``runs/<run_id>/`` (a ``RunStore`` owns ``runs/``; a ``Run`` is one of its folders)::

    config.json         the run's record (settings, status, results)
    metrics.csv         one row per epoch
    train.csv, val.csv  the exact split
    best/               the kept model (symptomgen.json inside: which epoch, its validation loss)
    base/               the starting model, when the run needs its own copy (scratch, continued, LoRA)
    checkpoints/        the Trainer's checkpoint-<step>/ folders (trainer_state.json written last)

Hidden names are work in progress, never listed as runs: ``.<folder>.tmp`` and ``.<folder>.old`` while a model is
swapped in, ``.<file>.tmp<pid>`` while a file is written, ``.importing-*`` and ``.deleting-*`` in the runs folder.
A shared run (zip or Hub repo) keeps the run's own files under ``symptomgen/`` next to the model.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RUN_STAMP_RE = re.compile(r"^\d{8}-\d{6}(-|$)")  # how RunStore.new_id names runs
DEFAULT_RUNS_DIR = Path("runs")  # the doors use settings.current().runs_dir ($SYMPTOMGEN_RUNS_DIR)

# -- inside a run folder
RECORD = "config.json"
METRICS = "metrics.csv"
STEPS = "steps.csv"  # the smoothed training loss every few optimizer steps (the step curve)
TRAIN_SPLIT = "train.csv"
VAL_SPLIT = "val.csv"
BEST = "best"
BASE = "base"
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"  # inside a checkpoint, written last
# inside a checkpoint: read only to resume (optimizer moments are 2× the weights), dropped once a run has completed
RESUME_ONLY = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")
MODEL_INFO = "symptomgen.json"  # inside best/: which epoch those weights are and their validation loss

# -- inside a model folder (save_pretrained)
MODEL_CONFIG = "config.json"
ADAPTER_CONFIG = "adapter_config.json"

# -- work in progress (hidden: never listed as a run)
IMPORTING = ".importing-"  # + 12 hex digits: an import being unpacked and checked
DELETING = ".deleting-"  # + 12 hex digits: a run being deleted
TMP_FILE_RE = re.compile(r"^\..+\.tmp\d*$")  # temp_file(): .<name>.tmp<pid>


def staging(folder: str) -> str:
    """Where ``Run.save_model`` writes a model folder before swapping it in."""
    return f".{folder}.tmp"


def previous(folder: str) -> str:
    """Where ``Run.save_model`` keeps the previous copy of a model folder during the swap."""
    return f".{folder}.old"


def temp_file(name: str, pid: int) -> str:
    """The temporary name an atomic write of ``name`` uses."""
    return f".{name}.tmp{pid}"


STAGING_DIRS = (staging(BEST), staging(BASE))

# -- a shared run (zip or Hub repo): the model at the top, the run's files under SHARE_META/
SHARE_META = "symptomgen"
SHARE_RECORD = "run.json"
MODEL_CARD = "README.md"

# -- the page's generated downloads (swept after an hour)
DOWNLOADS_DIR = Path(tempfile.gettempdir()) / "symptomgen-downloads"  # metrics CSVs the Train tab serves
EXPORTS_DIR = Path(tempfile.gettempdir()) / "symptomgen-exports"  # run zips the Evaluate tab builds
