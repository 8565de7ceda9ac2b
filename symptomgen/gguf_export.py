"""A run's model as one GGUF file (llama.cpp, Ollama, LM Studio), written with the ``gguf`` package.

GGUF is llama.cpp's single-file format: metadata (architecture, shapes, tokenizer) then the tensors.  Our models
are GPT-2 (``general.architecture = gpt2``); their tensors map one to one onto llama.cpp's GPT-2 names::

    transformer.wte          token_embd      (and again as ``output``: GPT-2 ties its head to it)
    transformer.wpe          position_embd   (kept f32, as llama.cpp's converter keeps it)
    h.N.ln_1 / ln_2          blk.N.attn_norm / blk.N.ffn_norm
    h.N.attn.c_attn          blk.N.attn_qkv  \\
    h.N.attn.c_proj          blk.N.attn_output  |  Conv1D stores (in, out): transposed to (out, in)
    h.N.mlp.c_fc / c_proj    blk.N.ffn_up / blk.N.ffn_down /
    transformer.ln_f         output_norm

Norms, biases and the position table are f32; the matrices get the chosen type (``f16``, ``bf16`` or ``q8_0``;
a matrix whose rows are not a multiple of q8_0's 32-value block falls back to f16).  The tokenizer travels as
``tokenizer.ggml.*``: model ``gpt2``, pre-tokenizer ``gpt-2``, every token with its type, the BPE merges and the
special ids.  ``tensor_plan`` decides name, shape and type of each tensor once; the writer and the size estimate
both read it, so the estimate is what the writer will write.  A LoRA run is merged into its base first
(``modeling.load_pretrained`` does that for an adapter folder).  No gradio here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput, ModelLoadError

GGUF_TYPES = ("f16", "bf16", "q8_0")
DEFAULT_GGUF_TYPE = "f16"
PRE_TOKENIZER = "gpt-2"  # llama.cpp's name for GPT-2's split regex (our scratch BPE uses the same one)
_ALIGN = 32  # GGUF's default tensor-data alignment
_TOKEN_NORMAL, _TOKEN_CONTROL, _TOKEN_USER, _TOKEN_UNUSED = 1, 3, 4, 5  # llama.cpp's token types

# Hugging Face layer (inside ``transformer.h.N.``) -> llama.cpp name (inside ``blk.N.``), and whether the weight
# is a Conv1D one, stored transposed.
_BLOCK = (("ln_1", "attn_norm", False), ("attn.c_attn", "attn_qkv", True), ("attn.c_proj", "attn_output", True),
          ("ln_2", "ffn_norm", False), ("mlp.c_fc", "ffn_up", True), ("mlp.c_proj", "ffn_down", True))


def require_gguf() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise InvalidInput("GGUF export needs the gguf package, which is not installed here (pip install gguf).")


def _qtype(gguf_type: str):
    import gguf

    kinds = gguf.GGMLQuantizationType
    return {"f16": kinds.F16, "bf16": kinds.BF16, "q8_0": kinds.Q8_0}[gguf_type]


def _file_type(gguf_type: str):
    import gguf

    files = gguf.LlamaFileType
    return {"f16": files.MOSTLY_F16, "bf16": files.MOSTLY_BF16, "q8_0": files.MOSTLY_Q8_0}[gguf_type]


def check_type(gguf_type: object) -> str:
    t = str(gguf_type or "").strip().lower()
    if t not in GGUF_TYPES:
        raise InvalidInput(f"GGUF type '{str(gguf_type)[:20]}' is not offered; choose one of {', '.join(GGUF_TYPES)}.")
    return t


def check_gpt2(config) -> None:
    if getattr(config, "model_type", None) != "gpt2":
        raise InvalidInput(f"GGUF export writes GPT-2 models only; this run's model is "
                           f"'{getattr(config, 'model_type', None)}'.")


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of the file: its GGUF name, where it comes from, its shape as written, its GGML type."""

    name: str
    source: str
    """The key in ``GPT2LMHeadModel.state_dict()``."""
    shape: tuple[int, ...]
    """numpy order (rows, columns), after the Conv1D transpose."""
    qtype: object
    transpose: bool = False

    @property
    def nbytes(self) -> int:
        import gguf

        block, size = gguf.GGML_QUANT_SIZES[self.qtype]
        return math.prod(self.shape) // block * size


