"""Honest evaluation: loss and perplexity per real token, and symptom overlap.

Symptom overlap compares generated and reference symptoms as sets of
comma-separated phrases (lower-cased, stripped): precision, recall and F1,
averaged over rows.  Rows come from a run's own stored validation split.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .errors import EvaluationCancelled, first_line, InvalidInput
from .batching import encode_frame, mean_token_loss
from .config import GenerationSettings, TrainConfig
from .phrases import Overlap, overlap, phrase_pieces, phrases  # noqa: F401 (public here too)
from .generation import generate

GREEDY = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.2)


@dataclass(frozen=True)
class EvalReport:
    rows: int
    val_loss: float
    perplexity: float
    precision: float
    recall: float
    f1: float
    sampled_precision: float | None = None
    sampled_recall: float | None = None
    sampled_f1: float | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}



def overlap_table(model, tokenizer, frame: pd.DataFrame, settings: GenerationSettings = GREEDY,
                  stop: threading.Event | None = None, extra_column: str | None = None) -> pd.DataFrame:
    """Per-row name, reference, generated text and overlap scores (``stop`` is checked between rows)."""
    records = []
    for name, ref in zip(frame["prompt"], frame["target"]):
        if stop is not None and stop.is_set():
            raise EvaluationCancelled("Evaluation cancelled.")
        text = generate(model, tokenizer, name, settings.with_(num_return_sequences=1))[0]
        o = overlap(text, ref, extra_column)
        records.append({"name": name, "reference": ref, "generated": text, "matched": ", ".join(o.matched),
                        "precision": o.precision, "recall": o.recall, "f1": o.f1})
    return pd.DataFrame(records)


def evaluate_model(model, tokenizer, frame: pd.DataFrame, loss_on: str = "target", max_length: int = 128,
                   sampling: GenerationSettings | None = None, stop: threading.Event | None = None,
                   extra_column: str | None = None) -> tuple[EvalReport, pd.DataFrame]:
    """Loss/perplexity over real tokens plus greedy (and optionally sampled) overlap."""
    rows = encode_frame(tokenizer, frame, max_length, loss_on)
    loss = mean_token_loss(model, rows, tokenizer.pad_token_id)
    table = overlap_table(model, tokenizer, frame, GREEDY, stop, extra_column)
    sampled = overlap_table(model, tokenizer, frame, sampling, stop, extra_column) if sampling is not None else None
    report = EvalReport(
        rows=len(frame), val_loss=loss, perplexity=math.exp(min(loss, 50.0)),
        precision=float(table["precision"].mean()), recall=float(table["recall"].mean()),
        f1=float(table["f1"].mean()),
        sampled_precision=None if sampled is None else float(sampled["precision"].mean()),
        sampled_recall=None if sampled is None else float(sampled["recall"].mean()),
        sampled_f1=None if sampled is None else float(sampled["f1"].mean()),
    )
    return report, table


def evaluate_run(run_dir: Path, frame: pd.DataFrame | None = None, sampling: GenerationSettings | None = None,
                 include_base: bool = True, limit: int | None = None, stop: threading.Event | None = None) -> dict:
    """Evaluate a run's best model (and its base model) on its own validation rows."""
    from .catalog import base_model
    from .modeling import load_pretrained
    from .runs import Run

    run = Run(Path(run_dir))
    rec = run.record()
    train_cfg = rec.train or TrainConfig()
    if frame is None:
        frame = run.split_frames()[1]
    if limit is not None:
        if int(limit) < 1:
            raise InvalidInput(f"The number of rows to evaluate must be at least 1, got {limit}.")
        frame = frame.head(int(limit))
    if len(frame) == 0:
        raise InvalidInput(f"Run {run.run_id} has no validation rows to evaluate.")
    kwargs = dict(loss_on=train_cfg.loss_on, max_length=train_cfg.max_length, sampling=sampling, stop=stop,
                  extra_column=rec.extra_target_column)
    run.require_model()
    model, tok = load_pretrained(run.best_dir)
    report, table = evaluate_model(model, tok, frame, **kwargs)
    out = {"run": run.run_id, "fine_tuned": report.to_dict(), "table": table}
    if include_base:
        base = base_model(run)
        if base is None:
            out["base"] = {"error": "no base model is recorded for this run."}
            return out
        try:
            bmodel, btok = load_pretrained(base)
            out["base"] = evaluate_model(bmodel, btok, frame, **kwargs)[0].to_dict()
        except EvaluationCancelled:
            raise
        except Exception as exc:  # base model may be unreachable offline; say so, keep the rest
            out["base"] = {"error": first_line(exc)}
    return out
