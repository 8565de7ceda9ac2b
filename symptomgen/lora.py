"""LoRA through ``peft``: wrap a model for training, and put a saved adapter back onto its base.

A LoRA run (``TrainConfig.lora_rank`` > 0) trains small low-rank matrices beside the frozen weights of the
layers named in ``lora_targets``.  Its ``best/`` folder holds the adapter only (``adapter_config.json``,
``adapter_model.safetensors``, as ``PeftModel.save_pretrained`` writes them) and the tokenizer; the run
record names the base (``RunRecord.lora_base``: ``base`` for the run's own ``base/`` folder, or a Hub id).
``modeling.load_pretrained`` recognises an adapter folder and returns base and adapter merged into one plain
model (``merge_and_unload``), so generation, evaluation and explanation never need to know.

GPT-2 builds its projections from ``transformers.pytorch_utils.Conv1D``, whose weight is stored
(in_features, out_features): peft must be told so with ``fan_in_fan_out=True``, which ``apply_lora`` sets
from the layers it finds.  An adapter folder is as hostile as any import: only LoRA, safetensors weights,
a bounded rank, and a base that is this run's own ``base/`` or an allowed Hub id (never a path it names).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any, Callable

from .config import LORA_TARGETS_GPT2, TrainConfig, setting
from .errors import InvalidInput, ModelLoadError, first_line
from .hub import check_model_allowed, looks_like_hub_id

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
OWN_BASE = "base"
"""``RunRecord.lora_base`` for an adapter whose base is the run's own ``base/`` folder."""


def peft_available() -> bool:
    return importlib.util.find_spec("peft") is not None


def _require_peft() -> None:
    if not peft_available():
        raise InvalidInput("LoRA needs the peft package, which is not installed here (pip install peft).")
    # peft 0.21 asks transformers 5 a deprecated question on every wrap: not the user's concern.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def is_adapter_folder(path: Path | str) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def _linear_layers(model) -> dict[str, Any]:
    """Every layer LoRA can adapt (``nn.Linear`` or GPT-2's ``Conv1D``), by full name; the output head excluded."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return {n: m for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Linear, Conv1D)) and n.split(".")[-1] != "lm_head"}


def check_targets(model, cfg: TrainConfig) -> list:
    """The layers ``cfg.lora_targets`` names in ``model``; ``InvalidInput`` (peft missing, or no layer matches)."""
    _require_peft()
    targets = cfg.lora_targets.split(",")
    layers = _linear_layers(model)
    # peft's rule for a plain name: the module's full name is it, or ends with "." + it.
    hits = [m for n, m in layers.items() if any(n == t or n.endswith("." + t) for t in targets)]
    if not hits:
        names = sorted({n.split(".")[-1] for n in layers})[:8]
        raise InvalidInput(f"None of the LoRA target modules ({cfg.lora_targets}) is a linear layer of this "
                           f"model; its layers are named {', '.join(names) or 'nothing adaptable'} "
                           f"(GPT-2: {LORA_TARGETS_GPT2}).")
    return hits


def apply_lora(model, cfg: TrainConfig, base_name: str | None = None):
    """``model`` wrapped as a trainable ``PeftModel`` with adapters on ``cfg.lora_targets``.

    ``base_name`` (a Hub id, or None) is written into the adapter's config, so that a pushed adapter of a
    Hub model loads with ``transformers``/``peft`` alone.  Raises ``InvalidInput`` when no target matches.
    """
    hits = check_targets(model, cfg)
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    targets = cfg.lora_targets.split(",")
    config = LoraConfig(task_type="CAUSAL_LM", r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                        lora_dropout=cfg.lora_dropout, target_modules=targets,
                        fan_in_fan_out=any(isinstance(m, Conv1D) for m in hits))
    try:
        wrapped = get_peft_model(model, config)
    except (ValueError, TypeError) as exc:  # e.g. a target that is not a layer peft supports
        raise InvalidInput(f"LoRA could not be applied to this model: {first_line(exc)}") from None
    wrapped.peft_config["default"].base_model_name_or_path = base_name
    return wrapped


def make_portable(folder: Path, lora_base: str | None) -> None:
    """Name the adapter's base in ``folder/adapter_config.json`` as others can load it: the Hub id it was
    trained on, or nothing when its base is the run's own ``base/`` (peft fills in the folder it was loaded from,
    a path on this server, which an export must not carry)."""
    path = Path(folder) / ADAPTER_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    hub_base = lora_base if lora_base and lora_base != OWN_BASE and looks_like_hub_id(lora_base) else None
    config["base_model_name_or_path"] = hub_base
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def _checked_config(path: Path) -> dict:
    """The adapter's config, refused unless it is a plain, bounded LoRA with safetensors weights."""
    try:
        raw = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"The adapter config in {path.name}/ is unreadable ({type(exc).__name__}).") from None
    rank_max = setting(TrainConfig, "lora_rank").max
    r = raw.get("r") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("peft_type") != "LORA":
        raise ModelLoadError(f"The adapter in {path.name}/ is not a LoRA adapter.")
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= rank_max:
        raise ModelLoadError(f"The adapter in {path.name}/ has rank {r!r}; ranks 1 to {rank_max} are accepted.")
    # Both make peft allocate beyond the adapter file's own size (copied layers, copied modules).
    if raw.get("layer_replication") or raw.get("modules_to_save"):
        raise ModelLoadError(f"The adapter in {path.name}/ copies base layers or modules, which is not accepted.")
    if not (path / ADAPTER_WEIGHTS).is_file():
        raise ModelLoadError(f"The adapter in {path.name}/ has no {ADAPTER_WEIGHTS} (only safetensors weights "
                             "are loaded).")
    return raw


