"""Honest evaluation: loss and perplexity per real token, and scores that fit the run's target.

A run's target kind (``scoring``: ``list`` or ``text``, stored in its record) picks the scores: symptom overlap for
comma lists (generated and reference phrases as sets, lower-cased, stripped: precision, recall and F1), ROUGE-1
and ROUGE-L for free text; averaged over rows.

``evaluate_run`` scores two sets of rows apart, each for the fine-tuned model and its base:

- ``unseen``: the run's own stored validation split, rows it never trained on (for a table whose names repeat,
  split by row, those are new rows of names it did see; split by name, names it never saw);
- ``taught``: a seeded sample of its training rows, as many as the unseen rows scored: how faithfully it
  reproduces what it was taught (the seed notebook's own example, "Kidney Failure", is a name in the table).

A ``limit`` caps both, as a seeded sample spread across names (``splits.spread_sample``), never the first rows,
which in a table sorted by name would all be one name.  The run's own numbers are also kept in its folder
(``evaluation.json``), so the model card can quote them.  Beside every set's scores stand two baselines from the
training rows, scored the same way on the same rows (``baselines``: a constant answer and a name lookup).
``progress`` receives an ``EvalProgress`` record before the first generation and after each one (the CLI draws its
bar from them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .baselines import baseline_scores, verdict
from .batching import encode_frame, mean_token_loss
from .config import GenerationSettings, TrainConfig
from .errors import EvaluationCancelled, InvalidInput, first_line
from .events import perplexity
from .generation import generate
from .phrases import Overlap, overlap, phrase_pieces, phrases  # noqa: F401 (public here too)
from .scoring import EVALUATION_FILE, LIST, METRIC_KEYS, saved_evaluation, score_text  # noqa: F401
from .splits import name_keys, spread_sample

GREEDY = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.2)
TAUGHT, UNSEEN = "taught", "unseen"
SET_LABELS = {TAUGHT: "taught: a seeded sample of the training rows (what the model was trained on)",
              UNSEEN: "unseen: the validation rows (never trained on)"}


@dataclass(frozen=True)
class EvalProgress:
    """How far ``evaluate_run`` is: ``done`` of ``total`` generations (rows × decoding passes × models), and
    the rows of each set it scores."""

    done: int
    total: int
    unseen: int
    taught: int
    available: int
    """Validation rows there were to pick from (``unseen`` < ``available``: a sample)."""


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
    rougeL: float | None = None  # noqa: N815 - the metric's own name (rouge-score)
    sampled_rouge1: float | None = None
    sampled_rougeL: float | None = None  # noqa: N815 - the metric's own name (rouge-score)
    target_kind: str = LIST
    names: int = 0
    """Distinct names among the rows."""

    def to_dict(self) -> dict:
        """The scores that apply (None ones left out), floats rounded."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None}



def overlap_table(model, tokenizer, frame: pd.DataFrame, settings: GenerationSettings = GREEDY,
                  stop: threading.Event | None = None, extra_column: str | None = None,
                  kind: str = LIST, tick: Callable[[], None] | None = None) -> pd.DataFrame:
    """Per-row name, reference, generated text, ``matched`` phrases and the kind's scores (``scoring.METRIC_KEYS``;
    ``stop`` is checked between rows, ``tick`` called after each)."""
    records = []
    for name, ref in zip(frame["prompt"], frame["target"]):
        if stop is not None and stop.is_set():
            raise EvaluationCancelled("Evaluation cancelled.")
        text = generate(model, tokenizer, name, settings.with_(num_return_sequences=1))[0]
        records.append({"name": name, "reference": ref, "generated": text,
                        **score_text(text, ref, kind, extra_column)})
        if tick is not None:
            tick()
    return pd.DataFrame(records, columns=["name", "reference", "generated", "matched", *METRIC_KEYS[kind]])


def evaluate_model(model, tokenizer, frame: pd.DataFrame, loss_on: str = "target", max_length: int = 128,
                   sampling: GenerationSettings | None = None, stop: threading.Event | None = None,
                   extra_column: str | None = None, kind: str = LIST,
                   tick: Callable[[], None] | None = None) -> tuple[EvalReport, pd.DataFrame]:
    """Loss/perplexity over real tokens plus greedy (and optionally sampled) scores of the target ``kind``."""
    rows = encode_frame(tokenizer, frame, max_length, loss_on)
    loss = mean_token_loss(model, rows, tokenizer.pad_token_id)
    table = overlap_table(model, tokenizer, frame, GREEDY, stop, extra_column, kind, tick)
    sampled = (overlap_table(model, tokenizer, frame, sampling, stop, extra_column, kind, tick)
               if sampling is not None else None)
    scores = {key: float(table[key].mean()) for key in METRIC_KEYS[kind]}
    if sampled is not None:
        scores.update({f"sampled_{key}": float(sampled[key].mean()) for key in METRIC_KEYS[kind]})
    report = EvalReport(rows=len(frame), val_loss=loss, perplexity=perplexity(loss), target_kind=kind,
                        names=int(name_keys(frame["prompt"]).nunique()), **scores)
    return report, table


