"""Generation: settings validation, determinism, sequences, EOS, streaming, overlap."""

from __future__ import annotations

import warnings

import pytest

from symptomgen.config import GENERATION_PRESETS, GenerationSettings
from symptomgen.evaluation import overlap, phrases
from symptomgen.generation import clean_name, generate, stream
from symptomgen.modeling import load_pretrained

GREEDY = GENERATION_PRESETS["greedy"]


@pytest.fixture(scope="module")
def best(trained_run):
    return load_pretrained(trained_run.run_dir / "best")


def test_default_settings_are_the_seed_notebooks():
    g = GenerationSettings()
    assert (g.top_k, g.top_p, g.temperature, g.repetition_penalty) == (8, 0.95, 0.5, 1.2)


def test_greedy_generation_is_deterministic_and_strips_the_prompt(best):
    model, tok = best
    a = generate(model, tok, "Kidney Failure", GREEDY)
    b = generate(model, tok, "Kidney Failure", GREEDY)
    assert a == b and len(a) == 1
    assert a[0] and "Kidney Failure |" not in a[0] and "<|endoftext|>" not in a[0]


def test_seeded_sampling_repeats_and_sequences_are_respected(best):
    model, tok = best
    settings = GenerationSettings(num_return_sequences=3, seed=123, temperature=1.0, top_k=0)
    first = generate(model, tok, "Influenza", settings)
    assert len(first) == 3
    assert generate(model, tok, "Influenza", settings) == first
    assert len(set(first)) > 1  # independent samples, not one copied three times


def test_max_new_tokens_bounds_the_output(best):
    model, tok = best
    text = generate(model, tok, "Asthma", GREEDY.with_(max_new_tokens=3))[0]
    assert len(tok(text, add_special_tokens=False)["input_ids"]) <= 4


def test_stream_yields_growing_text_ending_with_the_final_result(best):
    model, tok = best
    updates = list(stream(model, tok, "Kidney Failure", GREEDY.with_(max_new_tokens=12)))
    assert len(updates) >= 2
    assert updates[-1] == generate(model, tok, "Kidney Failure", GREEDY.with_(max_new_tokens=12))
    assert all(len(u) == 1 for u in updates)


def test_no_attention_mask_or_pad_warnings(best, recwarn):
    model, tok = best
    warnings.simplefilter("always")
    generate(model, tok, "Gout", GenerationSettings())
    assert not [w for w in recwarn if "attention mask" in str(w.message) or "pad_token_id" in str(w.message)]


@pytest.mark.parametrize("bad", [dict(top_k=-1), dict(top_k=201), dict(top_p=0), dict(top_p=1.5),
                                 dict(temperature=-0.1), dict(temperature=2.5), dict(repetition_penalty=0.9),
                                 dict(max_new_tokens=0), dict(max_new_tokens=257), dict(num_return_sequences=6),
                                 dict(top_k="eight"), dict(seed=-1), dict(temperature=float("nan"))])
