"""Fall back to the bundled sample and ``scratch`` when the Hub cannot be reached.

Online users get the real Hub dataset and model.  Offline (or with
``HF_HUB_OFFLINE=1``) the check takes seconds, and the caller gets usable
settings plus notices saying exactly what was swapped and why (the page's way).  ``missing_offline`` only
names what cannot be had, for a caller that refuses instead (the CLI, unless ``--offline-fallback``).
"""

from __future__ import annotations

from pathlib import Path

from .config import SAMPLE_SOURCE, SCRATCH_MODEL, DataConfig, TrainConfig, is_scratch
from .data import source_kind
from .hub import hub_reachable, looks_like_hub_id, model_cached, offline_requested


def needs_hub_for_data(source: str) -> bool:
    return source_kind(source) == "hub"


def needs_hub_for_model(model: str) -> bool:
    return (not is_scratch(model) and not Path(model).expanduser().is_dir()
            and looks_like_hub_id(model) and not model_cached(model))


def missing_offline(data: DataConfig, train: TrainConfig) -> tuple[str, dict[str, str]]:
    """What these settings need from the Hub while it cannot be reached: ``(why, {"data": source, "model": id})``
    with only the missing ones; ``("", {})`` when nothing is missing (or the Hub answers)."""
    needs = {k: v for k, v, needed in (("data", data.source, needs_hub_for_data(data.source)),
                                        ("model", train.model, needs_hub_for_model(train.model))) if needed}
    if not needs or hub_reachable():
        return "", {}
    why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline_requested() else "the Hugging Face Hub is unreachable"
    return why, needs


def with_offline_fallback(data: DataConfig, train: TrainConfig) -> tuple[DataConfig, TrainConfig, list[str]]:
    """Settings that work without the Hub, and one notice per thing replaced."""
    why, missing = missing_offline(data, train)
    notices = []
    if "data" in missing:
        notices.append(f"Using the bundled sample data instead of '{data.source}': {why}.")
        data = data.with_(source=SAMPLE_SOURCE, prompt_column="Name", target_column="Symptoms")
    if "model" in missing:
        notices.append(f"Using the small 'scratch' model instead of '{train.model}': {why}.")
        train = train.with_(model=SCRATCH_MODEL)
    return data, train, notices
