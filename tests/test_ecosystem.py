"""The Hugging Face ecosystem around the engine: LoRA (peft), experiment tracking, ZeroGPU training (MCP: test_mcp.py).

Tiny scratch models on CPU, offline.
"""

from __future__ import annotations

import json
import struct
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import TINY

from symptomgen.batching import encode_frame, mean_token_loss
from symptomgen.config import DataConfig, GenerationSettings
from symptomgen.errors import InvalidInput, ModelLoadError
from symptomgen.events import EpochResult
from symptomgen.generation import generate
from symptomgen.modeling import load_pretrained
from symptomgen.runs import Run
from symptomgen.store import RunStore
from symptomgen.trainer import check_tracker, run_training

GREEDY = GenerationSettings(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A LoRA run on the tiny scratch model, with TensorBoard: stopped after epoch 1, then resumed to the end."""
    runs_dir = tmp_path_factory.mktemp("lora-runs")
    cfg = TINY.with_(epochs=2, learning_rate=1e-2, lora_rank=8, lora_alpha=16, save_checkpoints=True,
                     report_to="tensorboard")
    stop = threading.Event()
    first = run_training(DataConfig(source="sample"), cfg, runs_dir, stop=stop,
                         on_event=lambda e: stop.set() if isinstance(e, EpochResult) else None)
    assert first.status == "stopped" and first.epochs_done == 1
    resumed = run_training(DataConfig(), cfg, runs_dir, resume=first.run_dir.name)
    assert resumed.status == "finished" and resumed.run_dir == first.run_dir
    return Run(first.run_dir)


def test_lora_run_keeps_an_adapter_and_names_its_base(lora_run):
    rec = lora_run.record()
    assert rec.train.lora_rank == 8 and rec.lora_base == "base"  # scratch: the run's own base/ folder
    assert list(lora_run.metrics()["epoch"]) == [1, 2]  # one epoch, then the resumed one
    best = sorted(p.name for p in lora_run.best_dir.iterdir())
    assert "adapter_model.safetensors" in best and "adapter_config.json" in best and "model.safetensors" not in best
    adapter = json.loads((lora_run.best_dir / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and adapter["fan_in_fan_out"] is True  # GPT-2's Conv1D layers
    assert set(adapter["target_modules"]) == {"c_attn", "c_proj"}
    # The adapter is a small part of the model it applies to.
    size = (lora_run.best_dir / "adapter_model.safetensors").stat().st_size
    assert size < (lora_run.base_dir / "model.safetensors").stat().st_size / 3


def _greedy(model, tok) -> str:
    return generate(model, tok, "Asthma", GREEDY)[0]


def test_a_lora_run_reloads_merged_with_its_validation_loss_and_text(lora_run):
    from peft import PeftModel

    model, tok = load_pretrained(lora_run.best_dir)
    assert type(model).__name__ == "GPT2LMHeadModel"  # merged: every caller sees a plain model
    rec = lora_run.record()
    rows = encode_frame(tok, lora_run.split_frames()[1], rec.train.max_length, rec.train.loss_on)
    assert mean_token_loss(model, rows, tok.pad_token_id) == pytest.approx(rec.best_val_loss, rel=1e-4)
    base, _ = load_pretrained(lora_run.base_dir)
    unmerged = PeftModel.from_pretrained(base, str(lora_run.best_dir))
    assert _greedy(model, tok) == _greedy(unmerged, tok)


def test_lora_exports_as_adapter_or_merged_weights(lora_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from symptomgen.share import export_run_zip, import_run_zip

    expected = _greedy(*load_pretrained(lora_run.best_dir))
    merged_zip = export_run_zip(lora_run, tmp_path / "merged.zip", merged=True)
    with zipfile.ZipFile(merged_zip) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "merged")
    assert not any("adapter" in n for n in names)
    folder = tmp_path / "merged" / lora_run.run_id
    model = AutoModelForCausalLM.from_pretrained(folder)  # plain transformers, no peft
    assert _greedy(model, AutoTokenizer.from_pretrained(folder)) == expected

    assert "library_name: transformers" in (folder / "README.md").read_text()

    adapter_zip = export_run_zip(lora_run, tmp_path / "adapter.zip")
    with zipfile.ZipFile(adapter_zip) as zf:
        assert f"{lora_run.run_id}/adapter_model.safetensors" in zf.namelist()
        zf.extractall(tmp_path / "adapter")
    # The adapter's card says peft, and the code in its "Use" section loads it as the app does.
    card = (tmp_path / "adapter" / lora_run.run_id / "README.md").read_text()
    assert "library_name: peft" in card
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    config = json.loads((tmp_path / "adapter" / lora_run.run_id / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] is None  # its base is in symptomgen/base, not a path of this server
    exec(snippet.replace("<this folder>", str(tmp_path / "adapter" / lora_run.run_id))
         .replace("max_new_tokens=48", "max_new_tokens=2"), scope)
    assert _greedy(scope["model"], scope["tok"]) == expected
    imported = import_run_zip(adapter_zip, RunStore(tmp_path / "runs"))
    assert imported.has_best() and _greedy(*load_pretrained(imported.best_dir)) == expected


def test_lora_refuses_unknown_layers_before_making_a_run(tmp_path, tiny_cfg, sample_data):
    with pytest.raises(InvalidInput, match="None of the LoRA target modules \\(q_proj\\).*c_attn"):
        run_training(sample_data, tiny_cfg.with_(lora_rank=4, lora_targets="q_proj"), tmp_path)
    assert not list(tmp_path.iterdir())
    with pytest.raises(InvalidInput, match="LoRA target modules must be comma-separated layer names"):
        tiny_cfg.with_(lora_targets="c_attn; rm -rf")


@pytest.mark.parametrize("change, message", [
    ({"r": 100_000}, "ranks 1 to 256 are accepted"),
    ({"peft_type": "PROMPT_TUNING"}, "not a LoRA adapter"),
    ({"layer_replication": [[0, 2], [0, 2]]}, "copies base layers"),
])
def test_a_hostile_adapter_config_is_refused(lora_run, tmp_path, change, message):
    import shutil

    folder = tmp_path / "best"
    shutil.copytree(lora_run.best_dir, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ModelLoadError, match=message):
        load_pretrained(folder)


def test_an_adapter_never_loads_a_base_from_a_path_it_names(lora_run, tmp_path):
    import shutil

    folder = tmp_path / "lonely" / "best"  # no base/ beside it
    shutil.copytree(lora_run.best_dir, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(lora_run.base_dir)  # a real model folder on this machine
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="not a Hub model id"):
        load_pretrained(folder)


# ------------------------------------------------------------------ experiment tracking

def _event_tags(path: Path) -> set[str]:
    """Scalar tags in a TensorBoard event file (TFRecord framing: length, crc, Event proto, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    tags, data = set(), path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event.FromString(data[pos + 12:pos + 12 + length])
        tags.update(v.tag for v in event.summary.value)
        pos += 12 + length + 4
    return tags


def test_tensorboard_event_files_land_in_the_run(lora_run):
    files = list((lora_run.path / "logs").glob("events.out.tfevents.*"))
    assert files, sorted(p.name for p in lora_run.path.rglob("*"))
    tags = set().union(*(_event_tags(f) for f in files))
    assert "train/loss" in tags and "train/learning_rate" in tags
    assert not (lora_run.checkpoints_dir / "runs").exists()  # not the Trainer's default place


def test_a_tracker_whose_package_is_missing_is_refused_in_one_sentence(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "tensorboardX", "trackio") else real(name, *a))
    with pytest.raises(InvalidInput) as err:
        check_tracker("tensorboard")
    assert "needs the tensorboard or tensorboardX package" in str(err.value) and "\n" not in str(err.value)
    check_tracker("none")


# ------------------------------------------------------------------ ZeroGPU training


def _tiny_job(runs_dir, data, cfg):
    """A job manager on ZeroGPU, started with ``cfg``; the epoch counts its snapshots showed, in order."""
    from symptomgen.jobs import JobManager

    manager = JobManager(runs_dir)
    snap = manager.start(data, cfg, fallback=False)
    seen, after = [], -1
    while not snap.done:
        snap = manager.wait(snap.job_id, after, timeout=30)
        after = snap.version
        seen.append(len(snap.epochs))
    return snap, seen


def test_zero_gpu_trains_inside_one_sized_gpu_call_and_streams_epochs(fake_spaces, tmp_path, sample_data):
    from symptomgen import zerogpu

    cfg = TINY.with_(epochs=3)
    from symptomgen.data import prepare

    runs_dir = tmp_path / "runs"
    rows = len(prepare(sample_data).train)
    expected = zerogpu.plan(cfg, rows, RunStore(runs_dir))
    assert not expected.measured  # nothing trained on a GPU here yet: the estimate
    snap, seen = _tiny_job(runs_dir, sample_data, cfg)
    assert snap.error is None and snap.summary.status == "finished", snap.error
    assert fake_spaces.calls == [expected.seconds]  # one GPU call, asking for the planned duration
    assert expected.seconds == pytest.approx(zerogpu.LOAD_SECONDS + expected.steps * expected.step_seconds
                                             * zerogpu.SAFETY, abs=1)
    assert [e.epoch for e in snap.epochs] == [1, 2, 3]
    assert 1 in seen and seen.index(1) < seen.index(3)  # streamed: a view with one epoch came before the last

    # The run now serves as a measurement for the next plan, once it is known to have run on a GPU.
    run = Run(snap.summary.run_dir)
    run.update(device="NVIDIA H200 MIG 3g.71gb")
    measured = zerogpu.plan(cfg, rows, RunStore(runs_dir))
    assert measured.measured
    epoch_seconds = run.metrics()["epoch_duration_sec"].median()
    assert measured.step_seconds == pytest.approx(epoch_seconds / zerogpu.steps_per_epoch(cfg, rows))


def test_zero_gpu_refuses_a_training_too_long_for_one_call_before_starting(fake_spaces, tmp_path, sample_data):
    from symptomgen import settings
    from symptomgen.errors import TrainingFailed
    from symptomgen.jobs import JobManager

    runs_dir = tmp_path / "runs"
    manager = JobManager(runs_dir)
    with settings.override(zero_gpu_max_s=40), pytest.raises(TrainingFailed) as err:
        manager.start(sample_data, TINY.with_(epochs=100), fallback=False)
    message = str(err.value)
    assert "more than the 40 s one ZeroGPU call may take" in message and "epoch(s) fit" in message
    assert "\n" not in message
    assert fake_spaces.calls == [] and not runs_dir.exists() and not manager.busy()
