"""Sharing runs: zip round trip, hostile zips, the model card, and the Hub (offline or faked)."""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from symptomgen import NOT_MEDICAL_ADVICE, settings, share
from symptomgen.catalog import base_model
from symptomgen.cli import main
from symptomgen.errors import HubUnreachableError
from symptomgen.evaluation import GREEDY
from symptomgen.generation import generate
from symptomgen.modeling import load_pretrained
from symptomgen.runs import METRIC_COLUMNS, Run
from symptomgen.share import (
    ShareError,
    import_run_from_hub,
    import_run_zip,
    push_run_to_hub,
    write_model_card,
)
from symptomgen.store import RunStore

SECRET = "hf_supersecret_test_token_123"


def _state(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_zip_holds_model_run_files_and_card_but_no_checkpoints(trained_run, exported):
    run_id = trained_run.run_dir.name
    names = set(zipfile.ZipFile(exported).namelist())
    for want in ("README.md", "config.json", "model.safetensors", "tokenizer.json", "symptomgen/run.json",
                 "symptomgen/metrics.csv", "symptomgen/val.csv", "symptomgen/train.csv",
                 "symptomgen/base/model.safetensors"):
        assert f"{run_id}/{want}" in names, want
    assert (trained_run.run_dir / "checkpoints").is_dir()  # the run has them; the zip must not
    assert not [n for n in names if "checkpoint" in n or n.endswith((".pt", ".bin", ".pth"))]
    run_json = json.loads(zipfile.ZipFile(exported).read(f"{run_id}/symptomgen/run.json"))
    assert "pid" not in run_json and "host" not in run_json and run_json["train"]["model"] == "scratch"


def test_zip_round_trip_gives_same_greedy_generations(trained_run, exported, tmp_path):
    runs_dir = tmp_path / "runs"
    run = import_run_zip(exported, RunStore.at(runs_dir))
    original = Run(trained_run.run_dir)
    assert [r.run_id for r in RunStore.at(runs_dir).list()] == [run.run_id] == [original.run_id]
    assert sorted(p.name for p in runs_dir.iterdir()) == [run.run_id]  # no work folders left behind
    rec = run.record()
    assert rec.train == original.record().train and rec.data == original.record().data
    assert rec.status == "finished" and rec.imported_from == "zip:run.zip"
    pd.testing.assert_frame_equal(run.metrics(), original.metrics())
    assert list(run.metrics().columns) == METRIC_COLUMNS
    pd.testing.assert_frame_equal(run.split_frames()[1], original.split_frames()[1])
    a, b = _state(original.best_dir), _state(run.best_dir)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    m1, t1 = load_pretrained(original.best_dir)
    m2, t2 = load_pretrained(run.best_dir)
    names = list(original.split_frames()[1]["prompt"][:4])
    settings = GREEDY.with_(max_new_tokens=16)
    assert [generate(m1, t1, n, settings) for n in names] == [generate(m2, t2, n, settings) for n in names]
    # The untrained base model comes along, so before/after evaluation still works after import.
    assert _state(run.base_dir).keys() == a.keys() and not all(_state(run.base_dir)[k].equal(a[k]) for k in a)
    again = import_run_zip(exported, RunStore.at(runs_dir))
    assert again.run_id == f"{run.run_id}-imported" and run.best_dir.is_dir()


def _evil_zip(exported: Path, dest: Path, name: str | zipfile.ZipInfo, data: bytes = b"{}",
              drop: str | None = None) -> Path:
    with zipfile.ZipFile(exported) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            if drop is None or not info.filename.endswith(drop):
                out.writestr(info, src.read(info))
        out.writestr(name, data)
    return dest


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member, message", [
    ("../evil.json", "path traversal"),
    ("x/../../evil.json", "path traversal"),
    ("/tmp/symptomgen-evil.json", "absolute"),
    ("C:/evil.json", "absolute"),
    (_symlink("run/link.json"), "symbolic link"),
    ("run/pytorch_model.bin", "pickle"),
    ("run/optimizer.pt", "pickle"),
    ("run/data.pkl", "pickle"),
    ("run/run.sh", "unexpected file"),
])
def test_hostile_zip_members_are_rejected_before_anything_is_written(exported, tmp_path, member, message):
    bad = _evil_zip(exported, tmp_path / "bad.zip", member, b"/etc/passwd")
    runs_dir = tmp_path / "runs"
    with pytest.raises(ShareError, match=message):
        import_run_zip(bad, RunStore.at(runs_dir))
    assert list(runs_dir.iterdir()) == []  # no run, no leftover work folder
    assert not (tmp_path / "evil.json").exists() and not Path("/tmp/symptomgen-evil.json").exists()


def test_pickle_disguised_as_safetensors_is_rejected(trained_run, exported, tmp_path):
    import pickle

    name = f"{trained_run.run_dir.name}/model.safetensors"
    bad = _evil_zip(exported, tmp_path / "bad.zip", name, pickle.dumps({"a": 1}), drop="/model.safetensors")
    with pytest.raises(ShareError, match="not a valid safetensors file"):  # its header is read before loading
        import_run_zip(bad, RunStore(tmp_path / "runs"))
    assert RunStore(tmp_path / "runs").list() == []


