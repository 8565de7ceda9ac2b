"""The server's log says what matters: no library progress bar per save, no Gradio warning per page load."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_training_in_the_child_process_prints_no_library_progress_bars(tmp_path):
    """The server trains in a spawned interpreter (``worker``), which the server's own ``quiet_libraries`` does
    not reach: every save printed transformers' "Writing model shards" bar into the server's log."""
    code = ("from symptomgen.config import DataConfig, TrainConfig\n"
            "from symptomgen.worker import run_training_in_child\n"
            "cfg = TrainConfig(model='scratch', epochs=2, batch_size=16, learning_rate=3e-3, max_length=64,\n"
            "                  scratch_layers=2, scratch_width=64, scratch_vocab=800, save_checkpoints=False)\n"
            f"s = run_training_in_child(DataConfig(source='sample'), cfg, {str(tmp_path)!r})\n"
            "assert s.status == 'finished', s\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         check=False, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "Writing model shards" not in out.stderr and "it/s]" not in out.stderr, out.stderr


def _values(result, outputs: int) -> int:
    """How many output values Gradio counts in a handler's result (``blocks.validate_outputs``)."""
    if outputs == 0:
        return 0 if result is None else 1
    if outputs == 1 or not isinstance(result, (list, tuple)):
        return 1
    return len(result)


def test_page_load_handlers_return_one_value_per_output_on_every_visit(tmp_path):
    """Each visit runs the page's load events; one that returns a value it has no output for makes Gradio warn
    "returned too many output values" in the server log, once per visit."""
    from symptomgen.store import RunStore
    from symptomgen.ui import build_page

    demo, page = build_page(RunStore(tmp_path))
    loads = [fn for fn in demo.fns.values() if fn.fn is not None and any(t[1] == "load" for t in fn.targets)]
    assert len(loads) >= 4
    for visit in (1, 2):  # the first visit starts the sweeper; later ones find it running
        for fn in loads:
            result = fn.fn(*[getattr(b, "value", None) for b in fn.inputs])
            if isinstance(result, types.GeneratorType):
                result = next(result)
            assert _values(result, len(fn.outputs)) == len(fn.outputs), (visit, fn.name, result)
    page.jobs.stop()
