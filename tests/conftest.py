"""Shared fixtures: offline, CPU, a tiny scratch model on the bundled sample."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from symptomgen import quiet_libraries
from symptomgen.config import DataConfig, TrainConfig

quiet_libraries()

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Diseases_Symptoms.csv"

# keep="best": the tests of keeping by score say so (test_epoch_score); a 2-epoch tiny run's score is noise.
TINY = TrainConfig(model="scratch", epochs=2, batch_size=16, learning_rate=3e-3, max_length=64,
                   scratch_layers=2, scratch_width=64, scratch_vocab=800, save_checkpoints=False, keep="best")


@pytest.fixture
def tiny_cfg() -> TrainConfig:
    """A 2-layer, width-64 scratch GPT-2: trains an epoch of the sample in well under a second."""
    return TINY


@pytest.fixture
def sample_data() -> DataConfig:
    return DataConfig(source="sample")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One finished tiny run (3 epochs) shared by read-only tests."""
    from symptomgen.trainer import run_training

    runs_dir = tmp_path_factory.mktemp("runs")
    summary = run_training(DataConfig(source="sample"), TINY.with_(epochs=3, save_checkpoints=True), runs_dir)
    assert summary.status == "finished"
    return summary


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory) -> Path:
    """``trained_run`` exported as a run zip (read-only: tests that change it copy it first)."""
    from symptomgen.runs import Run
    from symptomgen.share import export_run_zip

    return export_run_zip(Run(trained_run.run_dir), tmp_path_factory.mktemp("export") / "run.zip")


@pytest.fixture
def real_data_path() -> Path:
    if not REAL_DATA.is_file():
        pytest.skip(f"{REAL_DATA} is not present")
    return REAL_DATA


@pytest.fixture
def fake_spaces(tmp_path, monkeypatch):
    """A stand-in for the ``spaces`` package of a ZeroGPU Space: its ``GPU`` decorator records the duration each
    call asked for (in ``spaces.calls``) and runs the function here."""
    import sys

    pkg = tmp_path / "fakespaces" / "spaces"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "calls = []\n"
        "def GPU(duration=60):\n"
        "    def deco(fn):\n"
        "        def run(*a, **k):\n"
        "            calls.append(duration(*a, **k) if callable(duration) else duration)\n"
        "            return fn(*a, **k)\n"
        "        run.zero_gpu = True\n"
        "        return run\n"
        "    return deco\n")
    monkeypatch.syspath_prepend(str(tmp_path / "fakespaces"))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    import spaces

    yield spaces
    sys.modules.pop("spaces", None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandInHub(BaseHTTPRequestHandler):
    """Answers like the Hub to a caller without the right token: 401 for reads, 403 for writes; records all."""

    seen: list[tuple[str, str, str]] = []
    bodies: list[bytes] = []

    def _answer(self, status: int) -> None:
        length = int(self.headers.get("content-length") or 0)
        StandInHub.bodies.append(self.rfile.read(length) if length else b"")
        StandInHub.seen.append((self.command, self.path, self.headers.get("authorization") or ""))
        body = json.dumps({"error": "Repository Not Found"}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-error-code", "RepoNotFound")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer(401)

    def do_HEAD(self):
        self._answer(401)

    def do_POST(self):
        self._answer(403)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hub():
    """A ``StandInHub`` on a loopback port; its URL (``Settings.hub_endpoint``)."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), StandInHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def launch(demo, guarded: bool = True, **kwargs) -> str:
    """Launch ``demo`` on a free local port without blocking; returns its URL.  ``guarded``: with the options
    ``python app.py`` launches with (the request guard, the upload cap); ``auth``/``mcp_server`` pass through."""
    from symptomgen.settings import Settings
    from symptomgen.ui.page import guarded_launch

    port = free_port()
    options = guarded_launch(Settings.from_env(), kwargs.get("auth")) if guarded else {}
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **options, **kwargs)
    return f"http://127.0.0.1:{port}/"