def test_out_of_range_settings_are_rejected(bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        GenerationSettings(**bad)


@pytest.mark.parametrize("name, message", [("", "enter a disease name"), ("   \t", "enter a disease name"),
                                           ("x" * 100_000, "limit is"), (None, "must be text")])
def test_bad_names_are_rejected(name, message):
    with pytest.raises(ValueError, match=message):
        clean_name(name)


def test_control_characters_and_emoji_are_handled(best):
    assert clean_name("Kidney\x00 Failure\n") == "Kidney Failure"
    model, tok = best
    assert isinstance(generate(model, tok, "Flu 🤒", GREEDY.with_(max_new_tokens=4))[0], str)


def test_symptom_overlap():
    assert phrases("Fatigue, Nausea and vomiting; fever.") == {"fatigue", "nausea", "vomiting", "fever"}
    o = overlap("fatigue, fever, rash", "Fever, fatigue, cough, headache")
    assert (o.precision, o.recall) == (pytest.approx(2 / 3), 0.5)
    assert o.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert o.matched == ("fatigue", "fever")
    assert overlap("", "fever").f1 == 0.0


def test_symptom_overlap_ignores_an_appended_treatments_section():
    """Runs that learn Symptoms + Treatments: only the symptom part is scored as symptoms."""
    from symptomgen.config import DataConfig
    from symptomgen.data import prepare

    prepared = prepare(DataConfig(source="sample", extra_target_column="Treatments"))
    reference = prepared.train["target"].iloc[0]
    symptoms, treatments = reference.split("; Treatments: ")
    o = overlap(f"{symptoms}; Treatments: {treatments}", reference, "Treatments")
    assert o.recall == 1.0 and o.precision == 1.0
    assert not any(t.strip().lower() in o.matched for t in treatments.split(","))
    assert overlap(treatments, reference, "Treatments").recall < 1.0
    assert overlap("fever; cough: dry", "fever; cough: dry").recall == 1.0  # no extra column: nothing cut


def test_model_cache_reloads_a_folder_whose_weights_changed(trained_run, tmp_path):
    """A run resumed or re-imported under the same name must not be served from the old weights."""
    import shutil

    import torch

    from symptomgen.generation import ModelCache
    from symptomgen.runs import Run

    folder = tmp_path / "best"
    shutil.copytree(Run(trained_run.run_dir).best_dir, folder)
    cache = ModelCache(capacity=2)
    first, _ = cache.get(folder)
    assert cache.get(folder)[0] is first  # unchanged: served from the cache
    changed, tok = load_pretrained(folder)
    with torch.no_grad():
        changed.transformer.wte.weight.mul_(0.5)
    changed.save_pretrained(folder)
    second, _ = cache.get(folder)
    assert second is not first and len(cache._items) == 1  # the old weights are dropped, not kept
    assert torch.allclose(second.transformer.wte.weight, first.transformer.wte.weight * 0.5)
    del cache  # a cache is dropped whole (a server restart): a new one loads the folder afresh
    fresh, _ = ModelCache(capacity=2).get(folder)
    assert fresh is not second and torch.equal(fresh.transformer.wte.weight, second.transformer.wte.weight)

def test_serving_dtype_is_decided_from_this_cpus_flags(monkeypatch):
    """bf16 serving is feature detection per CPU (its /proc/cpuinfo flags), not a fixed yes, and says why."""
    import torch

    from symptomgen import cputune, modeling

    cpu = torch.device("cpu")
    monkeypatch.setattr(cputune, "bf16_flags", lambda: ())
    monkeypatch.setattr(cputune, "native_bf16", lambda: False)
    dtype, why = modeling.serving_dtype(cpu)
    assert dtype == torch.float32 and "no native bf16" in why
    monkeypatch.setattr(cputune, "bf16_flags", lambda: ("avx512_bf16",))
    assert modeling.serving_dtype(cpu)[1].endswith("turned off (SYMPTOMGEN_CPU_BF16=0): fp32")
    monkeypatch.setattr(cputune, "native_bf16", lambda: True)
    assert modeling.serving_dtype(cpu) == (torch.bfloat16, "this CPU has native bf16 (avx512_bf16)")
    assert modeling.place(torch.nn.Linear(2, 2), cpu, serving=True).weight.dtype == torch.bfloat16
    assert modeling.place(torch.nn.Linear(2, 2), cpu).weight.dtype == torch.float32  # validation stays fp32

def test_cli_generate_serves_the_dtype_the_app_serves(trained_run, monkeypatch, capsys):
    """``python -m symptomgen generate`` loads as the app's ModelCache does: bf16 weights where the CPU has native
    bf16, fp32 where it has not (or ``SYMPTOMGEN_CPU_BF16=0``)."""
    import torch

    import symptomgen.generation as G
    from symptomgen import cli, modeling

    seen = []

    def spy(model, tok, name, settings):
        seen.append(next(model.parameters()).dtype)
        return ["x"]

    monkeypatch.setattr(G, "generate", spy)
    best = str(trained_run.run_dir / "best")
    for native in (True, False):
        monkeypatch.setattr(modeling.cputune, "native_bf16", lambda native=native: native)
        monkeypatch.setattr(modeling, "pick_device", lambda: torch.device("cpu"))
        assert cli.main(["generate", "--model", best, "Asthma", "--temperature", "0"]) == 0
        app_dtype = next(G.ModelCache().get(best)[0].parameters()).dtype
        assert seen[-1] == app_dtype == (torch.bfloat16 if native else torch.float32)
    assert "Asthma | x" in capsys.readouterr().out

def _warped(scores, top_k, top_p, temperature):
    """transformers' own sampling warpers, in generate's order: what TopKSampler must keep."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
        scores = warper(None, scores)
    return scores


@pytest.mark.parametrize("top_k, top_p, temperature", [(8, 0.95, 0.5), (5, 1.0, 1.0), (3, 0.5, 1.3), (40, 0.9, 0.7)])
def test_top_k_sampler_keeps_the_tokens_transformers_warpers_keep(top_k, top_p, temperature):
    import torch
    from transformers.generation.logits_process import TopKLogitsWarper

    from symptomgen.generation import TopKSampler

    torch.manual_seed(0)
    scores = (torch.randn(3, 2000) * 3).bfloat16().float()  # bf16 logits: ties at the k-th score happen
    scores[0, :5] = scores[0].max()  # five tied best tokens
    scores[1, torch.randperm(2000)[:1990]] = -float("inf")  # a row with few allowed tokens (no_repeat_ngram)
    sampler = TopKSampler(top_k, top_p, temperature)
    sampler.recorded = []
    out = sampler(None, scores.clone())
    expected = _warped(scores.clone(), top_k, top_p, temperature)
    kept, top_k_only = sampler.recorded[0], TopKLogitsWarper(top_k)(None, scores.clone())
    # The same probabilities; where top-p cuts inside a group of equal scores, which of them go is arbitrary
    # (transformers' sort is not stable), so the kept tokens are compared as a multiset among top-k's tokens.
    assert torch.allclose(kept.softmax(-1).sort(-1).values, expected.softmax(-1).sort(-1).values, atol=1e-6)
    assert torch.isfinite(top_k_only[torch.isfinite(kept)]).all()
    drawn = out.argmax(-1)
    assert torch.isfinite(kept.gather(-1, drawn[:, None])).all() and (out == 0).sum() == 3


def test_top_k_sampler_draws_in_proportion_to_the_kept_probabilities():
    import torch

    from symptomgen.generation import TopKSampler

    scores = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -1.0]]).repeat(4000, 1)
    torch.manual_seed(1)
    drawn = TopKSampler(3, 1.0, 1.0)(None, scores).argmax(-1)
    freq = torch.bincount(drawn, minlength=6).float() / len(drawn)
    expected = torch.cat([torch.softmax(scores[0, :3], -1), torch.zeros(3)])
    assert torch.allclose(freq, expected, atol=0.03)


def test_an_instruction_set_cap_turns_native_bf16_off(monkeypatch):
    """``ONEDNN_MAX_CPU_ISA`` below AVX512-BF16 (or ``ATEN_CPU_CAPABILITY`` below AVX512) makes torch's bf16 matmuls
    emulated, so training autocast and bf16 serving are off and the reason names the cap; caps that keep bf16 do not."""
    import torch

    from symptomgen import cputune, modeling

    assert cputune.isa_cap({}) is None
    assert cputune.isa_cap({"ONEDNN_MAX_CPU_ISA": "avx2"}) == "ONEDNN_MAX_CPU_ISA=AVX2"
    assert cputune.isa_cap({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}) is None
    assert cputune.isa_cap({"ONEDNN_MAX_CPU_ISA": "ALL", "ATEN_CPU_CAPABILITY": "avx2"}) == "ATEN_CPU_CAPABILITY=avx2"
    assert cputune.isa_cap({"ATEN_CPU_CAPABILITY": "avx512"}) is None

    monkeypatch.setattr(cputune, "bf16_flags", lambda: ("avx512_bf16",))
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    cputune.native_bf16.cache_clear()
    try:
        assert not cputune.native_bf16()
        dtype, why = modeling.serving_dtype(torch.device("cpu"))
        assert dtype == torch.float32 and "ONEDNN_MAX_CPU_ISA=AVX2 keeps torch below it" in why
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
        cputune.native_bf16.cache_clear()
        assert cputune.native_bf16() == cputune.current().cpu_bf16
    finally:
        cputune.native_bf16.cache_clear()


def test_fp32_serving_uses_the_few_rows_head_with_the_same_values(trained_run, monkeypatch):
    """Served in fp32 on CPU (no native bf16), the LM head multiplies a few rows as ``W @ x.T`` (fp32 ``F.linear``
    is about 2× slower there): same module and tied weight, the same logits, the same greedy text."""
    import torch

    from symptomgen import modeling
    from symptomgen.config import GenerationSettings
    from symptomgen.generation import generate
    from symptomgen.runs import Run

    monkeypatch.setattr(modeling.cputune, "native_bf16", lambda: False)
    best = Run(trained_run.run_dir).best_dir
    plain, tok = modeling.load_pretrained(best)
    served, _ = modeling.load_pretrained(best)
    modeling.place(plain, torch.device("cpu"))
    modeling.place(served, torch.device("cpu"), serving=True)
    assert type(plain.lm_head) is torch.nn.Linear and type(served.lm_head) is modeling.FewRowsHead
    assert served.lm_head.weight is served.get_input_embeddings().weight  # still tied
    for shape in ((1, 1), (3, 1), (2, 5), (40, 1)):  # one row, a few (the new kernel), more than FEW
        x = torch.randn(*shape, served.config.n_embd)
        torch.testing.assert_close(served.lm_head(x), plain.lm_head(x), rtol=1e-5, atol=1e-5)
    greedy = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=16)
    sampled = GenerationSettings(temperature=0.7, top_k=8, max_new_tokens=16, num_return_sequences=3, seed=5)
    for name in list(Run(trained_run.run_dir).split_frames()[1]["prompt"][:3]):
        assert generate(served, tok, name, greedy) == generate(plain, tok, name, greedy)
        assert len(generate(served, tok, name, sampled)) == 3  # three rows per step: the few-rows kernel
