"""The deployed app under bad input, faults and load (issue 6), driven like an attacker would.

The app runs as ``python app.py`` in a subprocess (the real launch path, with its upload
cap), under an address-space limit so that an absurd model fails with MemoryError
instead of taking the machine down.  Each adversarial case is one line in a table.
"""

from __future__ import annotations

import html
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import free_port
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(source="sample", upload=None, model="scratch", epochs=2, batch_size=16, learning_rate=3e-3,
            max_length=64, scratch_layers=2, scratch_width=64, scratch_vocab=800)
LAUNCH = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30)); "
          "sys.argv = ['app.py'] + sys.argv[1:]; runpy.run_path('app.py', run_name='__main__')")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    port = free_port()
    log = open(tmp_path_factory.mktemp("log") / "app.log", "w+")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SYMPTOMGEN_RUNS_DIR": str(runs), "SYMPTOMGEN_MAX_FILE_MB": "1",
           "HF_TOKEN": "hf_SECRET_never_shown", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    if proc.poll() is not None:
        log.seek(0)
        pytest.fail(f"app exited: {log.read()[-2000:]}")
    yield url, runs, proc, log
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


@pytest.fixture(scope="module")
def run_id(client):
    job = client.submit(**TINY, api_name="/train")
    job.result(timeout=300)
    return job.outputs()[-1][5]


def _alive(client) -> None:
    table, _ = client.predict(api_name="/list_runs")
    assert isinstance(table, dict)


def _error(client, api_name, **kwargs) -> str:
    with pytest.raises(AppError) as info:
        client.predict(**kwargs, api_name=api_name)
    message = str(info.value)
    assert "Traceback" not in message and 'File "' not in message
    _alive(client)  # the server stays up after every bad request
    return message


# ------------------------------------------------------------------ training settings
TRAIN_CASES = [
    ("zero epochs", dict(epochs=0), r"(?i)epochs"),
    ("negative batch", dict(batch_size=-4), r"(?i)batch size"),
    ("huge epochs", dict(epochs=10**9), r"(?i)epochs"),
    ("huge learning rate", dict(learning_rate=1e9), r"(?i)learning rate"),
    ("negative learning rate", dict(learning_rate=-1.0), r"(?i)learning rate"),
    ("huge max length", dict(max_length=10**7), r"(?i)max length"),
    ("path as model", dict(model="../../etc"), r"(?i)model"),
    ("validation fraction 0", dict(val_fraction=0), r"(?i)validation"),
    ("validation fraction 1", dict(val_fraction=1), r"(?i)validation"),
]


