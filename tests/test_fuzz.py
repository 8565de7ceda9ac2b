"""A small seeded fuzz of every endpoint and upload format, through ``gradio_client`` against one launched server
(issue 23 item 7).

``CALLS`` calls (seed ``SEED``): each takes an endpoint's ordinary arguments and replaces one or two with a hostile
value (wrong types, NaN, huge numbers, long strings, lists, deep nesting, path traversal, control characters) or,
for an upload, a hostile file (CSV/JSON/Parquet/zip: wide headers, NUL bytes, deep nesting, nested values, unsafe
member names, a zip inside a zip, text that is no file).  For every call: the server stays up, the answer comes in
under ``MAX_SECONDS``, a refusal is one sentence naming no server path, and the server (in this process) grows by
less than ``MAX_GROWTH_MB``.
"""

from __future__ import annotations

import io
import json
import random
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import psutil
import pytest
from conftest import launch

CALLS, SEED = 200, 23
MAX_SECONDS, MAX_GROWTH_MB = 10.0, 300

HOSTILE_VALUES = [None, "", "A" * 50_000, "../../../../etc/passwd", "/etc/passwd", "C:\\Windows\\win.ini",
                  "nul\x00byte", "\u202e\u200bevil\x1b[31m\n", "NaN", -1, 0, 10 ** 18, -10 ** 18, 1e308,
                  float("nan"), float("inf"), 3.5, True, ["a"] * 1000, [1, [2, [3]]], {"path": "/etc/passwd"},
                  json.loads("[" * 200 + "]" * 200), {"a": "b" * 1000}]
