"""GGUF export (issue 24 item 2): the file read back with gguf's own reader and with transformers' GGUF loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gguf")

from gguf import GGUFReader
from gguf.quants import dequantize

from symptomgen.gguf_export import estimate_run, export_run_gguf
from symptomgen.modeling import load_pretrained

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Kidney Failure |"


def _field(reader: GGUFReader, key: str):
    return reader.fields[key].contents()


def _greedy(model, tokenizer, n: int = 16) -> list[int]:
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.eos_token_id)[0].tolist()


def _load_back(path: Path):
    """The file as transformers reads it.  Its GGUF config maps ``context_length`` to ``n_ctx``, which GPT2Config
    no longer reads, so the position table is sized 1024 unless told (distilgpt2 and gpt2 have 1024 anyway)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, n_positions=config.n_ctx)
    return model.eval(), AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.mark.parametrize("gguf_type, tolerance", [("f16", 1e-3), ("q8_0", 1.5 / 127)])
def test_the_file_holds_the_model_and_its_tokenizer(trained_run, tmp_path, gguf_type, tolerance):
    run = trained_run.run_dir
    estimate = estimate_run(run, gguf_type)
    path = export_run_gguf(run, tmp_path, gguf_type)
    model, tok = load_pretrained(run / "best")
    cfg = model.config
    reader = GGUFReader(path)
    assert _field(reader, "general.architecture") == "gpt2"
    assert _field(reader, "gpt2.block_count") == cfg.n_layer
    assert _field(reader, "gpt2.context_length") == cfg.n_positions
    assert _field(reader, "gpt2.embedding_length") == cfg.n_embd
    assert _field(reader, "gpt2.attention.head_count") == cfg.n_head
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == cfg.vocab_size == len(tok)
    assert tokens[tok.eos_token_id] == tok.eos_token == "<|endoftext|>"
    assert _field(reader, "tokenizer.ggml.eos_token_id") == tok.eos_token_id
    merges = json.loads((run / "best" / "tokenizer.json").read_text())["model"]["merges"]
    assert len(_field(reader, "tokenizer.ggml.merges")) == len(merges) > 0

    tensors = {t.name: t for t in reader.tensors}
    assert len([n for n in tensors if n.startswith("blk.")]) == 12 * cfg.n_layer
    embd = tensors["token_embd.weight"]
    assert embd.tensor_type.name == gguf_type.upper()
    got = dequantize(embd.data, embd.tensor_type).reshape(cfg.vocab_size, cfg.n_embd)
    wte = model.transformer.wte.weight.detach().numpy()
    assert np.abs(got - wte).max() <= tolerance * np.abs(wte).max()
    qkv = tensors["blk.0.attn_qkv.weight"]  # Conv1D (in, out) written as (out, in)
    got = dequantize(qkv.data, qkv.tensor_type).reshape(3 * cfg.n_embd, cfg.n_embd)
    c_attn = model.transformer.h[0].attn.c_attn.weight.detach().numpy().T
    assert np.abs(got - c_attn).max() <= tolerance * np.abs(c_attn).max()
    assert tensors["position_embd.weight"].tensor_type.name == "F32"

    size = path.stat().st_size
    assert abs(estimate.bytes - size) <= 0.02 * size, (estimate.bytes, size)  # the issue asks 10%; it is exact-ish
    modelfile = path.with_suffix(".Modelfile").read_text()
    assert f"FROM ./{path.name}" in modelfile and 'PARAMETER stop "<|endoftext|>"' in modelfile
    assert '{{ .Prompt }} |' in modelfile


def test_q8_0_is_about_half_of_f16(trained_run):
    f16, q8 = estimate_run(trained_run.run_dir, "f16"), estimate_run(trained_run.run_dir, "q8_0")
    assert f16.parameters == q8.parameters
    assert 0.5 < q8.bytes / f16.bytes < 0.75  # f32 norms, positions and the tokenizer do not shrink


def test_transformers_reads_it_back_and_writes_the_same_greedy_text(trained_run, tmp_path):
    """The issue's round trip: ``from_pretrained(..., gguf_file=...)`` gives the run's own greedy text."""
    model, tok = load_pretrained(trained_run.run_dir / "best")
    model.eval()
    back, back_tok = _load_back(export_run_gguf(trained_run.run_dir, tmp_path, "f16"))
    assert back_tok(PROMPT).input_ids == tok(PROMPT).input_ids
    want = _greedy(model, tok)
    assert _greedy(back, back_tok) == want
    assert len(set(want[-16:])) > 1, "the test model should write more than one repeated token"


def test_a_lora_run_is_exported_merged(trained_run, tmp_path):
    from conftest import TINY

    from symptomgen.config import DataConfig
    from symptomgen.trainer import run_training

    lora = run_training(DataConfig(source="sample"), TINY.with_(model=str(trained_run.run_dir / "best"),
                                                                  lora_rank=8, epochs=1), tmp_path / "runs")
    assert lora.status == "finished" and (lora.run_dir / "best" / "adapter_config.json").is_file()
    merged, tok = load_pretrained(lora.run_dir / "best")
    back, _ = _load_back(export_run_gguf(lora.run_dir, tmp_path / "out", "f16"))
    ids = tok(PROMPT + " fever, cough", return_tensors="pt").input_ids
    with torch.no_grad():
        want, got = merged.eval()(ids).logits, back(ids).logits
        base = load_pretrained(trained_run.run_dir / "best")[0].eval()(ids).logits
    assert (got - want).abs().max() < 0.02
    assert (base - want).abs().max() > 10 * (got - want).abs().max()  # the adapter changed what was exported


def test_cli_export_gguf_prints_the_estimate_and_writes_file_and_modelfile(trained_run, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "symptomgen", "export", str(trained_run.run_dir), "--format", "gguf",
                          "--gguf-type", "q8_0", "--out", str(tmp_path / "model.gguf")],
                         check=False, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("estimate: GGUF q8_0: about ")
    assert (tmp_path / "model.gguf").is_file() and (tmp_path / "model.Modelfile").is_file()
    assert f"exported: {tmp_path / 'model.gguf'}" in out.stdout and "ollama create" in out.stdout
    assert "Loading weights" not in out.stderr  # the ML libraries are quiet here as for the other commands


def test_a_bad_type_is_one_line(trained_run, tmp_path):
    from symptomgen.errors import InvalidInput

    with pytest.raises(InvalidInput, match="f16, bf16, q8_0"):
        export_run_gguf(trained_run.run_dir, tmp_path, "q4_k")