def tensor_plan(config, gguf_type: str = DEFAULT_GGUF_TYPE) -> list[PlannedTensor]:
    """Every tensor the file holds for a ``GPT2Config``, in order, with its type."""
    require_gguf()
    import gguf

    check_gpt2(config)
    matrix, f32 = _qtype(check_type(gguf_type)), gguf.GGMLQuantizationType.F32
    d, vocab, ff = config.n_embd, config.vocab_size, config.n_inner or 4 * config.n_embd

    def weight(shape: tuple[int, int]):
        if matrix == gguf.GGMLQuantizationType.Q8_0 and shape[-1] % 32:
            return gguf.GGMLQuantizationType.F16  # q8_0 packs 32 values of a row per block
        return matrix

    plan = [PlannedTensor("token_embd.weight", "transformer.wte.weight", (vocab, d), weight((vocab, d))),
            PlannedTensor("position_embd.weight", "transformer.wpe.weight", (config.n_positions, d), f32)]
    shapes = {"ln_1": (d,), "attn.c_attn": (3 * d, d), "attn.c_proj": (d, d), "ln_2": (d,), "mlp.c_fc": (ff, d),
              "mlp.c_proj": (d, ff)}
    for i in range(config.n_layer):
        for hf, ours, conv in _BLOCK:
            shape = shapes[hf]
            plan.append(PlannedTensor(f"blk.{i}.{ours}.weight", f"transformer.h.{i}.{hf}.weight", shape,
                                      weight(shape) if conv else f32, transpose=conv))
            plan.append(PlannedTensor(f"blk.{i}.{ours}.bias", f"transformer.h.{i}.{hf}.bias", (shape[0],), f32))
    plan += [PlannedTensor("output_norm.weight", "transformer.ln_f.weight", (d,), f32),
             PlannedTensor("output_norm.bias", "transformer.ln_f.bias", (d,), f32),
             PlannedTensor("output.weight", "lm_head.weight", (vocab, d), weight((vocab, d)))]
    return plan


# ----------------------------------------------------------------------------- tokenizer

@dataclass(frozen=True)
class GgufVocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    special: dict[str, int]
    """``bos``, ``eos``, ``unk``, ``pad`` → id, where the tokenizer has them."""


def gguf_vocab(tokenizer, vocab_size: int) -> GgufVocab:
    """The tokenizer as llama.cpp reads a GPT-2 vocabulary: ``vocab_size`` tokens by id (ids the tokenizer does not
    use become ``[PADn]``, unused), added tokens marked control (special) or user-defined, merges as ``"a b"``."""
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {t.content: t for t in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(vocab_size):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(_TOKEN_UNUSED)
        else:
            tokens.append(tok)
            types.append(_TOKEN_NORMAL if tok not in added else
                         _TOKEN_CONTROL if added[tok].special else _TOKEN_USER)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        raise InvalidInput(f"GGUF export needs a BPE tokenizer; this run's is {model.get('type')}.")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or ()]
    special = {k: getattr(tokenizer, f"{k}_token_id") for k in ("bos", "eos", "unk", "pad")}
    return GgufVocab(tokens, types, merges, {k: v for k, v in special.items() if v is not None and v < vocab_size})


def _metadata_bytes(vocab: GgufVocab, plan: list[PlannedTensor]) -> int:
    """Header, key/values and tensor index, as GGUF lays them out (strings: 8-byte length + UTF-8)."""
    strings = sum(8 + len(s.encode("utf-8")) for s in (*vocab.tokens, *vocab.merges))
    index = sum(8 + len(t.name) + 4 + 8 * len(t.shape) + 4 + 8 for t in plan)
    return 24 + 1024 + strings + 4 * len(vocab.types) + index  # 1 KB: the scalar keys and the array headers


