"""Server and process settings from the environment: one object, one parser, read when asked (never at import).

``Settings.from_env()`` reads every ``SYMPTOMGEN_*`` (and the few Hugging Face) variables the package uses.
The doors (``python app.py``, ``python -m symptomgen``) read it for their own options; core functions call
``current()``, which reads the environment at that moment, so a changed variable takes effect without a restart.
Tests (and embedding programs) pin values with ``override(...)`` instead of patching module globals.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterator, Mapping

from .errors import InvalidInput

_MB = 1024 * 1024
_TRUE = {"1", "true", "yes", "on"}


def env_flag(value: str | None, default: bool = False) -> bool:
    """The one boolean parser: ``1/true/yes/on`` (any case) is true, unset or empty is ``default``, anything
    else is false."""
    value = (value or "").strip().lower()
    return default if not value else value in _TRUE


def _number(env: Mapping[str, str], name: str, default: float, kind=int):
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, got {raw!r}.") from None
    if value <= 0:
        raise InvalidInput(f"{name} must be above 0, got {raw!r}.")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the environment can change."""

    runs_dir: Path = Path("runs")
    """Where run folders live (``SYMPTOMGEN_RUNS_DIR``)."""
    max_file_bytes: int = 50 * _MB
    """Largest data file read or uploaded (``SYMPTOMGEN_MAX_FILE_MB``)."""
    max_rows: int = 100_000
    """Most rows a data table may have (``SYMPTOMGEN_MAX_ROWS``)."""
    max_import_bytes: int = 2048 * _MB
    """Largest run zip or Hub run imported, packed or unpacked (``SYMPTOMGEN_MAX_IMPORT_MB``)."""
    max_import_parameters: int = 400_000_000
    """Most parameters an imported model may have, read from its config.json before anything is built
    (``SYMPTOMGEN_MAX_IMPORT_PARAMS_M``, in millions).  400 M (gpt2-medium is 355 M) is 1.6 GB per loaded copy in
    fp32: a few fit in a 16 GB CPU Space next to a training job."""
    max_runs: int = 40
    """Most run folders the server keeps; at the limit Start and import are refused until runs are deleted
    (``SYMPTOMGEN_MAX_RUNS``)."""
    max_runs_bytes: int = 20 * 1024 * _MB
    """Most bytes the runs folder may hold before Start and import are refused (``SYMPTOMGEN_MAX_RUNS_GB``); a
    free Space has 50 GB of disk, and a distilgpt2 run with its checkpoint takes about 1.5 GB."""
    stop_grace_s: float = 60.0
    """How long a training process may take to honour Stop (it stops after the current step, validation or save)
    before it is ended (``SYMPTOMGEN_STOP_GRACE_S``)."""
    hub_timeout_s: float = 3.0
    """How long the Hub reachability check waits (``SYMPTOMGEN_HUB_TIMEOUT``)."""
    hub_endpoint: str = "https://huggingface.co"
    """The Hub's address (``HF_ENDPOINT``)."""
    offline: bool = False
    """Offline mode asked for (``HF_HUB_OFFLINE``)."""
    allowed_models: tuple[str, ...] = ()
    """Hub ids visitors may load (``SYMPTOMGEN_ALLOWED_MODELS``, comma-separated, ``owner/*`` allowed); empty = any."""
    zero_gpu: bool = False
    """Running on a ZeroGPU Space (``SPACES_ZERO_GPU``)."""
    zero_gpu_max_s: int = 300
    """Longest GPU request on ZeroGPU (``SYMPTOMGEN_ZEROGPU_MAX_S``)."""
    on_space: bool = False
    """Running on a Hugging Face Space (``SPACE_ID`` is set)."""
    space_oauth: bool = False
    """The Space offers "Sign in with Hugging Face" (its front matter's ``hf_oauth: true`` makes Spaces set
    ``OAUTH_CLIENT_ID``)."""
    host: str = ""
    """Address to listen on (``SYMPTOMGEN_HOST`` or ``GRADIO_SERVER_NAME``); empty = the door's default."""
    port: int = 7860
    """Port to listen on (``SYMPTOMGEN_PORT`` or ``GRADIO_SERVER_PORT``)."""
    share: bool = False
    """Also serve on a public share link (``SYMPTOMGEN_SHARE``)."""
    auth: str = ""
    """``user:password`` pairs, comma-separated (``SYMPTOMGEN_AUTH``); empty = no login."""
    mcp: bool = False
    """Also serve generation and the run list as MCP tools at ``/gradio_api/mcp/`` (``SYMPTOMGEN_MCP``)."""
    lend_hub_token: bool = False
    """Let logged-in visitors push and import with the server's own Hub token (``SYMPTOMGEN_LEND_HF_TOKEN``).
    Honoured only when a login is configured (``SYMPTOMGEN_AUTH``): without one every visitor is a stranger, and
    Hub writes and private reads use the visitor's own token (Sign in with Hugging Face, or one they type)."""
    max_request_bytes: int = 1 * _MB
    """Largest request body the web server reads, file uploads aside (``SYMPTOMGEN_MAX_REQUEST_KB``)."""
    cpu_bf16: bool = True
    """Use bf16 autocast (training) and bf16 weights (serving) on CPUs that multiply bf16 natively
    (``SYMPTOMGEN_CPU_BF16``; ``cputune.native_bf16``)."""
    keep_freed_memory: bool = False
    """Make glibc keep freed memory for reuse while training: fewer page faults, more resident memory
    (``SYMPTOMGEN_KEEP_FREED_MEMORY``; ``cputune.keep_freed_memory``)."""
    tcmalloc: bool = True
    """Run the CLI and the app's training processes with tcmalloc preloaded when it is installed (Debian:
    ``libtcmalloc-minimal4``): 1.4× faster training steps on CPU (``SYMPTOMGEN_TCMALLOC``; ``cputune.preload_env``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            runs_dir=Path(env.get("SYMPTOMGEN_RUNS_DIR") or d.runs_dir),
            max_file_bytes=int(_number(env, "SYMPTOMGEN_MAX_FILE_MB", d.max_file_bytes / _MB, float) * _MB),
            max_rows=_number(env, "SYMPTOMGEN_MAX_ROWS", d.max_rows),
            max_import_bytes=int(_number(env, "SYMPTOMGEN_MAX_IMPORT_MB", d.max_import_bytes / _MB, float) * _MB),
            max_import_parameters=int(_number(env, "SYMPTOMGEN_MAX_IMPORT_PARAMS_M", d.max_import_parameters / 1e6,
                                              float) * 1e6),
            max_runs=_number(env, "SYMPTOMGEN_MAX_RUNS", d.max_runs),
            max_runs_bytes=int(_number(env, "SYMPTOMGEN_MAX_RUNS_GB", d.max_runs_bytes / (1024 * _MB), float)
                               * 1024 * _MB),
            stop_grace_s=_number(env, "SYMPTOMGEN_STOP_GRACE_S", d.stop_grace_s, float),
            hub_timeout_s=_number(env, "SYMPTOMGEN_HUB_TIMEOUT", d.hub_timeout_s, float),
            hub_endpoint=(env.get("HF_ENDPOINT") or d.hub_endpoint).strip(),
            offline=env_flag(env.get("HF_HUB_OFFLINE")),
            allowed_models=tuple(m.strip() for m in (env.get("SYMPTOMGEN_ALLOWED_MODELS") or "").split(",")
                                 if m.strip()),
            zero_gpu=env_flag(env.get("SPACES_ZERO_GPU")),
            zero_gpu_max_s=_number(env, "SYMPTOMGEN_ZEROGPU_MAX_S", d.zero_gpu_max_s),
            on_space=bool((env.get("SPACE_ID") or "").strip()),
            space_oauth=bool((env.get("SPACE_ID") or "").strip()) and bool((env.get("OAUTH_CLIENT_ID") or "").strip()),
            host=(env.get("SYMPTOMGEN_HOST") or env.get("GRADIO_SERVER_NAME") or "").strip(),
            port=_number(env, "SYMPTOMGEN_PORT", 0) or _number(env, "GRADIO_SERVER_PORT", d.port),
            share=env_flag(env.get("SYMPTOMGEN_SHARE")),
            auth=env.get("SYMPTOMGEN_AUTH") or "",
            mcp=env_flag(env.get("SYMPTOMGEN_MCP")),
            lend_hub_token=env_flag(env.get("SYMPTOMGEN_LEND_HF_TOKEN")),
            max_request_bytes=int(_number(env, "SYMPTOMGEN_MAX_REQUEST_KB", d.max_request_bytes / 1024, float)
                                  * 1024),
            cpu_bf16=env_flag(env.get("SYMPTOMGEN_CPU_BF16"), d.cpu_bf16),
            keep_freed_memory=env_flag(env.get("SYMPTOMGEN_KEEP_FREED_MEMORY"), d.keep_freed_memory),
            tcmalloc=env_flag(env.get("SYMPTOMGEN_TCMALLOC"), d.tcmalloc),
        )

    @property
    def lends_hub_token(self) -> bool:
        """Whether the server's own Hub token may act for visitors: only behind a login, and only when the owner
        opted in."""
        return bool(self.auth.strip()) and self.lend_hub_token


def keep_owner_token_private() -> None:
    """Stop huggingface_hub from sending this machine's token (``HF_TOKEN`` or a saved login) on requests that do
    not pass one explicitly, in this process and the training processes it starts.  A public page calls it: a
    visitor's Hub model id or dataset then loads anonymously, so a private repo of the owner is not theirs to read."""
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = True  # read at each request; the variable only at import


def rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank in a torchrun/accelerate job (``RANK``); 0 when it runs alone.

    Read on its own, not through ``Settings``: every rank needs it before anything else (and before
    ``TrainingArguments`` initialises the process group), and printing must not fail on an unrelated variable."""
    env = os.environ if env is None else env
    return int(env.get("RANK") or 0)


def world_size(env: Mapping[str, str] | None = None) -> int:
    """How many processes train together (``WORLD_SIZE``, set by torchrun); 1 when this one runs alone."""
    env = os.environ if env is None else env
    return int(env.get("WORLD_SIZE") or 1)


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or the only process: the one that writes the run folder and prints."""
    return rank() == 0


def set_library_defaults() -> None:
    """Environment defaults for the libraries we load; a variable already set is left alone.

    ``TOKENIZERS_PARALLELISM=false``: the Rust tokenizers' thread pool off, so a process forked after tokenizing
    (a DataLoader worker, the training child) neither warns nor risks the pool's fork deadlock."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


_override: dict[str, object] = {}
_lock = threading.Lock()


def current() -> Settings:
    """The settings now: the environment, with any ``override`` applied on top."""
    settings = Settings.from_env()
    with _lock:
        return replace(settings, **_override) if _override else settings


@contextlib.contextmanager
def override(**values: object) -> Iterator[Settings]:
    """Pin some settings for the duration of a ``with`` block (tests, embedding programs)."""
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    with _lock:
        saved = dict(_override)
        _override.update(values)
    try:
        yield current()
    finally:
        with _lock:
            _override.clear()
            _override.update(saved)
