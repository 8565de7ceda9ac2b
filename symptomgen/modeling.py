"""Models and tokenizers: Hub ids, local ``save_pretrained`` folders, or ``scratch``.

``scratch`` is the offline choice: a small GPT-2 with random weights and a
byte-level BPE tokenizer trained on the training texts with ``tokenizers``.
Loading never uses ``trust_remote_code`` and only reads safetensors weights.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import Callable, Iterable

import torch

from . import cputune
from .config import TrainConfig, is_scratch
from .errors import HubUnreachableError, ModelLoadError
from .errors import first_line as _first_line
from .hub import hub_reachable, looks_like_hub_id, unreachable_message
from .lora import is_adapter_folder, load_adapter

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


def place(model, device: torch.device | None = None, serving: bool = False):
    """Put a loaded model where inference runs (``pick_device``: CUDA, then MPS, then CPU) in eval mode.

    On CUDA the weights become bf16 where the GPU supports it, else fp16 (half the memory, tensor cores);
    elsewhere they stay fp32, except with ``serving=True`` (the app's generation and explanations) on a CPU
    with native bf16 (``cputune.native_bf16``): there bf16 weights halve the memory each generated token reads
    and avoid a slow fp32 kernel for the few-row LM-head product (bench/RESULTS.md); greedy text is unchanged on
    the test model.  Validation losses keep fp32 (``serving=False``).  Callers move their inputs to
    ``next(model.parameters()).device``.
    """
    device = device or pick_device()
    if device.type == "cuda":
        model.to(device=device, dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    elif serving and serving_dtype(device)[0] == torch.bfloat16:
        model.to(device=device, dtype=torch.bfloat16)
    else:
        model.to(device)
        head = getattr(model, "lm_head", None)
        if serving and device.type == "cpu" and type(head) is torch.nn.Linear:
            head.__class__ = FewRowsHead  # same module and weight (still tied), another kernel for a few rows
    return model.eval()


class FewRowsHead(torch.nn.Linear):
    """An fp32 LM head served on CPU.  Generation multiplies a few rows (one new token per sequence) by the 50,257 ×
    768 weight; for 2–16 rows fp32 ``F.linear`` takes a kernel about 2× slower than ``W @ x.T`` (3 rows: 64 against
    34 ms in bench/RESULTS.md), which made a 3-sequence call cost almost as much as three calls.  Same values."""

    FEW = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if x.device.type != "cpu" or self.weight.dtype != torch.float32 or not 1 < rows <= self.FEW:
            return super().forward(x)
        out = (self.weight @ x.reshape(rows, -1).t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


def serving_dtype(device: torch.device | None = None) -> tuple[torch.dtype, str]:
    """The weights' dtype ``place(serving=True)`` picks on ``device`` (default ``pick_device``), and why, in words:
    the decision is made per CPU from its own flags (``cputune.bf16_flags``), and benchmarks print it."""
    device = device or pick_device()
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return (torch.bfloat16, "CUDA GPU with bf16") if bf16 else (torch.float16, "CUDA GPU without bf16: fp16")
    if device.type != "cpu":
        return torch.float32, f"{device.type}: weights stay fp32"
    flags = ", ".join(cputune.bf16_flags())
    if SERVE_BF16_ON_CPU and cputune.native_bf16():
        return torch.bfloat16, f"this CPU has native bf16 ({flags or 'cputune.native_bf16'})"
    if not flags:
        return torch.float32, "this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16 among its flags): fp32"
    if cputune.isa_cap():
        return torch.float32, f"this CPU has {flags} but {cputune.isa_cap()} keeps torch below it: fp32"
    why = "SYMPTOMGEN_CPU_BF16=0" if SERVE_BF16_ON_CPU else "modeling.SERVE_BF16_ON_CPU is off"
    return torch.float32, f"this CPU has {flags} but serving bf16 is turned off ({why}): fp32"


SERVE_BF16_ON_CPU = True
"""``place(serving=True)`` serves bf16 weights on CPUs with native bf16 (``SYMPTOMGEN_CPU_BF16=0`` turns it off)."""


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


def scratch_config(cfg: TrainConfig, vocab_size: int, eos_token_id: int, pad_token_id: int | None = None,
                   positions: int | None = None):
    """The ``GPT2Config`` of a ``scratch`` model: ``cfg.scratch_layers`` x ``cfg.scratch_width``, 4 heads, room for
    ``positions`` tokens (default ``cfg.max_length``; at least 256)."""
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab_size, n_positions=max(256, cfg.max_length if positions is None else positions),
                      n_embd=cfg.scratch_width, n_layer=cfg.scratch_layers, n_head=4,
                      bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id)


def build_scratch_model(tokenizer, cfg: TrainConfig):
    """A small GPT-2 (``cfg.scratch_layers`` x ``cfg.scratch_width``), random init, seeded."""
    from transformers import GPT2LMHeadModel

    torch.manual_seed(cfg.seed)
    return GPT2LMHeadModel(scratch_config(cfg, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id))


def _with_pad(tokenizer, model=None):
    """GPT-2 has no pad token: reuse EOS (labels are masked by length, not by id)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


MODEL_BUILD_LOCK = threading.RLock()
"""Held while a model is built in this process.  transformers builds models under a process-wide default-device
context (the meta device, then the weights): two threads building at once corrupt each other's models ("Cannot
copy out of meta tensor"), so the server's concurrent requests build one model at a time."""


def _one_build_at_a_time(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with MODEL_BUILD_LOCK:
            return fn(*args, **kwargs)
    return wrapper


@_one_build_at_a_time
def load_pretrained(name_or_path: str | Path):
    """Load (model, tokenizer) from a local folder or a Hub id; fail fast when offline.

    A LoRA adapter folder (``adapter_config.json``) loads its base and returns the two merged (``lora``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = str(name_or_path).strip()
    path = Path(spec).expanduser()
    kwargs = {"trust_remote_code": False, "use_safetensors": True}
    if path.is_dir():
        if is_adapter_folder(path):  # a LoRA run's best/: its base with the adapter merged in
            model, tok = load_adapter(path, load_pretrained)
            return model, _with_pad(tok, model)
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


def load_for_training(cfg: TrainConfig, train_texts: Callable[[], list[str]]):
    """(model, tokenizer) for a run: ``scratch`` builds both from ``train_texts()`` (formatted only then: 0.3 s for
    100,000 rows), anything else loads."""
    if is_scratch(cfg.model):
        tok = build_scratch_tokenizer(train_texts(), cfg.scratch_vocab)
        return build_scratch_model(tok, cfg), tok
    return load_pretrained(cfg.model)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