def adapter_base(path: Path) -> str:
    """What the adapter in ``path`` applies to: the run's own ``base/`` folder beside it when there is one,
    else the Hub id its config names (allowed on this server; never a path on this machine)."""
    sibling = path.parent / "base"
    if path.name != "base" and (sibling / "config.json").is_file():
        return str(sibling)
    name = str(_checked_config(path).get("base_model_name_or_path") or "").strip()
    if not name:
        raise ModelLoadError(f"The adapter in {path.name}/ names no base model, and there is no base/ folder "
                             "beside it.")
    if not looks_like_hub_id(name) or Path(name).exists():
        raise ModelLoadError(f"The adapter in {path.name}/ names a base that is not a Hub model id; only Hub ids "
                             "or the run's own base/ folder are loaded.")
    check_model_allowed(name)
    return name


def load_adapter(path: Path, load_base: Callable[[str], tuple]) -> tuple:
    """(model, tokenizer): the base (loaded with ``load_base``) with the adapter in ``path`` merged in; the
    tokenizer saved beside the adapter, else the base's."""
    _require_peft()
    path = Path(path)
    _checked_config(path)
    model, tokenizer = load_base(adapter_base(path))
    from peft import PeftModel

    try:
        merged = PeftModel.from_pretrained(model, str(path), is_trainable=False).merge_and_unload()
    except Exception as exc:  # shapes that do not fit the base, a damaged weights file
        raise ModelLoadError(f"Could not apply the LoRA adapter in {path.name}/: {first_line(exc)}") from exc
    if (path / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return merged, tokenizer


def base_for_run(run_path: Path, lora_base: str | None) -> str:
    """The base a LoRA run's adapters apply to, to build again when resuming: its own ``base/``, else the Hub
    id its record names."""
    own = run_path / "base"
    if (own / "config.json").is_file():
        return str(own)
    if lora_base and lora_base != OWN_BASE and looks_like_hub_id(lora_base):
        return lora_base
    raise ModelLoadError(f"Run {run_path.name} records no base model for its LoRA adapters.")