@pytest.mark.parametrize("label, changes, message", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_settings_through_the_api(client, label, changes, message):
    import re

    assert re.search(message, _error(client, "/train", **{**TINY, **changes}))


def test_unreachable_hub_model_falls_back_with_a_visible_notice(client):
    job = client.submit(**dict(TINY, model="no-such-org/no-such-model", epochs=1), api_name="/train")
    job.result(timeout=300)
    shown = html.unescape(" ".join(str(part) for update in job.outputs() for part in update))
    assert "'scratch' model instead of 'no-such-org/no-such-model'" in shown


# ------------------------------------------------------------------ generation
def gen(run_id, **changes):
    return dict(dict(model=run_id, name="Kidney Failure", top_k=8, top_p=0.95, temperature=0.5,
                     repetition_penalty=1.2, max_new_tokens=8, num_sequences=1, seed=0, compare=False), **changes)


GEN_CASES = [
    ("empty name", dict(name=""), r"(?i)disease name"),
    ("whitespace name", dict(name=" \t\n "), r"(?i)disease name"),
    ("100k-character name", dict(name="x" * 100_000), r"(?i)limit"),
    ("top_k too big", dict(top_k=10_000), r"top_k"),
    ("top_p zero", dict(top_p=0), r"top_p"),
    ("temperature too high", dict(temperature=50), r"temperature"),
    ("repetition penalty below 1", dict(repetition_penalty=0.5), r"repetition_penalty"),
    ("max_new_tokens huge", dict(max_new_tokens=10**6), r"max_new_tokens"),
    ("sequences too many", dict(num_sequences=50), r"(?i)sequences"),
    ("deleted run", dict(model="20200101-000000-scratch"), r"(?i)not found|deleted|not available"),
    ("path escape", dict(model="../../../etc/passwd"), r"neither a finished run"),
]


@pytest.mark.parametrize("label, changes, message", GEN_CASES, ids=[c[0] for c in GEN_CASES])
def test_bad_generation_requests_through_the_api(client, run_id, label, changes, message):
    import re

    assert re.search(message, _error(client, "/generate", **gen(run_id, **changes)))


def test_control_characters_and_emoji_are_answered(client, run_id):
    text, _, _ = client.predict(**gen(run_id, name="Kidney\x07 Failure 🤒\u202e"), api_name="/generate")
    assert isinstance(text, str)


# ------------------------------------------------------------------ uploads
UPLOADS = [
    ("binary renamed .csv", bytes(range(256)) * 64, r"binary"),
    ("empty file", b"", r"empty"),
    ("header only", b"Name,Symptoms\n", r"no rows"),
    ("renamed columns", b"label,text\nFlu,fever\nCold,cough\n", r"found columns: label, text"),
    ("over the upload cap", b"Name,Symptoms\n" + b"Flu,fever\n" * 150_000, r"(?i)large|size|limit|MB"),
]


@pytest.mark.parametrize("label, content, message", UPLOADS, ids=[u[0] for u in UPLOADS])
def test_bad_uploads(client, tmp_path, label, content, message):
    import re

    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    try:
        client.predict(source="upload", upload=handle_file(str(path)), api_name="/preview_data")
    except Exception as exc:  # noqa: BLE001 - AppError from our handler, or the upload refused by the server
        assert re.search(message, str(exc)), str(exc)
    else:
        pytest.fail(f"{label} was accepted")
    _alive(client)


def test_formula_like_cells_are_echoed_as_plain_text(client, tmp_path):
    path = tmp_path / "formula.csv"
    path.write_bytes(b"Name,Symptoms\n=cmd|' /C calc'!A0,=1+1\nCold,<script>alert(1)</script>\nFlu,fever\n")
    result = client.predict(source="upload", upload=handle_file(str(path)), api_name="/preview_data")
    flat = repr(result)
    assert "=cmd|' /C calc'!A0" in flat and "=1+1" in flat


# ------------------------------------------------------------------ files and secrets
@pytest.mark.parametrize("target", ["/etc/passwd", "../../etc/passwd", "app.py"])
def test_files_outside_the_app_cannot_be_downloaded(server, target):
    for prefix in ("gradio_api/file=", "file="):
        try:
            with urllib.request.urlopen(server[0] + prefix + target, timeout=10) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            assert exc.code in (400, 403, 404)
        else:
            assert b"root:" not in body and b"build_demo" not in body


def test_the_secret_token_never_appears(server, client, run_id):
    runs, log = server[1], server[3]
    log.flush()
    log.seek(0)
    assert "hf_SECRET" not in log.read()
    assert not [p for p in Path(runs).rglob("*") if p.is_file() and b"hf_SECRET" in p.read_bytes()]


# ------------------------------------------------------------------ faults and load
def test_out_of_memory_is_reported_and_the_next_training_works(client):
    huge = dict(TINY, scratch_layers=24, scratch_width=2048, scratch_vocab=60000)
    # Refused before Start by the memory estimate (a run that cannot fit never starts); where the estimate allows
    # it, the child's own out-of-memory sentence reports it instead (test_isolation).
    try:
        said = client.predict(**huge, api_name="/train")[3]
    except AppError as refused:
        said = str(refused)
        assert "needs about" in said and "free" in said
    assert "memory" in said.lower() and "Traceback" not in said
    _alive(client)
    job = client.submit(**TINY, api_name="/train")
    job.result(timeout=300)
    assert "finished" in job.outputs()[-1][3]


def test_load_while_training(client, run_id, capsys):
    """8 clients generate at once while a job trains; two Starts at once give exactly one job."""
    job = client.submit(**dict(TINY, epochs=100), api_name="/train")  # long enough to outlast the requests
    time.sleep(1.0)

    def one(i):
        t0 = time.perf_counter()
        c = Client(client.src, verbose=False)
        text, _, _ = c.predict(**gen(run_id, seed=i, max_new_tokens=16), api_name="/generate")
        return time.perf_counter() - t0, text

    def start(_):
        try:
            Client(client.src, verbose=False).predict(**TINY, api_name="/train")
            return "started"
        except AppError as exc:
            return str(exc)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
        starts = list(pool.map(start, range(2)))
    latencies = sorted(r[0] for r in results)
    assert len(results) == 8 and all(isinstance(r[1], str) for r in results)
    assert all("already" in s.lower() for s in starts), starts  # a job is running: both refused, none started
    p50, p95 = statistics.median(latencies), latencies[min(7, int(0.95 * 8))]
    with capsys.disabled():
        print(f"\n[load] 8 concurrent generations during training: p50 {p50:.2f}s, p95 {p95:.2f}s")
    assert latencies[-1] < 120  # every request answered within a bounded time
    client.predict(api_name="/stop")
    job.result(timeout=300)
    assert "stopped" in job.outputs()[-1][3].lower()
