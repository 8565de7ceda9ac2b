"""The run record: what ``runs/<id>/config.json`` says about a run, typed, read and written in one place.

``RunRecord.from_json`` accepts anything (a damaged file, a stranger's imported zip) and returns a record
whose fields have their declared types: text is one line, numbers are numbers or ``None``, the status is a
``RunStatus`` (``UNKNOWN`` for anything else), and the data and training settings are the validated config
dataclasses or ``None`` when they do not validate.  Keys it does not know are kept in ``extra`` so a newer
version's fields survive a rewrite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from .config import SPLIT_MODES, DataConfig, TrainConfig
from .scoring import TARGET_KINDS


class RunStatus(str, Enum):
    """Where a run stands.  A ``str`` so it is written to JSON (and compares) as its value."""

    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    EARLY_STOPPED = "early-stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # recorded "running", but its process is gone
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    __format__ = lambda self, spec: format(self.value, spec)  # noqa: E731 (f-strings show the value)

    @classmethod
    def parse(cls, value: Any) -> RunStatus:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN

    @property
    def completed(self) -> bool:
        """Ended on its own (all epochs, or early stopping): nothing left to resume."""
        return self in (RunStatus.FINISHED, RunStatus.EARLY_STOPPED)


def _line(value: Any, limit: int = 500) -> str:
    """One line of text: a forged newline in an imported file must not print a second line anywhere."""
    return " ".join(str(value).split())[:limit] if value is not None else ""


def _float(value: Any) -> float | None:
    """A finite number, or None (booleans, text and NaN are not numbers here)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None and number.is_integer() else None


def _one_of(value: Any, allowed: tuple[str, ...]) -> str | None:
    return value if isinstance(value, str) and value in allowed else None


def _settings(cls, value: Any):
    if not isinstance(value, dict):
        return None
    try:
        return cls.from_dict(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RunRecord:
    """Everything ``config.json`` records about a run."""

    run_id: str = ""
    status: RunStatus = RunStatus.UNKNOWN
    data: DataConfig | None = None
    """The data settings, or None when missing or invalid (see ``extra['data']`` for the raw value)."""
    train: TrainConfig | None = None
    """The training settings (``train.model`` is the starting model: a Hub id, ``scratch`` or a run's name)."""
    parent_run: str | None = None
    """The run this one trained on from, by name."""
    lora_base: str | None = None
    """LoRA runs: the model the adapter in ``best/`` applies to: ``base`` (this run's own ``base/`` folder) or a
    Hub id.  None for runs that saved every weight."""
    imported_from: str | None = None
    """Where an imported run came from (a zip's name or a Hub id); None for runs trained here."""
    parameters: int | None = None
    world_size: int = 1
    train_rows: int | None = None
    val_rows: int | None = None
    device: str = ""
    pid: int | None = None
    host: str = ""
    created: str = ""
    best_epoch: int | None = None
    best_val_loss: float | None = None
    epochs_done: int = 0
    message: str = ""
    seconds: float | None = None
    split_by: str | None = None
    """How the rows were split: ``by-row`` (stratified by name) or ``by-name``; None for runs from before there was
    a choice (those were split by name)."""
    target_kind: str | None = None
    """``list`` or ``text`` (``scoring.detect_target_kind``), detected from the data at training time; None for
    older runs (``catalog.target_kind`` infers it from their split)."""
    kept_epoch: int | None = None
    """The epoch whose model ``best/`` holds: the best one, or with ``keep=last`` the last finished one."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know (kept on rewrite)."""

    @classmethod
    def known_keys(cls) -> set[str]:
        """The top-level keys a run record is made of (the rest is kept in ``extra``)."""
        return {f.name for f in fields(cls)} - {"extra"}

    @classmethod
    def from_json(cls, raw: Any) -> RunRecord:
        raw = raw if isinstance(raw, dict) else {}
        known = cls.known_keys()
        extra = {k: v for k, v in raw.items() if k not in known}
        data, train = _settings(DataConfig, raw.get("data")), _settings(TrainConfig, raw.get("train"))
        for key, parsed in (("data", data), ("train", train)):  # unparsable settings are kept as they were
            if parsed is None and key in raw:
                extra[key] = raw[key]
        best_epoch, kept_epoch = _int(raw.get("best_epoch")), _int(raw.get("kept_epoch"))
        return cls(
            run_id=_line(raw.get("run_id"), 128), status=RunStatus.parse(raw.get("status")), data=data, train=train,
            parent_run=_line(raw["parent_run"], 128) if raw.get("parent_run") else None,
            imported_from=_line(raw["imported_from"]) if raw.get("imported_from") else None,
            lora_base=_line(raw["lora_base"], 200) if raw.get("lora_base") else None,
            parameters=_int(raw.get("parameters")), world_size=max(1, _int(raw.get("world_size")) or 1),
            train_rows=_int(raw.get("train_rows")), val_rows=_int(raw.get("val_rows")),
            device=_line(raw.get("device"), 100), pid=_int(raw.get("pid")), host=_line(raw.get("host"), 255),
            created=_line(raw.get("created"), 40), best_epoch=best_epoch if (best_epoch or 0) > 0 else None,
            best_val_loss=_float(raw.get("best_val_loss")), epochs_done=max(0, _int(raw.get("epochs_done")) or 0),
            message=_line(raw.get("message")), seconds=_float(raw.get("seconds")),
            split_by=_one_of(raw.get("split_by"), SPLIT_MODES),
            target_kind=_one_of(raw.get("target_kind"), TARGET_KINDS),
            kept_epoch=kept_epoch if (kept_epoch or 0) > 0 else None, extra=extra)

    @classmethod
    def problems(cls, raw: dict) -> list[str]:
        """The fields of ``raw`` that ``from_json`` could not keep as given, one short phrase each: a status
        outside the known set, a number that is not a finite number of its kind, text that is not one line.
        ``from_json`` repairs these; an imported record is refused for them instead (it was forged or broken)."""
        rec, out = cls.from_json(raw), []
        known = {s.value for s in RunStatus} - {RunStatus.UNKNOWN.value}
        for f in fields(cls):
            value = raw.get(f.name)
            if f.name in ("data", "train", "extra") or value is None:
                continue
            if f.name == "status":
                if not (isinstance(value, str) and value in known):
                    out.append(f"status {str(value)[:40]!r} is not one of {', '.join(sorted(known))}")
                continue
            kept = getattr(rec, f.name)
            if isinstance(kept, str):  # text: one line of printable characters (a long one is only shortened)
                bad = not isinstance(value, str) or not value.isprintable()
            else:
                bad = isinstance(value, bool) or kept != value
            if bad:
                out.append(f"{f.name} {str(value)[:40]!r} is not a valid value")
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in ("data", "train"):
                if value is None:
                    continue  # the raw value (if any) is in extra
                value = value.to_dict()
            elif isinstance(value, RunStatus):
                value = value.value
            out[f.name] = value
        return out

    def with_(self, **changes: Any) -> RunRecord:
        if "status" in changes:
            changes["status"] = RunStatus.parse(changes["status"])
        return replace(self, **changes)

    @property
    def model(self) -> str:
        """The starting model as recorded ("" when unknown)."""
        return self.train.model if self.train is not None else ""

    @property
    def extra_target_column(self) -> str | None:
        return self.data.extra_target_column if self.data is not None else None
