"""Issue 23 items 4-6: bounded arguments, no visitor locking out the others, and the wrong answers and races."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
import urllib.request
from types import SimpleNamespace

import pytest
from conftest import launch

from symptomgen import outcomes
from symptomgen.config import GenerationSettings, check_generation_work
from symptomgen.errors import InvalidInput, RunNotReady, ShareError
from symptomgen.events import EpochResult
from symptomgen.records import RunStatus
from symptomgen.runs import Run, atomic_write_json
from symptomgen.store import RunStore
from symptomgen.ui.calls import VisitorLimit, bounded_names


def _copy_run(trained_run, tmp_path) -> Run:
    import shutil

    dest = tmp_path / "runs" / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, dest)
    return Run(dest)


# -- item 4: bounded arguments -----------------------------------------------------------------------------------
def test_run_lists_are_deduplicated_and_capped_cheaply():
    t0 = time.perf_counter()
    assert bounded_names(["a"] * 20_000, 8, "runs to compare") == ["a"]
    assert time.perf_counter() - t0 < 0.5
    assert bounded_names(["b", "a", "b"], 8, "runs") == ["b", "a"]
    with pytest.raises(InvalidInput, match="At most 8 runs to compare"):
        bounded_names([str(i) for i in range(20_000)], 8, "runs to compare")
    with pytest.raises(InvalidInput, match="must be names"):
        bounded_names([1, 2], 8, "runs")


def test_a_busy_slot_refuses_start_before_any_config_or_data(tmp_path, monkeypatch):
    from symptomgen import jobs as J
    from symptomgen.errors import TrainingBusyError
    from symptomgen.ui.context import PageContext
    from symptomgen.ui.train_tab import PARAMS, TrainActions

    ctx = PageContext.create(RunStore(tmp_path))
    ctx.jobs._reserved = True  # another Start is preparing its data
    built = []
    monkeypatch.setattr("symptomgen.ui.train_tab.data_config", lambda **k: built.append(k))
    with pytest.raises(Exception, match="already starting"):
        next(TrainActions(ctx).train(*[None] * len(PARAMS)))
    assert built == []  # refused before the data's config was even built
    assert issubclass(TrainingBusyError, Exception) and J.JobManager.refuse_if_busy


def test_heavy_generations_are_bounded():
    check_generation_work(GenerationSettings(), sides=2)  # the defaults: 48 tokens, one sequence, side by side
    with pytest.raises(InvalidInput, match="at most 512 tokens"):
        check_generation_work(GenerationSettings(max_new_tokens=256, num_return_sequences=5), sides=2)


# -- item 5: no visitor locks out the others ---------------------------------------------------------------------
def _event(group, session, host):
    return SimpleNamespace(concurrency_id=group, session_hash=session,
                           request=SimpleNamespace(client=SimpleNamespace(host=host)))


def test_a_visitor_with_two_generations_in_flight_is_refused_and_others_are_not():
    limit = VisitorLimit({"generate"}, per_session=2, per_address=6)
    assert VisitorLimit({"generate"}).per_address >= 8  # eight test clients on 127.0.0.1 are eight visitors
    queue = SimpleNamespace(event_ids_to_events={i: _event("generate", "flood", "10.0.0.1") for i in range(2)})
    queue.event_ids_to_events["x"] = _event("attach", "flood", "10.0.0.1")  # other groups do not count
    why = limit.refusal(queue, "flood", "10.0.0.1")
    assert why and why.count(". ") == 0 and why.endswith(".") and "wait for one to finish" in why
    assert limit.refusal(queue, "another", "10.0.0.2") is None
    queue.event_ids_to_events.update({i: _event("generate", f"s{i}", "10.0.0.3") for i in range(10, 16)})
    assert "Your address" in limit.refusal(queue, "new-session", "10.0.0.3")


def test_stop_attach_and_the_lists_never_wait_behind_generations(tmp_path):
    from symptomgen.ui.page import build_page

    demo, _ = build_page(RunStore(tmp_path))
    by_name = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    for name in ("stop", "list_runs", "list_finished_runs", "compare_runs", "model_card"):
        assert by_name[name].queue is False, name
    assert by_name["attach"].concurrency_id not in {"generate", "evaluate", "share"}
    assert by_name["attach"].concurrency_limit is None
    assert by_name["generate_symptoms"].concurrency_id == "generate"  # counted with /generate per visitor


# -- item 6: wrong answers and races ----------------------------------------------------------------------------
def test_a_run_in_use_is_not_deleted(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path)
    store = RunStore(run.path.parent)
    with store.using(run.run_id, "generating"):
        with pytest.raises(RunNotReady, match="in use \\(generating\\)"):
            store.delete(run.run_id)
    assert "Deleted" in store.delete(run.run_id)


def test_a_run_is_reserved_from_the_moment_resume_is_accepted(trained_run, tmp_path, monkeypatch):
    from symptomgen import jobs as J

    run = _copy_run(trained_run, tmp_path)
    store = RunStore(run.path.parent)
    manager = J.JobManager(store)
    monkeypatch.setattr(J, "preflight_resume", lambda run_id, store, plan=None: SimpleNamespace(run_id=run_id))
    launched = []
    monkeypatch.setattr(manager, "_launch", lambda ready, *history, held_run=None: launched.append(held_run))
    manager.resume(run.run_id)  # accepted; the child has not started (nor marked the run "running")
    assert launched == [run.run_id]
    with pytest.raises(RunNotReady, match="still training"):
        store.delete(run.run_id)
    store.release(run.run_id, "training")  # what the job's end does
    # A refused resume leaves nothing reserved.
    monkeypatch.setattr(J, "preflight_resume", lambda *a, **k: (_ for _ in ()).throw(InvalidInput("no")))
    manager._reserved = False
    with pytest.raises(InvalidInput):
        manager.resume(run.run_id)
    assert store.in_use(run.run_id) is None


def test_a_failed_model_save_leaves_no_staging_folder(tmp_path):
    run = Run(tmp_path)

    class FullDisk:
        def save_pretrained(self, folder, **_):
            os.makedirs(folder, exist_ok=True)
            (folder / "model.safetensors").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        run.save_model(FullDisk(), FullDisk(), "base")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_runs_table_and_the_card_describe_the_served_model_after_a_kill(trained_run, tmp_path):
    from symptomgen.card import write_model_card
    from symptomgen.catalog import runs_frame

    run = _copy_run(trained_run, tmp_path)
    served = run.best_info().epoch
    rec = json.loads(run.config_path.read_text())
    # Killed after best/ was swapped to the newer epoch, before the record said so; and the server is gone.
    rec.update(best_epoch=served - 1, kept_epoch=served - 1, status="running", pid=2 ** 22 + 12345)
    atomic_write_json(run.config_path, rec)
    frame = runs_frame(RunStore(run.path.parent))
    assert int(frame.loc[0, "best epoch"] if "best epoch" in frame else frame.iloc[0, 4]) == served
    card = write_model_card(run.path)
    assert "Status: running" not in card and "Status: interrupted" in card
    assert f"Best epoch: {served}" in card


@pytest.mark.parametrize("name", ["best/a\nb.json", "best/\x1b[31mred.json", "best/\u202egnp.json",
                                  "best/zero\u200bwidth.json"])
def test_member_names_with_control_or_bidi_characters_are_refused(name):
    from symptomgen.share import _check_name

    with pytest.raises(ShareError, match="control or direction-changing character"):
        _check_name(name, "run.zip")


def test_a_server_going_away_is_recorded_as_interrupted_not_stopped_on_request(tiny_cfg):
    end = SimpleNamespace(error=None, stopped=True, out_of_time=False, out_of_room=False, early_stopped=False,
                          best_epoch=1, epochs_done=1, kept_epoch=1)
    assert outcomes.of_training(end, tiny_cfg, False, 10, None).status is RunStatus.STOPPED
    outcomes.mark_server_gone()
    try:
        got = outcomes.of_training(end, tiny_cfg, False, 10, None)
        assert got.status is RunStatus.INTERRUPTED and "on request" not in got.message
    finally:
        outcomes._server_gone.clear()


def test_a_server_sigterm_reaches_the_child_as_interrupted(tmp_path, tiny_cfg, sample_data):
    """The server's shutdown (SIGTERM to the training process) records "interrupted", never "stopped"."""
    from symptomgen.jobs import JobManager

    manager = JobManager(RunStore(tmp_path))
    snap = manager.start(sample_data, tiny_cfg.with_(epochs=100, save_checkpoints=False))
    deadline = time.time() + 120
    while time.time() < deadline:
        s = manager.snapshot(snap.job_id)
        if s.epochs:
            break
        time.sleep(0.2)
    manager.shutdown(timeout=60)
    s = manager.snapshot(snap.job_id)
    assert s.summary is not None and s.summary.status == "interrupted", (s.error, s.summary)
    rec = json.loads((tmp_path / s.run_id / "config.json").read_text())
    assert rec["status"] == "interrupted" and "on request" not in rec["message"]


