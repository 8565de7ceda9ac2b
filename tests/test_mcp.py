"""The MCP server: an assistant runs the whole loop (start → status → generate → stop, list, evaluate, export)
through the ``mcp`` client over streamable HTTP, against the app launched as ``python app.py --mcp`` launches it.

Tiny scratch models on CPU, offline.  Gradio sends a tool's dict or list result as its Python text
(``str(value)``), so the tests read it back with ``ast.literal_eval``.
"""

from __future__ import annotations

import ast
import asyncio
import io
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import TINY, launch

from symptomgen.config import DataConfig
from symptomgen.trainer import run_training
from symptomgen.ui.mcp_tools import TOOLS

SAMPLE_CSV = Path(__file__).resolve().parents[1] / "symptomgen" / "sample_data" / "diseases_sample.csv"
# The conftest TINY model, as start_training's knobs spell it (its vocabulary stays the default).
TINY_KNOBS = {"model": "scratch", "batch_size": TINY.batch_size, "learning_rate": TINY.learning_rate,
              "max_length": TINY.max_length, "scratch_layers": TINY.scratch_layers,
              "scratch_width": TINY.scratch_width}


@pytest.fixture(scope="module")
def mcp_app(tmp_path_factory):
    """The app with its MCP server on a loopback port, and one finished tiny run to generate from."""

    from symptomgen.ui import build_demo
    from symptomgen.ui.mcp_tools import expose_only_tools

    runs_dir = tmp_path_factory.mktemp("mcp-runs")
    first = run_training(DataConfig(source="sample"), TINY, runs_dir)
    demo = build_demo(runs_dir=runs_dir)
    url = launch(demo, mcp_server=True)
    tools = expose_only_tools(demo)
    yield url + "gradio_api/mcp/", tools, first.run_dir.name
    demo.close()