ENDPOINTS = {  # each endpoint's ordinary arguments (cheap ones: a tiny scratch run, one short generation)
    "/read_columns": dict(upload=None, prompt_column="Name", target_column="Symptoms", extra_target_column="(none)"),
    "/preview_data": dict(source="upload", hub_dataset="", hub_split="train", upload=None, prompt_column="Name",
                          target_column="Symptoms", extra_target_column="(none)", val_fraction=0.2, split_seed=0,
                          split_by="auto"),
    "/generate": dict(model="scratch", name="Asthma", top_k=8, top_p=0.95, temperature=0.5, repetition_penalty=1.2,
                      max_new_tokens=4, num_sequences=1, seed=0, compare=False, no_repeat_ngram_size=0),
    "/explain": dict(model="scratch", name="Asthma", top_k=8, top_p=0.95, temperature=0.5, repetition_penalty=1.2,
                     max_new_tokens=4, num_sequences=1, seed=0, shown="", score="surprise", no_repeat_ngram_size=0),
    "/arena": dict(models=["scratch", "scratch"], name="Asthma", top_k=8, top_p=0.95, temperature=0.5,
                   repetition_penalty=1.2, max_new_tokens=4, num_sequences=1, seed=0, no_repeat_ngram_size=0),
    "/list_runs": dict(current=None),
    "/export_run": dict(run_id="20000101-000000-none"),
    "/import_run": dict(upload=None, hub_id="", typed_token=""),
    "/push_run": dict(run_id="20000101-000000-none", repo_id="someone/repo", private=True, typed_token=""),
    "/delete_run": dict(run_id="20000101-000000-none"),
    "/model_card": dict(run_id="20000101-000000-none"),
    "/evaluate": dict(run_id="20000101-000000-none", rows=1, sampling="none"),
    "/compare_runs": dict(runs=[]),
    "/train": dict(source="sample", hub_dataset="", hub_split="train", upload=None, prompt_column="Name",
                   target_column="Symptoms", extra_target_column="(none)", val_fraction=0.2, split_seed=0,
                   split_by="auto", model="scratch", epochs=1, batch_size=16, learning_rate=3e-3, max_length=32,
                   loss_on="full", scheduler="constant", warmup_ratio=0.0, weight_decay=0.0, grad_accum=1,
                   patience=0, group_by_length=False, seed=0, scratch_layers=1, scratch_width=32, scratch_vocab=300,
                   lora_rank=0, lora_alpha=16, lora_dropout=0.0, lora_targets="", report_to="none", keep="best",
                   max_minutes=0),
    "/resume": dict(run_id="20000101-000000-none"),
    "/stop": {},
    "/attach": {},
    "/generate_symptoms": dict(disease="Asthma", run="", temperature=0.5, max_new_tokens=4, seed=0),
    "/list_finished_runs": {},
}
FILE_PARAMS = {"upload"}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def hostile_files(folder: Path) -> list[Path]:
    """One file per hostile shape of every upload and import format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files: dict[str, bytes] = {
        "wide.csv": (",".join(f"c{i}" for i in range(20_000)) + "\n" + ",".join("x" * 20_000) + "\n").encode(),
        "nul.csv": b"Name,Symptoms\nAs\x00thma,co\x00ugh\n" * 50,
        "binary.csv": bytes(range(256)) * 200,
        "long-cell.csv": b"Name,Symptoms\nAsthma," + b"y" * 2_000_000 + b"\n",
        "controls.csv": "Name,Symptoms\n\u202eamhtsA,\x1b[31mcough\u200b\n".encode(),
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "types.json": json.dumps([{"Name": 5, "Symptoms": [1, 2]}, {"Name": None}]).encode(),
        "empty.json": b"",
        "not-a.zip": b"PK\x03\x04 this is no zip",
        "traversal.zip": _zip({"../../evil.json": b"{}", "run.json": b"{}"}),
        "control-names.zip": _zip({"symptomgen/run.json": b"{}", "best/a\nb.json": b"{}", "best/\x1b.json": b"{}",
                                   "best/\u202egnp.json": b"{}"}),
        "many.zip": _zip({f"f{i}.json": b"{}" for i in range(5_000)}),
        "nested.zip": _zip({"inner.zip": _zip({"run.json": b"{}"})}),
        "record.zip": _zip({"symptomgen/run.json": json.dumps({"run_id": "x", "junk": [[]] * 10_000}).encode()}),
    }
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    pq.write_table(pa.table({"Name": [f"n{i}" for i in range(100_000)], "Symptoms": ["s"] * 100_000}),
                   folder / "rows.parquet")
    pq.write_table(pa.table({"Name": [[{"a": [1, 2]}]] * 50, "Symptoms": [{"x": {"y": [1]}}] * 50}),
                   folder / "nested.parquet")
    return paths + [folder / "rows.parquet", folder / "nested.parquet"]


def _answer_text(exc: BaseException) -> str:
    return str(exc).strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import torch  # noqa: F401  (loaded before measuring, as in a server that has served one generation)
    import transformers  # noqa: F401
    from gradio_client import Client

    from symptomgen.store import RunStore
    from symptomgen.ui.page import build_page

    root = tmp_path_factory.mktemp("fuzz-runs")
    demo, ctx = build_page(RunStore(root))
    url = launch(demo)
    yield url, Client(url, verbose=False), root, ctx
    ctx.jobs.stop()
    ctx.jobs.join(60)
    demo.close()


def test_hostile_calls_are_answered_quickly_in_one_sentence_without_paths(server, tmp_path):
    from gradio_client import handle_file

    url, client, root, ctx = server
    files = hostile_files(tmp_path)
    rng = random.Random(SEED)
    proc = psutil.Process()
    client.predict(**ENDPOINTS["/generate"], api_name="/generate")  # warm: the scratch model loaded once
    baseline = proc.memory_info().rss
    forbidden = {str(root), str(root.resolve()), tempfile.gettempdir() + "/"}
    names = sorted(ENDPOINTS)
    problems: list[str] = []
    started = time.perf_counter()
    for i in range(CALLS):
        api = names[i % len(names)] if i < len(names) else rng.choice(names)
        args = dict(ENDPOINTS[api])
        changed = {}
        for param in rng.sample(sorted(args), min(len(args), rng.choice((1, 1, 2)))) if args else []:
            if param in FILE_PARAMS and rng.random() < 0.8:
                args[param] = handle_file(str(rng.choice(files)))
            else:
                args[param] = rng.choice(HOSTILE_VALUES)
            changed[param] = args[param]
        if api in ("/read_columns", "/preview_data", "/import_run") and args.get("upload") is None:
            args["upload"] = handle_file(str(rng.choice(files)))
            changed["upload"] = args["upload"]
        what = f"call {i} {api} " + ", ".join(
            f"{k}={Path(v['path']).name if isinstance(v, dict) and 'path' in v else repr(v)[:40]}"
            for k, v in changed.items())
        t0, seconds = time.perf_counter(), 0.0
        try:
            if api in ("/train", "/resume"):  # a stream: its first answer (started, or refused) is the answer
                job = client.submit(**args, api_name=api)
                while not job.done() and not job.outputs() and time.perf_counter() - t0 < 2 * MAX_SECONDS:
                    time.sleep(0.05)
                seconds = time.perf_counter() - t0
                if not job.done():
                    client.predict(api_name="/stop")  # a hostile value may leave a valid tiny job: end it now
                    ctx.jobs.join(60)
                result = job.result(timeout=120)
            else:
                result = client.predict(**args, api_name=api)
                seconds = time.perf_counter() - t0
            text = "" if result is None else str(result)
            error = None
        except Exception as exc:  # noqa: BLE001 - every refusal is checked below
            seconds = seconds or time.perf_counter() - t0
            error = _answer_text(exc)
            text = error
        growth = (proc.memory_info().rss - baseline) / 2 ** 20
        if seconds > MAX_SECONDS:
            problems.append(f"{what}: {seconds:.1f} s")
        if growth > MAX_GROWTH_MB:
            problems.append(f"{what}: server grew {growth:.0f} MB")
        if any(p in text for p in forbidden):
            problems.append(f"{what}: a server path in {text[:200]!r}")
        if error is not None and (not error or "\n" in error or len(error) > 600
                                  or "verbose error reporting" in error):
            problems.append(f"{what}: not one sentence: {error[:300]!r}")
        if i % 20 == 0:
            assert urllib.request.urlopen(url, timeout=10).status == 200, f"server down after {what}"
    assert urllib.request.urlopen(url, timeout=10).status == 200
    assert not problems, f"{len(problems)} of {CALLS} calls misbehaved:\n" + "\n".join(problems[:25])
    assert time.perf_counter() - started < 240
