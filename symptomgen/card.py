"""The model card (README.md) written into every exported or pushed run.

YAML front matter for the Hub (``library_name: transformers``, or ``peft`` when the folder holds a LoRA
adapter, ``pipeline_tag: text-generation``, tags, base model and dataset when they are Hub ids), then the
data, the training settings, per-epoch metrics, the best epoch, the last evaluation (taught and unseen rows scored
apart, fine-tuned vs base beside a constant answer and a lookup, when the run was evaluated) and the
not-medical-advice note.  Pure text from the run folder: no network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from . import NOT_MEDICAL_ADVICE, __version__
from .baselines import BASELINES, verdict
from .catalog import target_kind
from .config import is_scratch
from .data import format_prompt, public_source
from .events import perplexity
from .hub import looks_like_hub_id
from .lora import OWN_BASE
from .runs import Run, atomic_write_text, looks_like_run_id
from .scoring import KIND_WORDS, LIST, SCORE_WORDS, saved_evaluation
from .splits import BY_NAME, MODE_WORDS


def _fmt(value) -> str:
    """A value outside code: text from the run folder (an imported run is a stranger's) is escaped, so no HTML or
    table syntax of its own reaches the page or the Hub."""
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(" ".join(str(value).split()), quote=False).replace("|", "&#124;")[:300]


def _code(value) -> str:
    """A value as inline code: shown literally (no HTML inside a code span renders), on one line, no backticks."""
    return "`" + " ".join(str("?" if value is None else value).split()).replace("`", "'")[:300] + "`"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _evaluation_lines(run: Run, kind: str) -> list[str]:
    """The run's last evaluation on its own split: a table of taught and unseen rows, fine-tuned vs base."""
    saved = saved_evaluation(run.path)
    head = ["## Evaluation", ""]
    if not saved or not any(isinstance(saved.get(k), dict) for k in ("taught", "unseen")):
        return head + [f"Not evaluated yet: `python -m symptomgen evaluate --model {run.run_id}` scores it on "
                       "its validation rows (unseen) and on as many of its training rows (taught).", ""]
    kind = saved.get("target_kind") if saved.get("target_kind") in SCORE_WORDS else kind
    main = "f1" if kind == LIST else "rougeL"
    keys = [main, f"sampled_{main}"]
    names = {"f1": "F1 (greedy)", "sampled_f1": "F1 (sampled)", "rougeL": "ROUGE-L (greedy)",
             "sampled_rougeL": "ROUGE-L (sampled)"}
    lines = head + [f"{SCORE_WORDS[kind].capitalize()} of generations against the reference, on a seeded sample "
                    "of the training rows (*taught*: how faithfully the model reproduces what it was trained on) "
                    "and on the validation rows (*unseen*: rows it never trained on), fine-tuned vs its base "
                    "model.", ""]
    # Issue 21: the baselines from the training rows (no model), on the same rows, and the sentence naming the best.
    sentence, answer = verdict(saved), saved.get("constant_answer")
    lines += ([f"**{sentence}**", ""] if sentence else [])
    lines += ([f"Baselines, scored the same way on the same rows: *constant answer* gives every row "
               f"\"{_short(answer)}\" (built from the training rows); *lookup* gives the training target of the same "
               "name, or of the most similar taught name.", ""] if sentence and isinstance(answer, str) else [])
    lines += ["| rows | scored rows | metric | fine-tuned | base model | constant answer | lookup |",
              "|---|---|---|---|---|---|---|"]
    for set_name in ("taught", "unseen"):
        scored = saved.get(set_name)
        if not isinstance(scored, dict):
            continue
        ft, base = scored.get("fine_tuned") or {}, scored.get("base") or {}
        for key in ["val_loss"] + keys:
            if ft.get(key) is None:
                continue
            label = "loss per real token" if key == "val_loss" else names.get(key, key)
            shown = ["–" if v is None else _fmt(v) for v in ((scored.get(b) or {}).get(key) for b in BASELINES)]
            lines.append(f"| {set_name} | {_fmt(scored.get('rows'))} | {label} | {_fmt(ft.get(key))} | "
                         f"{_fmt(base.get(key)) if 'error' not in base else 'not evaluated'} | {' | '.join(shown)} |")
    return lines + [""]


def _use_prompt(run: Run) -> str:
    """The prompt of the card's "Use" snippet, as a Python string literal: the run's first own training name (what it
    learned), or the seed notebook's example when its split is gone.  One line, no backticks (it sits in a fence)."""
    names = run.training_names(1)
    prompt = format_prompt(names[0][:200] if names else "Kidney Failure").replace("`", "'")
    return json.dumps(prompt, ensure_ascii=False)


def write_model_card(run_dir: Path | str, dest: Path | str | None = None, adapter: bool = False) -> str:
    """The model card (README.md) of a run: data, settings, metrics, best epoch, not-medical-advice.
    ``adapter``: the folder it describes holds a LoRA adapter (not merged), loaded with peft onto its base."""
    run = Run(Path(run_dir))
    rec = run.record()
    data, train = rec.data, rec.train
    model = rec.model or "?"
    source = public_source(data.source if data is not None else "?")
    from huggingface_hub import ModelCardData

    card = ModelCardData(
        library_name="peft" if adapter else "transformers", pipeline_tag="text-generation",
        tags=["symptomgen", "text-generation", "gpt2", "causal-lm", "not-medical-advice"] + (["lora"] if adapter
                                                                                            else []),
        # A Hub repo only: not scratch, not a run of this server (trained on from it: "parent_run").
        base_model=(model if not is_scratch(model) and looks_like_hub_id(model)
                    and not rec.parent_run and not looks_like_run_id(model) else None),
        datasets=[source] if source != "sample" and looks_like_hub_id(source) and "/" in source else None)
    metrics = run.metrics()
    kind = target_kind(run)
    # best/symptomgen.json is written with the weights (Run.save_model): right even when a kill came between
    # their swap and the record's update.  Unless keep=last, the weights in best/ are the best epoch's.
    info = run.best_info()
    best_epoch, best_val = run.served_best()
    kept_epoch = info.epoch or rec.kept_epoch or best_epoch
    keep = train.keep if train is not None else None
    kept = ("the weights here are from the best validation epoch, not the last."
            if kept_epoch == best_epoch or kept_epoch is None
            else f"the weights here are from epoch {kept_epoch}, the one that scored best on the per-epoch sample "
                 f"of taught and unseen rows (keep=score), not the lowest validation loss (epoch {best_epoch})."
            if keep == "score"
            else f"the weights here are from epoch {kept_epoch}, the last finished one (keep=last), not the best.")
    data_dict, train_dict = (data.to_dict() if data else {}), (train.to_dict() if train else {})
    lines = [f"---\n{card.to_yaml()}\n---", "", f"# SymptomGen run `{run.run_id}`", "",
             f"> **Not medical advice.** {NOT_MEDICAL_ADVICE}", "",
             f"A causal language model fine-tuned with SymptomGen {__version__} to continue "
             f"`\"<name> |\"` with {KIND_WORDS[kind]} (learned from the data's target column).", "", "## Data", "",
             f"- Source: {_code(source)}" + (" (SymptomGen's bundled sample)" if source == "sample" else ""),
             f"- Prompt column {_code(data_dict.get('prompt_column', '?'))} → target column "
             f"{_code(data_dict.get('target_column', '?'))}"
             + (f" + {_code(rec.extra_target_column)}" if rec.extra_target_column else ""),
             f"- Split: {_fmt(rec.train_rows)} training rows, {_fmt(rec.val_rows)} validation rows "
             f"(validation fraction {_fmt(data_dict.get('val_fraction'))}, split seed {_fmt(data_dict.get('seed'))}, "
             f"split {MODE_WORDS[rec.split_by or BY_NAME]}); the split is in `symptomgen/train.csv` and "
             "`symptomgen/val.csv`.",
             f"- Target: {KIND_WORDS[kind]}; generations are scored with {SCORE_WORDS[kind]} against the "
             "validation rows (`python -m symptomgen evaluate`).",
             "", "## Training settings", "", "| setting | value |", "|---|---|"]
    shown = ["model", "epochs", "batch_size", "learning_rate", "scheduler", "warmup_ratio", "weight_decay",
             "grad_accum", "max_length", "loss_on", "patience", "seed", "keep", "max_minutes"]
    if is_scratch(model):
        shown += ["scratch_layers", "scratch_width", "scratch_vocab"]
    lines += [f"| {k} | {_fmt(train_dict[k])} |" for k in shown if k in train_dict]
    lines += [f"| parameters | {rec.parameters:,} |" if rec.parameters is not None
              else "| parameters | ? |", f"| processes (world size) | {rec.world_size} |",
              f"| device | {_fmt(rec.device)} |", "", "## Results", "",
              f"- Status: {_fmt(run.status())}; epochs done: {_fmt(rec.epochs_done or len(metrics))}",
              (f"- Best epoch: {best_epoch} (validation loss {best_val:.4f} per real token, perplexity "
               f"{perplexity(best_val):.2f})" if best_val is not None
               else "- Best epoch: none finished"),
              "- Losses are averaged over real target tokens (padding excluded); " + kept, ""]
    if len(metrics):
        lines += ["| epoch | training loss | validation loss | perplexity | seconds |", "|---|---|---|---|---|"]
        for _, r in metrics.iterrows():
            lines.append(f"| {int(r['epoch'])} | {r['training_loss']:.4f} | {r['validation_loss']:.4f} | "
                         f"{r['perplexity']:.2f} | {r['epoch_duration_sec']:.1f} |")
        lines.append("")
    lines += _evaluation_lines(run, kind)
    prompt = _use_prompt(run)  # a name the run was trained on, so the snippet shows what it learned
    if adapter:  # peft applies it to its base: the Hub model it was trained on, or the run's own base/
        own_base = not rec.lora_base or rec.lora_base == OWN_BASE or not looks_like_hub_id(rec.lora_base)
        base = 'f"{folder}/symptomgen/base"' if own_base else f'"{rec.lora_base}"'
        lines += ["## Use", "", "This folder holds a LoRA adapter, not whole weights; peft applies it to its base "
                  + ("(this run's own starting weights, in `symptomgen/base/`)." if own_base
                     else f"({_code(rec.lora_base)})."), "", "```python",
                  "from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  'folder = "<this folder>"  # from the Hub: huggingface_hub.snapshot_download("<this repo>")',
                  f"base = AutoModelForCausalLM.from_pretrained({base})",
                  "model = PeftModel.from_pretrained(base, folder).merge_and_unload()",
                  "tok = AutoTokenizer.from_pretrained(folder)",
                  f'ids = model.generate(**tok({prompt}, return_tensors="pt"), max_new_tokens=48)',
                  "print(tok.decode(ids[0]))", "```", ""]
    else:
        lines += ["## Use", "", "```python", "from transformers import pipeline", "",
                  'gen = pipeline("text-generation", model="<this repo or folder>")',
                  f'print(gen({prompt}, max_new_tokens=48)[0]["generated_text"])', "```", ""]
    lines += ["## Limitations", "",
              "Trained on a short list of diseases; it produces plausible-sounding text, not facts. "
              "Never use it to diagnose or treat anyone.", ""]
    text = "\n".join(lines)
    if dest is not None:
        atomic_write_text(Path(dest), text)
    return text
