"""What a stranger's run must satisfy before any of it is loaded (``share`` imports zips and Hub repos through it).

Everything here reads headers and small files only, and each read is bounded before it happens:

- every file has a size cap by kind (``member_limit``), applied while a zip is unpacked, so a file that
  compresses 1000:1 stops at its cap instead of filling the disk and the memory of whatever parses it;
- the model's size comes from its ``config.json`` (layers, width, vocabulary) and must fit
  ``Settings.max_import_parameters`` before anything is built; then the model is laid out on torch's *meta*
  device (no memory) and the safetensors headers (``safe_open``, no tensor read) must hold exactly its
  parameters: a missing tensor would be filled with random numbers, an extra one is not ours;
- ``run.json`` is checked field by field (``RunRecord.problems``), the metrics table and the split row by row.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from .errors import ShareError, first_line, without_paths
from .limits import MAX_SPLIT_CELL_CHARS, check_delimited_header, check_frame
from .records import RunRecord
from .settings import current

MB = 2**20
MAX_TEXT_FILE_BYTES = 32 * MB  # tokenizer.json, vocab.json, merges.txt, *.model, chat templates, configs
MAX_METRICS_BYTES = 2 * MB  # one row per epoch: ~100 bytes a row
MAX_METRICS_ROWS = 10_000
MAX_RECORD_BYTES = 256 * 1024  # run.json: a real one holds settings and a few lines (2-5 KB)
MAX_UNKNOWN_RECORD_BYTES = 4096  # fields of a newer or foreign version are kept, but only a few KB of them
MAX_HEADER_BYTES = 16 * MB  # a safetensors header (JSON) names tensors and offsets: kilobytes in practice
# Shapes no GPT-2-family model this app serves comes near; each bounds how long building the meta model takes.
SHAPE_LIMITS = {"layers": 128, "width": 16_384, "vocabulary": 1_000_000, "positions": 131_072}
_KEYS = {"layers": ("n_layer", "num_hidden_layers", "num_layers", "n_layers"),
         "width": ("n_embd", "hidden_size", "d_model"),
         "vocabulary": ("vocab_size",),
         "positions": ("n_positions", "max_position_embeddings", "n_ctx"),
         "inner": ("n_inner", "intermediate_size", "ffn_dim")}
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def member_limit(rel: PurePosixPath) -> int:
    """The most bytes the file at ``rel`` (inside a run export) may hold."""
    settings = current()
    if rel.suffix == ".safetensors":
        return settings.max_import_bytes
    if rel.name == "metrics.csv":
        return MAX_METRICS_BYTES
    if rel.name == "run.json":  # a run's record is a few KB: a bigger one is refused before it is parsed
        return MAX_RECORD_BYTES
    if rel.suffix == ".csv":
        return settings.max_file_bytes  # the split: the same cap as an uploaded data file
    return MAX_TEXT_FILE_BYTES


def check_sizes(root: Path, label: str) -> None:
    """Every file under ``root`` within its ``member_limit``."""
    for p in root.rglob("*"):
        if p.is_file():
            rel = PurePosixPath(p.relative_to(root).as_posix())
            if p.stat().st_size > member_limit(rel):
                raise ShareError(f"{label}: {_shown(rel)} is larger than the {member_limit(rel) // MB} MB allowed "
                                 "for such a file.")


def _shown(rel: PurePosixPath) -> str:
    return "/".join(rel.parts[-2:])  # the archive's top folder can be anything: show the file's own name


def read_json(path: Path, label: str, what: str) -> Any:
    if path.stat().st_size > MAX_TEXT_FILE_BYTES:
        raise ShareError(f"{label}: {what} is larger than {MAX_TEXT_FILE_BYTES // MB} MB.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ShareError(f"{label}: {what} is not valid JSON ({first_line(exc)[:100]}).") from None


# ----------------------------------------------------------------------------- the model

def _dimension(config: dict, name: str, label: str) -> int | None:
    for key in _KEYS[name]:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ShareError(f"{label}: config.json field {key} must be a positive whole number, got "
                             f"{str(value)[:40]!r}.")
        if name in SHAPE_LIMITS and value > SHAPE_LIMITS[name]:
            raise ShareError(f"{label}: config.json field {key} is {value}; this server loads models with at most "
                             f"{SHAPE_LIMITS[name]:,} {name}.")
        return value
    return None


def estimate_parameters(config: dict, label: str) -> int:
    """About how many parameters ``config`` describes (a GPT-2 block: 12·width² + the embeddings), from the
    numbers alone; refuses a config that does not state its size."""
    dims = {n: _dimension(config, n, label) for n in _KEYS}
    missing = [n for n in ("layers", "width", "vocabulary") if dims[n] is None]
    if missing:
        raise ShareError(f"{label}: config.json does not state the model's {' and '.join(missing)}.")
    width, inner = dims["width"], dims["inner"] or 4 * dims["width"]
    return (dims["vocabulary"] + (dims["positions"] or 0)) * width + dims["layers"] * (4 * width * width
                                                                                      + 2 * width * inner)


def _too_big(count: int, label: str, what: str) -> ShareError:
    cap = current().max_import_parameters
    return ShareError(f"{label}: the {what} has {count / 1e6:,.0f} M parameters; this server imports models of "
                      f"at most {cap / 1e6:,.0f} M (SYMPTOMGEN_MAX_IMPORT_PARAMS_M).")


def expected_tensors(folder: Path, label: str, what: str) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(every parameter's name → shape, other tensors a checkpoint may hold → shape) of the model that
    ``folder/config.json`` describes, laid out on the meta device: no memory is allocated."""
    config = read_json(folder / "config.json", label, f"the {what}'s config.json")
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ShareError(f"{label}: the {what}'s config.json does not name a model type.")
    estimate = estimate_parameters(config, label)
    if estimate > current().max_import_parameters:
        raise _too_big(estimate, label, what)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from .modeling import MODEL_BUILD_LOCK

    try:
        cfg = AutoConfig.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
        # The meta device is a process-wide default while it is on: no other thread may build a model meanwhile.
        with MODEL_BUILD_LOCK, torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - an unknown model type, inconsistent sizes: transformers says which
        raise ShareError(f"{label}: the {what}'s config.json does not describe a causal language model this "
                         f"server can load ({without_paths(first_line(exc))[:200]}).") from None
    params = {n: tuple(p.shape) for n, p in model.named_parameters()}
    count = sum(math.prod(s) for s in params.values())
    if count > current().max_import_parameters:
        raise _too_big(count, label, what)
    others = {n: tuple(t.shape) for n, t in model.state_dict().items() if n not in params}
    return params, others