def test_zip_limits_and_non_runs_are_rejected(exported, tmp_path, monkeypatch):
    (tmp_path / "notes.zip").write_text("not a zip")
    with pytest.raises(ShareError, match="not a zip file"):
        import_run_zip(tmp_path / "notes.zip", RunStore(tmp_path / "runs"))
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as zf:
        zf.writestr("model/config.json", "{}")
    with pytest.raises(ShareError, match="not a SymptomGen run export"):
        import_run_zip(tmp_path / "plain.zip", RunStore(tmp_path / "runs"))
    with settings.override(max_import_bytes=4096), pytest.raises(ShareError, match="import limit"):
        import_run_zip(exported, RunStore(tmp_path / "runs"))
    assert RunStore(tmp_path / "runs").list() == []


def test_model_card_lists_data_settings_metrics_and_the_medical_note(trained_run):
    run = Run(trained_run.run_dir)
    rec, metrics = run.record(), run.metrics()
    card = write_model_card(run.path)
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-generation"
    assert "symptomgen" in front["tags"] and "base_model" not in front  # scratch has no Hub base model
    assert NOT_MEDICAL_ADVICE in card
    assert "`sample`" in card and "`Name`" in card and "`Symptoms`" in card
    assert f"{rec.train_rows} training rows, {rec.val_rows} validation rows" in card
    assert f"| learning_rate | {rec.train.learning_rate:.4g} |" in card
    assert f"| epochs | {rec.train.epochs} |" in card and "| scratch_layers | 2 |" in card
    assert f"Best epoch: {rec.best_epoch} (validation loss {rec.best_val_loss:.4f}" in card
    for _, row in metrics.iterrows():
        assert f"| {int(row['epoch'])} | {row['training_loss']:.4f} | {row['validation_loss']:.4f} |" in card
    assert len(metrics) == 3


def test_push_without_token_says_how_to_give_one_and_never_takes_the_machines(trained_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)  # the machine has one: push still acts only with the token it is given
    with pytest.raises(ShareError, match="No Hugging Face token: sign in with Hugging Face or give a write token"):
        push_run_to_hub(Run(trained_run.run_dir), "someone/symptoms")


def _no_network(*args, **kwargs):
    raise AssertionError("the Hub must not be contacted when it is known to be unreachable")