def test_an_import_on_a_full_disk_does_not_say_resume():
    from symptomgen.share import _import_failure

    msg = str(_import_failure("run.zip", OSError(errno.ENOSPC, "No space left on device")))
    assert "disk is full" in msg and "resume" not in msg and "import it again" in msg


# -- through the API ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from gradio_client import Client

    from symptomgen.ui.page import build_page

    root = tmp_path_factory.mktemp("api-runs")
    demo, ctx = build_page(RunStore(root))
    url = launch(demo)
    yield SimpleNamespace(url=url, client=Client(url, verbose=False), ctx=ctx, root=root)
    demo.close()


def _refusal(client, *args, **kwargs) -> str:
    with pytest.raises(Exception) as info:
        client.predict(*args, **kwargs)
    text = str(info.value)
    assert text.strip(), "a refusal with no text"
    assert "verbose error reporting" not in text
    return text


def test_resume_works_through_the_api(served, sample_data, tiny_cfg):
    from symptomgen.trainer import run_training

    stop = threading.Event()
    first = run_training(sample_data, tiny_cfg.with_(epochs=3, save_checkpoints=True), served.root,
                         on_event=lambda ev: isinstance(ev, EpochResult) and stop.set(), stop=stop)
    assert first.status == "stopped"
    missing = _refusal(served.client, run_id="20000101-000000-nothing", api_name="/resume")
    assert "not in the list of choices" not in missing and "was not found" in missing
    outputs = served.client.predict(run_id=first.run_dir.name, api_name="/resume")
    summary = outputs[3]
    assert first.run_dir.name in summary and "finished" in summary, summary


def test_refusals_through_the_api_always_have_one_sentence(served):
    c = served.client
    text = _refusal(c, "owner/repo", api_name="/import_run")  # a Hub id given where the zip goes
    assert "must be a file uploaded" in text
    text = _refusal(c, disease="Asthma", run=["a", "b"], api_name="/generate_symptoms")
    assert "must be text" in text and "Internal error" not in text
    t0 = time.perf_counter()
    text = _refusal(c, runs=["20000101-000000-nothing"] * 20_000, api_name="/compare_runs")
    assert "was not found" in text and time.perf_counter() - t0 < 5
    # Too few values, sent as raw HTTP (gradio_client checks its own calls).
    req = urllib.request.Request(f"{served.url}gradio_api/call/delete_run", data=json.dumps({"data": []}).encode(),
                                 headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=10).read())["event_id"]
    body = urllib.request.urlopen(f"{served.url}gradio_api/call/delete_run/{event}", timeout=10).read().decode()
    assert "takes 1 value(s); this call sent 0" in body, body
