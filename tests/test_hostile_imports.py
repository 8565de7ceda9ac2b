"""Hostile run zips (issue 12): each is refused with one sentence, before it costs memory or leaves a trace.

Every case starts from a genuine export of a tiny run and changes one thing: a config that names a large model
next to weights that hold nothing, sizes past the limits, files that compress 1000:1, forged record fields, a
broken tokenizer.  Each import runs in this process while a sampler watches its resident memory: the growth must
stay under a few hundred MB (the same zips made the old code allocate gigabytes).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from symptomgen import settings
from symptomgen.errors import QuotaExceeded, ShareError
from symptomgen.runs import Run
from symptomgen.share import export_run_zip, import_run_zip
from symptomgen.store import RunStore

MB = 2**20
GROWTH_LIMIT = 300 * MB  # what one refused import may add to this process's resident memory, at its peak


@pytest.fixture(scope="module")
def members(trained_run, tmp_path_factory) -> dict[str, bytes]:
    """A genuine export's files by name (``<run_id>/...``)."""
    path = export_run_zip(Run(trained_run.run_dir), tmp_path_factory.mktemp("export") / "run.zip")
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _find(files: dict, suffix: str) -> str:
    return next(n for n in files if n.endswith(suffix))


def _json(files: dict, suffix: str, **changes) -> None:
    name = _find(files, suffix)
    files[name] = json.dumps({**json.loads(files[name]), **changes}).encode()


def _tensors(files: dict) -> dict:
    from safetensors.torch import load

    return load(files[f"{_root(files)}/model.safetensors"])


def _save(files: dict, tensors: dict) -> None:
    from safetensors.torch import save

    files[f"{_root(files)}/model.safetensors"] = save(tensors)


class Repeated:
    """A member written in chunks: ``size`` bytes of one repeated line (compresses ~1000:1)."""

    def __init__(self, head: bytes, line: bytes, size: int):
        self.head, self.line, self.size = head, line, size

    def write(self, out) -> None:
        block = self.line * max(1, (1 * MB) // len(self.line))
        out.write(self.head)
        written = len(self.head)
        while written < self.size:
            out.write(block)
            written += len(block)


# -- the cases: (id, change to the genuine files, message expected) --------------------------------------------
def weightless_big_config(files):
    _json(files, f"{_root(files)}/config.json", n_layer=48, n_embd=1024, n_head=16,
          vocab_size=50257, n_positions=1024)
    _save(files, {})


def weightless_small_config(files):
    _save(files, {})


def ten_thousand_layers(files):
    _json(files, f"{_root(files)}/config.json", n_layer=10_000)


def oversized_width(files):
    _json(files, f"{_root(files)}/config.json", n_embd=8192, n_head=16)


def missing_tensor(files):
    tensors = _tensors(files)
    tensors.pop(next(k for k in tensors if k.endswith("mlp.c_fc.weight")))
    _save(files, tensors)


def extra_tensor(files):
    import torch

    _save(files, {**_tensors(files), "backdoor.weight": torch.zeros(4, 4)})


def wrong_shape(files):
    import torch

    tensors = _tensors(files)
    key = next(k for k in tensors if k.endswith("ln_f.weight"))
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1)
    _save(files, tensors)


def lying_header(files):
    name = f"{_root(files)}/model.safetensors"
    files[name] = (2**40).to_bytes(8, "little") + files[name][8:]  # a header "1 TB long"


def huge_metrics(files):
    files[_find(files, "symptomgen/metrics.csv")] = Repeated(
        b"epoch,training_loss,validation_loss\n", b"1,1.0,1.0\n", 64 * MB)


def huge_train_split(files):
    files[_find(files, "symptomgen/train.csv")] = Repeated(b"prompt,target\n", b"Flu,fever cough\n", 64 * MB)


def huge_val_split(files):
    files[_find(files, "symptomgen/val.csv")] = Repeated(b"prompt,target\n", b"Flu,fever cough\n", 64 * MB)


def huge_tokenizer(files):
    files[f"{_root(files)}/tokenizer.json"] = Repeated(b'{"pad": "', b"a" * 64, 40 * MB)


def garbage_tokenizer(files):
    files[f"{_root(files)}/tokenizer.json"] = b"{not json at all"


def tokenizer_beyond_embeddings(files):
    _json(files, f"{_root(files)}/config.json", vocab_size=100)
    tensors = _tensors(files)
    for key in list(tensors):
        if key.endswith("wte.weight"):
            tensors[key] = tensors[key][:100].clone()
    _save(files, tensors)


def forged_status(files):
    _json(files, "symptomgen/run.json", status="pwned")


def forged_loss(files):
    name = _find(files, "symptomgen/run.json")
    files[name] = files[name].replace(b'"best_val_loss": ', b'"best_val_loss": NaN, "_was": ', 1)


def forged_epoch_type(files):
    _json(files, "symptomgen/run.json", best_epoch="3; rm -rf /")


def forged_two_line_message(files):
    _json(files, "symptomgen/run.json", message="done\nerror: your server is hacked")