def test_push_and_hub_import_offline_fail_with_a_clear_message(trained_run, monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(huggingface_hub, "HfApi", _no_network)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _no_network)
    offline = r"offline mode is on \(HF_HUB_OFFLINE=1\)"
    with pytest.raises(HubUnreachableError, match=r"Could not push run .* " + offline) as e:
        push_run_to_hub(Run(trained_run.run_dir), "someone/symptoms", token=SECRET)
    assert SECRET not in str(e.value)
    with pytest.raises(HubUnreachableError, match=r"Could not download run 'someone/symptoms' .* offline mode is on"):
        import_run_from_hub("someone/symptoms", RunStore(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


class FakeApi:
    """Stands in for huggingface_hub.HfApi: records calls, copies uploads into a fake repo folder."""

    calls: list = []
    repo: Path
    fail_with: Exception | None = None

    def __init__(self, token=None, **kwargs):
        FakeApi.calls.append(("init", token))

    def create_repo(self, repo_id, private=None, repo_type=None, exist_ok=False, **kw):
        if FakeApi.fail_with:
            raise FakeApi.fail_with
        FakeApi.calls.append(("create_repo", repo_id, private, exist_ok))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, **kw):
        FakeApi.calls.append(("upload_folder", repo_id))
        shutil.copytree(folder_path, FakeApi.repo, dirs_exist_ok=True)

    def model_info(self, repo_id, revision=None, files_metadata=False, **kw):
        from types import SimpleNamespace

        files = [p for p in FakeApi.repo.rglob("*") if p.is_file()]
        return SimpleNamespace(sha="abc123", siblings=[SimpleNamespace(rfilename=p.relative_to(FakeApi.repo).as_posix(),
                                                                       size=p.stat().st_size) for p in files])


def test_push_uses_the_upload_api_and_a_pushed_run_imports_back(trained_run, monkeypatch, tmp_path):
    import huggingface_hub

    FakeApi.calls, FakeApi.repo, FakeApi.fail_with = [], tmp_path / "hub-repo", None
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(share, "hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = push_run_to_hub(Run(trained_run.run_dir), "someone/symptoms", token=SECRET)
    assert url == "https://huggingface.co/someone/symptoms"
    assert FakeApi.calls == [("init", SECRET), ("create_repo", "someone/symptoms", True, True),
                             ("upload_folder", "someone/symptoms")]
    repo = FakeApi.repo
    assert json.loads((repo / "config.json").read_text())["model_type"] == "gpt2"  # loadable as a Hub model
    assert (repo / "README.md").read_text().startswith("---\n") and (repo / "symptomgen" / "run.json").is_file()
    assert not [p for p in repo.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]

    def fake_download(repo_id, revision=None, local_dir=None, allow_patterns=None, **kw):
        assert revision == "abc123" and "*.safetensors" in allow_patterns and "*.bin" not in allow_patterns
        shutil.copytree(repo, local_dir)
        (Path(local_dir) / ".cache").mkdir()  # huggingface_hub's bookkeeping folder is tolerated
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    run = import_run_from_hub("someone/symptoms", RunStore(tmp_path / "runs"))
    assert FakeApi.calls[-1] == ("init", False)  # no token given: anonymous, never the machine's HF_TOKEN
    assert run.record().imported_from == "hub:someone/symptoms@abc123"
    assert _state(run.best_dir).keys() == _state(trained_run.run_dir / "best").keys()

    FakeApi.fail_with = RuntimeError(f"401 Client Error: Unauthorized for token {SECRET}")
    with pytest.raises(ShareError, match=r"Could not push run .*401 Client Error") as e:
        push_run_to_hub(Run(trained_run.run_dir), "someone/symptoms", token=SECRET)
    assert SECRET not in str(e.value) and "***" in str(e.value)
    with pytest.raises(ShareError, match="owner/name"):
        push_run_to_hub(Run(trained_run.run_dir), "../not a repo", token=SECRET)


def test_cli_export_import_push(trained_run, tmp_path, monkeypatch, capsys):
    runs_dir, out = trained_run.run_dir.parent, tmp_path / "cli.zip"
    assert main(["--runs-dir", str(runs_dir), "export", trained_run.run_dir.name, "--out", str(out)]) == 0
    assert main(["--runs-dir", str(tmp_path / "mine"), "import", str(out)]) == 0
    assert [r.run_id for r in RunStore(tmp_path / "mine").list()] == [trained_run.run_dir.name]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["--runs-dir", str(runs_dir), "push", trained_run.run_dir.name, "--repo-id", "me/x"]) == 2
    assert "error: No Hugging Face token" in capsys.readouterr().err
    assert main(["--runs-dir", str(runs_dir), "export", "no-such-run", "--out", str(out)]) == 2
    assert "was not found" in capsys.readouterr().err


def _rewritten(zip_path: Path, dest: Path, run_json_changes: dict, drop_prefix: str | None = None,
               metrics: str | None = None) -> Path:
    """A copy of an exported zip with its run.json edited (and, optionally, members dropped/replaced)."""
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if drop_prefix and drop_prefix in info.filename:
                continue
            if info.filename.endswith("symptomgen/run.json"):
                data = json.dumps({**json.loads(data), **run_json_changes}).encode()
            if metrics is not None and info.filename.endswith("symptomgen/metrics.csv"):
                data = metrics.encode()
            out.writestr(info, data)
    return dest


@pytest.mark.parametrize("model", ["/etc", "{runs}/other/best", "evilcorp/huge-model"])
def test_an_imported_run_never_names_a_server_path_or_disallowed_model_as_its_base(
        trained_run, exported, tmp_path, monkeypatch, model):
    from symptomgen.evaluation import evaluate_run

    monkeypatch.setenv("SYMPTOMGEN_ALLOWED_MODELS", "distilgpt2")
    runs_dir = tmp_path / "runs"
    model = model.format(runs=trained_run.run_dir.parent)
    cfg = json.loads(zipfile.ZipFile(exported).read(f"{trained_run.run_dir.name}/symptomgen/run.json"))
    crafted = _rewritten(exported, tmp_path / "crafted.zip", {"train": {**cfg["train"], "model": model}},
                         drop_prefix="symptomgen/base/")
    run = import_run_zip(crafted, RunStore.at(runs_dir))
    assert base_model(run) is None  # no base/, and the named model is a path or not allowed here
    out = evaluate_run(run.path, limit=1)
    assert out["unseen"]["base"] == {"error": "no base model is recorded for this run."}


def test_an_imported_run_with_a_minimal_metrics_table_still_has_a_card(exported, tmp_path):
    crafted = _rewritten(exported, tmp_path / "minimal.zip", {}, metrics="epoch,validation_loss\n1,5.5\n2,5.2\n")
    run = import_run_zip(crafted, RunStore(tmp_path / "runs"))
    assert list(run.metrics().columns) == METRIC_COLUMNS
    card = write_model_card(run.path)
    assert "5.2" in card


def test_a_run_trained_on_from_any_run_folder_is_recognised_by_name(trained_run, exported, tmp_path):
    from symptomgen.runs import parent_run_id

    run = import_run_zip(exported, RunStore(tmp_path / "runs"))
    renamed = run.path.rename(run.path.with_name("my-favourite-run"))
    assert parent_run_id(str(renamed / "best")) == "my-favourite-run"
    assert parent_run_id(str(trained_run.run_dir / "base")) is None  # not a best/ folder
    assert parent_run_id(str(tmp_path)) is None