def _session(url: str, script):
    """Run ``await script(call)`` in one ``mcp`` client session; ``call(name, **args)`` returns
    ``(is_error, text)``, and ``call.tools`` holds the listed tools."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def go():
        async with streamablehttp_client(url, timeout=120) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()

                async def call(name, **args):
                    result = await session.call_tool(name, args)
                    return result.isError, "\n".join(c.text for c in result.content)

                call.tools = {t.name: t for t in (await session.list_tools()).tools}
                return await script(call)

    return asyncio.run(go())


def _value(answer):
    is_error, text = answer
    assert not is_error, text
    return ast.literal_eval(text)


def test_mcp_serves_exactly_the_tools_each_described_for_an_assistant(mcp_app):
    url, served, _ = mcp_app
    assert served == sorted(TOOLS)

    async def script(call):
        return call.tools, await call("generate_symptoms", disease="   ")

    tools, bad = _session(url, script)
    assert set(tools) == set(TOOLS)  # the page's endpoints are not tools
    for tool in tools.values():  # a summary, then every parameter described from the docstring's Args
        assert len(tool.description) > 80, tool.name
        for name, schema in tool.inputSchema["properties"].items():
            assert schema.get("description"), (tool.name, name)
    gen = tools["generate_symptoms"]
    assert gen.description.startswith("Generate a comma-separated list of symptoms")
    assert "not medical advice" in gen.description
    assert {"disease", "run", "temperature", "max_new_tokens", "seed"} == set(gen.inputSchema["properties"])
    assert "list_finished_runs" in gen.inputSchema["properties"]["run"]["description"]
    start = tools["start_training"]
    assert "one run at a time" in start.description and "get_training_status" in start.description
    assert {"data", "csv_text", "model", "epochs"} <= set(start.inputSchema["properties"])
    assert bad == (True, "Please enter a disease name.")


def test_an_assistant_starts_follows_generates_and_stops_a_run(mcp_app):
    url, _, finished = mcp_app
    csv_text = SAMPLE_CSV.read_text(encoding="utf-8")

    async def script(call):
        log = {"refused": [await call("start_training", csv_text="x" * (257 * 1024)),
                           await call("start_training", data="/etc/passwd"),
                           await call("start_training", data="sample", epochs=0),
                           await call("start_training", data="sample", epochs="many")]}
        log["idle"] = _value(await call("get_training_status"))
        log["start"] = _value(await call("start_training", csv_text=csv_text, epochs=100, **TINY_KNOBS))
        log["busy"] = await call("start_training", data="sample", **TINY_KNOBS)
        status = _value(await call("get_training_status"))
        while not status["epochs"] and status["state"] == "running":
            status = _value(await call("get_training_status", wait_seconds=30))
        log["status"] = status
        log["generated"] = await call("generate_symptoms", disease="Asthma", temperature=0, max_new_tokens=12)
        log["too_soon"] = await call("generate_symptoms", disease="Asthma", run=status["run"])
        log["stop"] = await call("stop_training")
        while status["state"] == "running":
            status = _value(await call("get_training_status", wait_seconds=30))
        log["ended"] = status
        log["own"] = await call("generate_symptoms", disease="Asthma", run=status["run"], temperature=0,
                                max_new_tokens=12)
        log["runs"] = _value(await call("list_training_runs"))
        log["stop_again"] = await call("stop_training")
        return log

    log = _session(url, script)
    too_big, a_path, zero_epochs, words = log["refused"]
    assert too_big == (True, too_big[1]) and "at most 256 KB" in too_big[1] and "\n" not in too_big[1]
    assert a_path[0] and "is not a Hugging Face dataset id" in a_path[1]
    assert zero_epochs[0] and "Epochs must be between 1 and 100" in zero_epochs[1]
    assert words[0] and "'many' is not of type 'integer'" in words[1]  # the schema, checked before the call
    assert log["idle"]["state"] == "idle"

    started = log["start"]
    assert started["state"] == "running" and started["settings"]["model"] == "scratch"
    assert started["settings"]["epochs"] == 100 and "assistant-data.csv" not in str(started["notices"])
    busy = log["busy"]
    assert busy[0] and "A training run is already" in busy[1] and "wait for it to finish or press Stop" in busy[1]

    status = log["status"]
    assert status["state"] == "running" and status["run"], status
    first = status["epochs"][0]
    assert first["epoch"] == 1 and first["val_loss"] > 0 and first["best_so_far"] is True

    generated = log["generated"]  # from the finished run, while the new one trains
    assert not generated[0] and generated[1].strip()
    assert log["too_soon"][0] and "is still training" in log["too_soon"][1]
    assert log["stop"] == (False, "Stopping after the current step; the best finished epoch is kept.")

    ended = log["ended"]
    assert ended["state"] == "done" and ended["outcome"]["status"] == "stopped", ended
    assert ended["outcome"]["best_epoch"] >= 1 and ended["outcome"]["epochs_done"] < 100
    assert "generate_symptoms" in ended["next"]
    assert not log["own"][0] and log["own"][1].strip()  # the stopped run's best epoch generates

    runs = {r["run"]: r for r in log["runs"]}
    assert runs[ended["run"]]["status"] == "stopped" and runs[ended["run"]]["has_model"]
    assert runs[finished]["status"] == "finished"
    assert log["stop_again"] == (False, "No training is running.")


def test_an_assistant_evaluates_and_exports_a_finished_run(mcp_app):
    url, _, run_id = mcp_app

    async def script(call):
        return (await call("evaluate_run", run=run_id, rows=3), await call("evaluate_run", run="no-such-run"),
                await call("evaluate_run", run=run_id, rows=0), await call("export_run_zip", run=run_id),
                await call("export_run_zip", run="../../etc"))

    scored, missing, zero, exported, hostile = _session(url, script)
    result = _value(scored)
    assert result["run"] == run_id and result["unseen"]["rows"] == 3 and result["taught"]["rows"] == 3
    assert {"precision", "recall", "f1", "val_loss"} <= set(result["unseen"]["fine_tuned"])
    assert "val_loss" in result["unseen"]["base"]  # a scratch run's own base/ folder
    assert len(result["examples"]) == 3 and result["examples"][0]["generated"] is not None
    assert missing[0] and "no-such-run" in missing[1] and "\n" not in missing[1]
    assert zero[0] and "Validation rows to evaluate must be between 1 and 500" in zero[1]

    assert not exported[0] and exported[1].startswith("http://127.0.0.1:"), exported
    with urllib.request.urlopen(exported[1], timeout=30) as answer:
        names = zipfile.ZipFile(io.BytesIO(answer.read())).namelist()
    assert f"{run_id}/model.safetensors" in names and f"{run_id}/README.md" in names
    assert hostile[0] and "\n" not in hostile[1]
