"""``RunStore``: the one owner of the runs folder — its names stay inside it, its lists are ordered, repair is
asked for (never a side effect of a question), and it travels to a training child."""

from __future__ import annotations

import os
import pickle
import socket

import pandas as pd
import pytest

from symptomgen import layout as L
from symptomgen.errors import RunNotFoundError
from symptomgen.records import RunRecord, RunStatus
from symptomgen.store import RunStore

FRAME = pd.DataFrame({"prompt": ["a"], "target": ["b"]})


def _run(store: RunStore, run_id: str, status: RunStatus = RunStatus.FINISHED, best: bool = True):
    run = store.create(run_id, RunRecord(), FRAME, FRAME)
    run.update(status=status, **({} if status is RunStatus.RUNNING else {"pid": None}))
    if best:
        run.best_dir.mkdir()
        (run.best_dir / L.MODEL_CONFIG).write_text("{}")
    return run


@pytest.mark.parametrize("name", ["../x", "..", "/etc", "/tmp/x", "a/../../b", "x\x00y", "", "   ", ".hidden"])
def test_get_refuses_names_that_are_not_runs_here(tmp_path, name):
    store = RunStore(tmp_path / "runs")
    _run(store, "20260101-000000-scratch")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / L.RECORD).write_text("{}")  # a run-shaped folder outside the store
    with pytest.raises(RunNotFoundError):
        store.get(name)


def test_get_finds_a_run_by_name_and_says_when_it_is_gone(tmp_path):
    store = RunStore(tmp_path)
    run = _run(store, "20260101-000000-scratch")
    assert store.get(" 20260101-000000-scratch ").path == run.path.resolve()
    store.delete(run.run_id)
    with pytest.raises(RunNotFoundError, match="was not found"):
        store.get(run.run_id)


def test_lists_are_newest_first_and_finished_leaves_out_running_and_modelless_runs(tmp_path):
    store = RunStore(tmp_path)
    _run(store, "20260101-000000-scratch")
    _run(store, "20260103-000000-scratch", status=RunStatus.RUNNING)  # this process: live
    _run(store, "20260102-000000-scratch", best=False)
    _run(store, "20260104-000000-scratch")
    (tmp_path / ".importing-0123456789ab").mkdir()  # work in progress is never a run
    assert [r.run_id for r in store.list()] == ["20260104-000000-scratch", "20260103-000000-scratch",
                                                "20260102-000000-scratch", "20260101-000000-scratch"]
    assert [r.run_id for r in store.finished()] == ["20260104-000000-scratch", "20260101-000000-scratch"]
    assert store.resumable() == []  # none has a checkpoint


def test_new_ids_and_import_names_never_take_a_used_name(tmp_path):
    store = RunStore(tmp_path)
    first = store.new_id("distilgpt2")
    _run(store, first)
    assert store.new_id("distilgpt2") != first
    assert store.free_id(first) == f"{first}-imported" and store.free_id("../evil") == "imported-run"


def test_repair_is_asked_for_and_has_best_never_renames(tmp_path):
    store = RunStore(tmp_path)
    run = _run(store, "20260101-000000-scratch")
    os.replace(run.best_dir, run.path / L.previous(L.BEST))  # a kill between save_model's two renames
    before = sorted(p.name for p in run.path.iterdir())
    assert not run.has_best() and not run.has_best()
    assert sorted(p.name for p in run.path.iterdir()) == before  # asking changed nothing
    assert store.finished() == []  # and listing does not repair either
    run.update(status=RunStatus.RUNNING, pid=os.getpid(), host=socket.gethostname())
    assert not store.repair(run)  # its trainer lives: between the renames, hands off
    run.update(status=RunStatus.INTERRUPTED, pid=None)
    assert store.repair(run) and run.has_best() and not (run.path / L.previous(L.BEST)).exists()


def test_open_repairs_before_serving(tmp_path):
    store = RunStore(tmp_path)
    run = _run(store, "20260101-000000-scratch")
    os.replace(run.best_dir, run.path / L.previous(L.BEST))
    assert store.open(run.run_id).has_best()


def test_the_store_pickles_for_the_training_child(tmp_path):
    store = RunStore(str(tmp_path))  # a door may give text
    again = pickle.loads(pickle.dumps(store))
    assert again == store and again.root == tmp_path and RunStore.at(again) is again
