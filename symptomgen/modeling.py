"""Models and tokenizers: Hub ids, local ``save_pretrained`` folders, or ``scratch``.

``scratch`` is the offline choice: a small GPT-2 with random weights and a
byte-level BPE tokenizer trained on the training texts with ``tokenizers``.
Loading never uses ``trust_remote_code`` and only reads safetensors weights.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import torch

from .errors import first_line as _first_line, ModelLoadError
from .config import TrainConfig, is_scratch
from .hub import HubUnreachableError, hub_reachable, looks_like_hub_id, unreachable_message

log = logging.getLogger(__name__)
EOS = "<|endoftext|>"



def pick_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU — checking availability (the seed's check never failed)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def build_scratch_tokenizer(texts: Iterable[str], vocab_size: int = 4000):
    """A byte-level BPE tokenizer trained on ``texts``, wrapped for transformers."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=1, special_tokens=[EOS],
                            show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS,
                                  unk_token=EOS, pad_token=EOS)
    tok.model_max_length = 1024
    return tok


def build_scratch_model(tokenizer, cfg: TrainConfig):
    """A small GPT-2 (``cfg.scratch_layers`` x ``cfg.scratch_width``), random init, seeded."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(cfg.seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=max(256, cfg.max_length),
                        n_embd=cfg.scratch_width, n_layer=cfg.scratch_layers, n_head=4,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(config)


def _with_pad(tokenizer, model=None):
    """GPT-2 has no pad token: reuse EOS (labels are masked by length, not by id)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def load_pretrained(name_or_path: str | Path):
    """Load (model, tokenizer) from a local folder or a Hub id; fail fast when offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = str(name_or_path).strip()
    path = Path(spec).expanduser()
    kwargs = {"trust_remote_code": False, "use_safetensors": True}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a saved model folder (no config.json).")
        source, local = str(path), True
    elif looks_like_hub_id(spec):
        source, local = spec, False
    else:
        raise ModelLoadError(f"Model '{spec}' is neither an existing folder nor a Hub model id.")
    try:
        # A cached Hub model loads without the network; only go online when needed.
        tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, **kwargs)
    except Exception as exc:
        if local:
            raise ModelLoadError(f"Could not load the model in {path}: {_first_line(exc)}") from exc
        if not hub_reachable():
            raise HubUnreachableError(unreachable_message(f"model '{spec}'")) from None
        try:
            tok = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except Exception as exc2:
            raise ModelLoadError(f"Could not load '{spec}' as a causal language model: {_first_line(exc2)}") from exc2
    return model, _with_pad(tok, model)


def load_for_training(cfg: TrainConfig, train_texts: list[str]):
    """(model, tokenizer) for a run: ``scratch`` builds both, anything else loads."""
    if is_scratch(cfg.model):
        tok = build_scratch_tokenizer(train_texts, cfg.scratch_vocab)
        return build_scratch_model(tok, cfg), tok
    return load_pretrained(cfg.model)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