def _header_length(path: Path) -> int:
    with open(path, "rb") as fh:
        raw = fh.read(8)
    return struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1


def stored_tensors(folder: Path, label: str) -> dict[str, tuple[tuple, str]]:
    """Name → (shape, dtype) of every tensor in the folder's safetensors files, from their headers only."""
    from safetensors import safe_open

    found: dict[str, tuple[tuple, str]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        size = _header_length(path)
        if not 0 < size <= min(MAX_HEADER_BYTES, path.stat().st_size - 8):
            raise ShareError(f"{label}: {path.name} is not a valid safetensors file.")
        try:
            with safe_open(str(path), framework="pt") as fh:
                for name in fh.keys():
                    if name in found:
                        raise ShareError(f"{label}: tensor {name[:80]} is stored twice.")
                    piece = fh.get_slice(name)
                    found[name] = (tuple(piece.get_shape()), str(piece.get_dtype()))
        except ShareError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors refuses a header whose offsets do not fit the file
            raise ShareError(f"{label}: {path.name} is not a valid safetensors file "
                             f"({without_paths(first_line(exc))[:120]}).") from None
    return found


def check_weights(folder: Path, label: str, what: str) -> int:
    """Refuse unless ``folder``'s safetensors hold exactly the parameters its config.json describes, with the
    right shapes and a float type; returns the parameter count."""
    params, others = expected_tensors(folder, label, what)
    stored = stored_tensors(folder, label)
    missing = sorted(set(params) - set(stored))
    extra = sorted(set(stored) - set(params) - set(others))
    if missing:
        raise ShareError(f"{label}: the {what}'s weights lack {len(missing)} of its {len(params)} tensors (such as "
                         f"{missing[0][:80]}); a model with missing weights would be filled with random numbers.")
    if extra:
        raise ShareError(f"{label}: the {what}'s weights hold {len(extra)} tensor(s) its config.json does not "
                         f"describe (such as {extra[0][:80]}).")
    for name, (shape, dtype) in stored.items():
        want = params.get(name, others.get(name))
        if shape != want:
            raise ShareError(f"{label}: tensor {name[:80]} of the {what} has shape {list(shape)}, but its "
                             f"config.json makes it {list(want)}.")
        if name in params and dtype not in FLOAT_DTYPES:
            raise ShareError(f"{label}: tensor {name[:80]} of the {what} is stored as {dtype}, not floats.")
    return sum(math.prod(s) for s in params.values())


def check_adapter(folder: Path, label: str) -> int:
    """A LoRA adapter folder: its config is JSON and its weights (headers only) fit the parameter cap."""
    read_json(folder / "adapter_config.json", label, "adapter_config.json")
    stored = stored_tensors(folder, label)
    if not stored:
        raise ShareError(f"{label}: the adapter holds no weights.")
    count = sum(math.prod(shape) for shape, _ in stored.values())
    if count > current().max_import_parameters:
        raise _too_big(count, label, "adapter")
    return count


def check_tokenizer(model, tokenizer, label: str, what: str) -> None:
    """A tokenizer whose ids fit the model's embeddings (else generation fails on the first unknown id)."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise ShareError(f"{label}: the {what}'s tokenizer has {len(tokenizer):,} tokens but the model only "
                         f"{rows:,} embeddings.")


# ----------------------------------------------------------------------------- the record and the tables

def check_record(raw: Any, label: str, meta: str) -> RunRecord:
    """The run's record, refused when a field is not what it claims to be (see ``RunRecord.problems``)."""
    if not isinstance(raw, dict):
        raise ShareError(f"{label}: {meta}/run.json is not a run record.")
    from .config import DataConfig, TrainConfig

    for key, cls in (("data", DataConfig), ("train", TrainConfig)):
        try:
            cls.from_dict(raw[key])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ShareError(f"{label}: {meta}/run.json is not a valid run configuration "
                             f"({key}: {without_paths(first_line(exc))[:160]}).") from None
    unknown = {k: v for k, v in raw.items() if k not in RunRecord.known_keys()}
    if unknown and len(json.dumps(unknown, default=str)) > MAX_UNKNOWN_RECORD_BYTES:
        raise ShareError(f"{label}: {meta}/run.json carries {len(unknown)} field(s) this app does not know "
                         f"({', '.join(sorted(map(str, unknown))[:3])[:120]}) larger than "
                         f"{MAX_UNKNOWN_RECORD_BYTES >> 10} KB; a run record holds only its own fields.")
    problems = RunRecord.problems(raw)
    if problems:
        raise ShareError(f"{label}: {meta}/run.json has invalid fields: {'; '.join(problems)[:300]}.")
    return RunRecord.from_json(raw)


def check_metrics(path: Path, label: str, meta: str) -> pd.DataFrame:
    """The per-epoch table: bounded, with whole positive epochs and finite losses."""
    check_delimited_header(path, f"{label}: {meta}/metrics.csv", error=ShareError)  # before pandas parses it
    try:
        frame = pd.read_csv(path, nrows=MAX_METRICS_ROWS + 1)
    except (OSError, ValueError, UnicodeDecodeError):
        raise ShareError(f"{label}: {meta}/metrics.csv is not readable as a table.") from None
    if not {"epoch", "validation_loss"} <= set(frame.columns):
        raise ShareError(f"{label}: {meta}/metrics.csv is not a run's per-epoch metrics table.")
    if len(frame) > MAX_METRICS_ROWS:
        raise ShareError(f"{label}: {meta}/metrics.csv has more than {MAX_METRICS_ROWS:,} rows.")
    for column in ("epoch", "training_loss", "validation_loss"):
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any() or not values.map(math.isfinite).all():
            raise ShareError(f"{label}: {meta}/metrics.csv column {column} holds values that are not finite "
                             "numbers.")
    epochs = pd.to_numeric(frame["epoch"])
    if not ((epochs > 0) & (epochs == epochs.round())).all():
        raise ShareError(f"{label}: {meta}/metrics.csv column epoch must hold whole epochs from 1.")
    return frame


def check_split(path: Path, label: str, meta: str) -> None:
    """``train.csv``/``val.csv``: readable, with prompt and target columns, at most ``max_rows`` rows."""
    limit = current().max_rows
    if path.is_file():
        check_delimited_header(path, f"{label}: {meta}/{path.name}", error=ShareError)  # before pandas parses it
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=limit + 1)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ShareError(f"{label}: {meta}/{path.name} is missing or unreadable ({type(exc).__name__}).") from None
    if not {"prompt", "target"} <= set(frame.columns):
        raise ShareError(f"{label}: {meta}/{path.name} lacks the prompt/target columns of a run split.")
    if len(frame) > limit:
        raise ShareError(f"{label}: {meta}/{path.name} has more than {limit:,} rows (SYMPTOMGEN_MAX_ROWS).")
    check_frame(frame, f"{label}: {meta}/{path.name}", max_cell_chars=MAX_SPLIT_CELL_CHARS, error=ShareError)