def _score_sets(model, tok, sets: dict[str, pd.DataFrame], kwargs: dict) -> dict[str, tuple[EvalReport, pd.DataFrame]]:
    return {name: evaluate_model(model, tok, frame, **kwargs) for name, frame in sets.items()}


def evaluate_run(run_dir: Path, frame: pd.DataFrame | None = None, sampling: GenerationSettings | None = None,
                 include_base: bool = True, limit: int | None = None, stop: threading.Event | None = None,
                 progress: Callable[[EvalProgress], None] | None = None) -> dict:
    """Evaluate a run's best model (and its base model) on its validation rows ("unseen") and on as many of its
    training rows ("taught").

    Returns ``{"run", "target_kind", "unseen": {...}, "taught": {...}, "constant_answer", "verdict", "table",
    "taught_table"}``: each set holds its ``label``, ``rows``, ``names``, the ``fine_tuned`` and ``base`` reports
    (``{"error": ...}`` for a base that could not be evaluated) and the ``constant`` and ``lookup`` baselines' scores
    on the same rows (``baselines``); ``verdict`` is the sentence naming the best; ``table``/``taught_table`` are the
    per-row fine-tuned tables.  ``frame`` replaces the unseen rows (another source's validation split)."""
    from .catalog import base_model, target_kind
    from .modeling import load_pretrained, place
    from .runs import Run, atomic_write_text

    run = Run(Path(run_dir))
    rec = run.record()
    train_cfg = rec.train or TrainConfig()
    own_split = frame is None
    train_frame, val_frame = run.split_frames()
    if frame is None:
        frame = val_frame
    available = len(frame)
    if limit is not None:
        if int(limit) < 1:
            raise InvalidInput(f"The number of rows to evaluate must be at least 1, got {limit}.")
        frame = spread_sample(frame, int(limit))
    if len(frame) == 0:
        raise InvalidInput(f"Run {run.run_id} has no validation rows to evaluate.")
    sets = {TAUGHT: spread_sample(train_frame, len(frame)), UNSEEN: frame}
    sets = {k: v for k, v in sets.items() if len(v)}  # a run without training rows (never written so) has none
    run.require_model()
    kwargs = dict(loss_on=train_cfg.loss_on, max_length=train_cfg.max_length, sampling=sampling, stop=stop,
                  extra_column=rec.extra_target_column, kind=target_kind(run))
    # Issue 21: a constant answer and a lookup from the training rows, scored on the same rows (no model).
    constant, baselines = baseline_scores(train_frame, sets, kwargs["kind"], rec.extra_target_column)
    if progress is not None:
        total = sum(map(len, sets.values())) * (2 if sampling is not None else 1) * (2 if include_base else 1)
        counts = {"total": total, "unseen": len(frame), "taught": len(sets.get(TAUGHT, ())),
                  "available": available}
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            progress(EvalProgress(done, **counts))

        kwargs["tick"] = tick
        progress(EvalProgress(0, **counts))
    model, tok = load_pretrained(run.best_dir)
    place(model)
    tuned = _score_sets(model, tok, sets, kwargs)
    del model
    base: dict[str, dict] = {}
    if include_base:
        base_name = base_model(run)
        if base_name is None:
            base = {k: {"error": "no base model is recorded for this run."} for k in sets}
        else:
            try:
                bmodel, btok = load_pretrained(base_name)
                place(bmodel)
                base = {k: r.to_dict() for k, (r, _) in _score_sets(bmodel, btok, sets, kwargs).items()}
            except EvaluationCancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - base model may be unreachable offline; say so, keep the rest
                base = {k: {"error": first_line(exc)} for k in sets}
    train_names = set(name_keys(train_frame["prompt"])) if len(train_frame) else set()
    out: dict = {"run": run.run_id, "target_kind": kwargs["kind"]}
    for name, (report, _) in tuned.items():
        keys = set(name_keys(sets[name]["prompt"]))
        out[name] = {"label": SET_LABELS[name], "rows": report.rows, "names": report.names,
                     "names_in_training": len(keys & train_names), "fine_tuned": report.to_dict(),
                     **({"base": base[name]} if include_base else {}), **baselines[name]}
    out["constant_answer"] = constant
    out["verdict"] = verdict(out)
    out["table"] = tuned[UNSEEN][1]
    out["taught_table"] = tuned[TAUGHT][1] if TAUGHT in tuned else None
    if own_split:
        saved = {k: v for k, v in out.items() if k not in ("table", "taught_table")}
        saved["sampling"] = sampling.to_dict() if sampling is not None else None
        try:
            atomic_write_text(run.path / EVALUATION_FILE, json.dumps(saved, indent=2))
        except OSError:  # a read-only run folder: the numbers are still returned
            pass
    return out

