"""Honest evaluation: loss and perplexity per real token, and scores that fit the run's target.

A run's target kind (``scoring``: ``list`` or ``text``, stored in its record) picks the scores: symptom overlap for
comma lists (generated and reference phrases as sets, lower-cased, stripped: precision, recall and F1), ROUGE-1
and ROUGE-L for free text; averaged over rows.  Rows come from a run's own stored validation split; a ``limit``
takes a seeded sample spread across names (``splits.spread_sample``), never the first rows, which in a table
sorted by name would all be one name.
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
from .scoring import LIST, METRIC_KEYS, score_text
from .splits import name_keys, spread_sample
from .generation import generate

GREEDY = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.2)


@dataclass(frozen=True)
class EvalReport:
    """Scores of one model on evaluation rows; those that do not fit the run's target kind are None."""

    rows: int
    val_loss: float
    perplexity: float
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    sampled_precision: float | None = None
    sampled_recall: float | None = None
    sampled_f1: float | None = None
    rouge1: float | None = None
    rougeL: float | None = None
    sampled_rouge1: float | None = None
    sampled_rougeL: float | None = None
    target_kind: str = LIST
    names: int = 0
    """Distinct names among the rows."""

    def to_dict(self) -> dict:
        """The scores that apply (None ones left out), floats rounded."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None}



def overlap_table(model, tokenizer, frame: pd.DataFrame, settings: GenerationSettings = GREEDY,
                  stop: threading.Event | None = None, extra_column: str | None = None,
                  kind: str = LIST) -> pd.DataFrame:
    """Per-row name, reference, generated text, ``matched`` phrases and the kind's scores (``scoring.METRIC_KEYS``;
    ``stop`` is checked between rows)."""
    records = []
    for name, ref in zip(frame["prompt"], frame["target"]):
        if stop is not None and stop.is_set():
            raise EvaluationCancelled("Evaluation cancelled.")
        text = generate(model, tokenizer, name, settings.with_(num_return_sequences=1))[0]
        records.append({"name": name, "reference": ref, "generated": text,
                        **score_text(text, ref, kind, extra_column)})
    return pd.DataFrame(records, columns=["name", "reference", "generated", "matched", *METRIC_KEYS[kind]])


def evaluate_model(model, tokenizer, frame: pd.DataFrame, loss_on: str = "target", max_length: int = 128,
                   sampling: GenerationSettings | None = None, stop: threading.Event | None = None,
                   extra_column: str | None = None, kind: str = LIST) -> tuple[EvalReport, pd.DataFrame]:
    """Loss/perplexity over real tokens plus greedy (and optionally sampled) scores of the target ``kind``."""
    rows = encode_frame(tokenizer, frame, max_length, loss_on)
    loss = mean_token_loss(model, rows, tokenizer.pad_token_id)
    table = overlap_table(model, tokenizer, frame, GREEDY, stop, extra_column, kind)
    sampled = (overlap_table(model, tokenizer, frame, sampling, stop, extra_column, kind)
               if sampling is not None else None)
    scores = {key: float(table[key].mean()) for key in METRIC_KEYS[kind]}
    if sampled is not None:
        scores.update({f"sampled_{key}": float(sampled[key].mean()) for key in METRIC_KEYS[kind]})
    report = EvalReport(rows=len(frame), val_loss=loss, perplexity=math.exp(min(loss, 50.0)), target_kind=kind,
                        names=int(name_keys(frame["prompt"]).nunique()), **scores)
    return report, table


def evaluate_run(run_dir: Path, frame: pd.DataFrame | None = None, sampling: GenerationSettings | None = None,
                 include_base: bool = True, limit: int | None = None, stop: threading.Event | None = None) -> dict:
    """Evaluate a run's best model (and its base model) on its own validation rows."""
    from .catalog import base_model, target_kind
    from .modeling import load_pretrained, place
    from .runs import Run

    run = Run(Path(run_dir))
    rec = run.record()
    train_cfg = rec.train or TrainConfig()
    if frame is None:
        frame = run.split_frames()[1]
    if limit is not None:
        if int(limit) < 1:
            raise InvalidInput(f"The number of rows to evaluate must be at least 1, got {limit}.")
        frame = spread_sample(frame, int(limit))
    if len(frame) == 0:
        raise InvalidInput(f"Run {run.run_id} has no validation rows to evaluate.")
    kwargs = dict(loss_on=train_cfg.loss_on, max_length=train_cfg.max_length, sampling=sampling, stop=stop,
                  extra_column=rec.extra_target_column, kind=target_kind(run))
    run.require_model()
    model, tok = load_pretrained(run.best_dir)
    place(model)
    report, table = evaluate_model(model, tok, frame, **kwargs)
    out = {"run": run.run_id, "target_kind": report.target_kind, "fine_tuned": report.to_dict(), "table": table}
    if include_base:
        base = base_model(run)
        if base is None:
            out["base"] = {"error": "no base model is recorded for this run."}
            return out
        try:
            bmodel, btok = load_pretrained(base)
            place(bmodel)
            out["base"] = evaluate_model(bmodel, btok, frame, **kwargs)[0].to_dict()
        except EvaluationCancelled:
            raise
        except Exception as exc:  # base model may be unreachable offline; say so, keep the rest
            out["base"] = {"error": first_line(exc)}
    return out