# ----------------------------------------------------------------------------- size estimate

@dataclass(frozen=True)
class SizeEstimate:
    gguf_type: str
    bytes: int
    parameters: int
    """The model's own weights (the tied output head counted once)."""
    matrix_share: float
    """Of the bytes, the share in the chosen type (the rest: f32 norms, biases, positions; the tokenizer)."""

    def text(self) -> str:
        per = {"f16": "2 bytes", "bf16": "2 bytes", "q8_0": "1.06 bytes (34 per block of 32)"}[self.gguf_type]
        return (f"GGUF {self.gguf_type}: about {_human(self.bytes)} ({self.parameters / 1e6:.1f} M weights × "
                f"{per} per weight, plus the embedding written again as the output head, f32 norms, biases and "
                "position table, and the tokenizer).")


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def estimate_size(config, tokenizer, gguf_type: str = DEFAULT_GGUF_TYPE) -> SizeEstimate:
    """The size of the file ``write_gguf`` writes for this model shape and tokenizer, without the weights."""
    gguf_type = check_type(gguf_type)
    plan = tensor_plan(config, gguf_type)
    data = sum(t.nbytes + _ALIGN - 1 for t in plan)  # each tensor starts on an aligned offset: at most 31 pad
    total = _metadata_bytes(gguf_vocab(tokenizer, config.vocab_size), plan) + data
    params = sum(math.prod(t.shape) for t in plan if t.name != "output.weight")
    chosen = sum(t.nbytes for t in plan if t.qtype == _qtype(gguf_type))
    return SizeEstimate(gguf_type, total, params, chosen / total)


# ----------------------------------------------------------------------------- writer