def forged_metrics_values(files):
    name = _find(files, "symptomgen/metrics.csv")
    files[name] = b"epoch,training_loss,validation_loss\n1,1.0,inf\n"


def _root(files: dict) -> str:
    return next(iter(files)).split("/")[0]


CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("weightless 48x1024 config", weightless_big_config, r"M parameters; this server imports models of at most"),
    ("weightless tiny config", weightless_small_config, r"weights lack \d+ of its \d+ tensors"),
    ("10000 layers", ten_thousand_layers, r"n_layer is 10000"),
    ("8192 wide", oversized_width, r"M parameters"),
    ("missing tensor", missing_tensor, r"weights lack 1 of its"),
    ("extra tensor", extra_tensor, r"does not describe \(such as backdoor.weight\)"),
    ("wrong shape", wrong_shape, r"has shape"),
    ("lying safetensors header", lying_header, r"not a valid safetensors file"),
    ("300 MB-class metrics.csv", huge_metrics, r"metrics.csv unpacks to more than the 2 MB"),
    ("huge train.csv", huge_train_split, r"train.csv unpacks to more than the 50 MB"),
    ("huge val.csv", huge_val_split, r"val.csv unpacks to more than the 50 MB"),
    ("huge tokenizer.json", huge_tokenizer, r"tokenizer.json unpacks to more than the 32 MB"),
    ("garbage tokenizer.json", garbage_tokenizer, r"model does not load"),
    ("tokenizer beyond the embeddings", tokenizer_beyond_embeddings, r"tokens but the model only 100 embeddings"),
    ("status outside the known set", forged_status, r"status 'pwned' is not one of"),
    ("non-finite loss in run.json", forged_loss, r"best_val_loss 'nan'"),
    ("text where a number goes", forged_epoch_type, r"best_epoch '3; rm -rf /'"),
    ("two-line message", forged_two_line_message, r"message .* is not a valid value"),
    ("infinite loss in metrics.csv", forged_metrics_values, r"validation_loss holds values that are not finite"),
]


def _write_zip(files: dict, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in files.items():
            if isinstance(data, Repeated):
                with zf.open(zipfile.ZipInfo(name), "w", force_zip64=True) as out:
                    data.write(out)
            else:
                zf.writestr(name, data)
    return dest


def peak_growth(fn: Callable[[], object]) -> tuple[int, BaseException | None]:
    """(the most this process's resident memory grew while ``fn`` ran, the exception it raised)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is in the test environment
        psutil = None
    if psutil is None:
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001
            return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before), exc
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before), None
    proc = psutil.Process(os.getpid())
    start, peak, done = proc.memory_info().rss, [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    error = None
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        error = exc
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return max(0, peak[0] - start), error


@pytest.mark.parametrize("label, change, message", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_zip_is_refused_with_bounded_memory(members, tmp_path, label, change, message):
    files = dict(members)
    change(files)
    bad = _write_zip(files, tmp_path / "hostile.zip")
    runs_dir = tmp_path / "runs"
    growth, error = peak_growth(lambda: import_run_zip(bad, RunStore.at(runs_dir)))
    assert isinstance(error, ShareError), f"{label}: {error!r}"
    text = str(error)
    assert re.search(message, text), text
    assert "\n" not in text and str(tmp_path) not in text and tempfile.gettempdir() not in text, text
    assert growth < GROWTH_LIMIT, f"{label}: resident memory grew {growth / MB:.0f} MB"
    assert RunStore.at(runs_dir).list() == [] and list(runs_dir.iterdir()) == []  # no run, no leftover work folder


def test_the_genuine_zip_still_imports(members, tmp_path):
    run = import_run_zip(_write_zip(dict(members), tmp_path / "good.zip"), RunStore(tmp_path / "runs"))
    assert run.record().status == "finished" and run.best_info().epoch == 3


def test_a_full_runs_folder_refuses_imports_and_says_how_to_free_space(members, tmp_path):
    good = _write_zip(dict(members), tmp_path / "good.zip")
    runs_dir = tmp_path / "runs"
    import_run_zip(good, RunStore.at(runs_dir))
    with settings.override(max_runs=1), pytest.raises(QuotaExceeded, match=r"at most 1 runs.*Delete runs"):
        import_run_zip(good, RunStore.at(runs_dir))
    with settings.override(max_runs_bytes=MB), pytest.raises(QuotaExceeded, match=r"uses .* of its 1 MB limit"):
        import_run_zip(good, RunStore.at(runs_dir))
    assert len(RunStore.at(runs_dir).list()) == 1


def test_an_upload_error_never_shows_the_servers_temp_folder(tmp_path):
    folder = tmp_path / "gradio" / "0123456789abcdef"
    folder.mkdir(parents=True)
    (folder / "run.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ShareError) as info:
        import_run_zip(folder / "run.zip", RunStore(tmp_path / "runs"))
    assert str(tmp_path) not in str(info.value) and "run.zip" in str(info.value)
    with pytest.raises(ShareError) as info:
        import_run_zip(folder / "missing.zip", RunStore(tmp_path / "runs"))
    assert str(tmp_path) not in str(info.value)