def write_gguf(model, tokenizer, dest: Path | str, gguf_type: str = DEFAULT_GGUF_TYPE,
               name: str = "symptomgen") -> Path:
    """Write ``model`` (a ``GPT2LMHeadModel``) and ``tokenizer`` to ``dest`` as GGUF; returns ``dest``.

    The file appears whole or not at all (written beside, then renamed)."""
    import gguf
    import numpy as np
    import torch

    gguf_type = check_type(gguf_type)
    config = model.config
    plan = tensor_plan(config, gguf_type)
    vocab = gguf_vocab(tokenizer, config.vocab_size)
    state = model.state_dict()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, "gpt2")
    try:
        writer.add_name(name)
        writer.add_block_count(config.n_layer)
        writer.add_context_length(config.n_positions)
        writer.add_embedding_length(config.n_embd)
        writer.add_feed_forward_length(config.n_inner or 4 * config.n_embd)
        writer.add_head_count(config.n_head)
        writer.add_layer_norm_eps(config.layer_norm_epsilon)
        writer.add_file_type(_file_type(gguf_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(PRE_TOKENIZER)
        writer.add_token_list(vocab.tokens)
        writer.add_token_types(vocab.types)
        writer.add_token_merges(vocab.merges)
        adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "unk": writer.add_unk_token_id,
                  "pad": writer.add_pad_token_id}
        for key, token_id in vocab.special.items():
            adders[key](token_id)
        writer.add_add_bos_token(False)  # our prompts start with the name: training never saw a BOS first
        for t in plan:
            tensor = state.get(t.source)
            if tensor is None and t.name == "output.weight":
                tensor = state["transformer.wte.weight"]  # tied head
            if tensor is None:
                raise ModelLoadError(f"The model has no {t.source}; is it a GPT-2 model?")
            array = tensor.detach().to(device="cpu", dtype=torch.float32).numpy()
            if t.transpose:
                array = array.T
            array = np.ascontiguousarray(array)
            if tuple(array.shape) != t.shape:
                raise ModelLoadError(f"{t.source} has shape {tuple(array.shape)}, expected {t.shape}.")
            if t.qtype == gguf.GGMLQuantizationType.F32:
                writer.add_tensor(t.name, array)
            elif t.qtype == gguf.GGMLQuantizationType.F16:
                writer.add_tensor(t.name, array.astype(np.float16))
            else:
                writer.add_tensor(t.name, gguf.quants.quantize(array, t.qtype), raw_dtype=t.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, dest)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return dest


def modelfile_text(gguf_name: str, eos: str) -> str:
    """An Ollama Modelfile for the file: our prompt (``Name |``), our EOS as the stop, our default sampling."""
    from .config import GenerationSettings
    from .data import SEPARATOR

    s = GenerationSettings()
    return (f"FROM ./{gguf_name}\n"
            f'TEMPLATE """{{{{ .Prompt }}}}{SEPARATOR}"""\n'
            f'PARAMETER stop "{eos}"\n'
            f"PARAMETER temperature {s.temperature}\n"
            f"PARAMETER top_k {s.top_k}\n"
            f"PARAMETER top_p {s.top_p}\n"
            f"PARAMETER repeat_penalty {s.repetition_penalty}\n"
            f"PARAMETER num_predict {s.max_new_tokens}\n")


# ----------------------------------------------------------------------------- runs

def _run_config_and_tokenizer(best: Path):
    """The ``GPT2Config`` of a run's best model (a LoRA run's: its base's, which the merge keeps) and its tokenizer,
    without loading any weights."""
    from transformers import AutoConfig, AutoTokenizer

    from .lora import adapter_base, is_adapter_folder

    source = adapter_base(best) if is_adapter_folder(best) else str(best)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(str(best), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"The model of {best.parent.name} cannot be read here ({type(exc).__name__}).") from None
    return config, tokenizer


def _best(run_dir: Path | str) -> Path:
    from .runs import Run

    run = Run(Path(run_dir))
    if not run.has_best():
        raise InvalidInput(f"Run {run.run_id} has no saved model yet (no epoch finished), so there is nothing to "
                           "export.")
    return run.best_dir


def estimate_run(run_dir: Path | str, gguf_type: str = DEFAULT_GGUF_TYPE) -> SizeEstimate:
    """What ``export_run_gguf`` would write for this run, from its config and tokenizer (no weights loaded)."""
    config, tokenizer = _run_config_and_tokenizer(_best(run_dir))
    return estimate_size(config, tokenizer, gguf_type)


def gguf_path(run_dir: Path | str, dest: Path | str, gguf_type: str) -> Path:
    """``dest`` when it names a ``.gguf`` file, else ``dest/<run_id>-<type>.gguf``."""
    dest = Path(dest)
    if dest.is_dir() or dest.suffix.lower() != ".gguf":
        dest = dest / f"{Path(run_dir).name}-{gguf_type}.gguf"
    return dest


def export_run_gguf(run_dir: Path | str, dest: Path | str, gguf_type: str = DEFAULT_GGUF_TYPE,
                    modelfile: bool = True) -> Path:
    """Write a run's best model (a LoRA run: merged into its base) as GGUF; returns the file's path.

    ``dest`` is the ``.gguf`` file, or a folder for ``<run_id>-<type>.gguf``.  ``modelfile``: an Ollama Modelfile
    beside it, ``<name>.Modelfile`` (``ollama create NAME -f <name>.Modelfile``)."""
    from .modeling import load_pretrained

    gguf_type = check_type(gguf_type)
    best = _best(run_dir)
    check_gpt2(_run_config_and_tokenizer(best)[0])  # before loading any weights
    model, tokenizer = load_pretrained(best)  # an adapter folder loads merged into its base
    dest = write_gguf(model, tokenizer, gguf_path(run_dir, dest, gguf_type), gguf_type, name=Path(run_dir).name)
    if modelfile:
        dest.with_suffix(".Modelfile").write_text(modelfile_text(dest.name, tokenizer.eos_token or ""),
                                                  encoding="utf-8")
    return dest
