"""Hostile run zips: what each costs the server to refuse (issue 12).

Builds every case of ``tests/test_hostile_imports.py`` from a genuine export of a tiny run, then imports each zip
in a fresh worker process (torch and transformers already imported, as in the server) and reports the growth of
its resident memory at the peak (sampled every 5 ms), the seconds taken and the outcome.  ``--old-root`` runs the
same zips against another checkout of the package (e.g. ``git archive HEAD symptomgen | tar -x -C /tmp/old``) for
a before/after table; a worker is stopped after ``--timeout`` seconds.

    python bench/hostile_imports.py                       # ~1 min
    python bench/hostile_imports.py --old-root /tmp/old   # before/after
    python bench/hostile_imports.py --server [--root /tmp/old --label before]   # issue 23's table (~5 min)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchlib as B


def worker(zip_path: str, root: str) -> None:
    sys.path.insert(0, root)
    import psutil
    import torch  # noqa: F401  (loaded before measuring, as in a running server)
    import transformers  # noqa: F401

    from symptomgen.share import import_run_zip
    from symptomgen.store import RunStore

    proc = psutil.Process()
    start, peak, done = proc.memory_info().rss, [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(0.005)

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    try:
        import_run_zip(zip_path, RunStore(tempfile.mkdtemp(prefix="hostile-runs-")))
        outcome = "imported"
    except Exception as exc:  # noqa: BLE001
        outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
    seconds = time.perf_counter() - t0
    done.set()
    print(json.dumps({"growth_mb": max(0, max(peak[0], proc.memory_info().rss) - start) / 2**20,
                      "seconds": seconds, "outcome": outcome}))


def measure(zip_path: Path, root: Path, timeout: float) -> dict:
    try:
        return B.run_worker(Path(__file__), ["--worker", str(zip_path), str(root)], timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"growth_mb": float("nan"), "seconds": timeout, "outcome": f"still running after {timeout:.0f} s"}
    except RuntimeError as exc:
        return {"growth_mb": float("nan"), "seconds": float("nan"), "outcome": str(exc).splitlines()[0][:90]}


def server_table(root: Path, label: str, timeout: float) -> None:
    """Issue 23's table (``hostile_table``) against ``python app.py`` of ``root``; a section per ``label``."""
    import zipfile

    import hostile_table as T
    from gradio_client import Client

    sys.path.insert(0, str(B.ROOT / "tests"))
    from conftest import free_port

    from symptomgen.config import DataConfig, TrainConfig
    from symptomgen.runs import Run
    from symptomgen.share import export_run_zip
    from symptomgen.trainer import run_training

    work = Path(tempfile.mkdtemp(prefix="hostile-table-"))
    tiny = TrainConfig(model="scratch", epochs=1, batch_size=16, max_length=64, scratch_layers=2, scratch_width=64,
                       scratch_vocab=800, save_checkpoints=False)
    summary = run_training(DataConfig(source="sample"), tiny, work / "runs")
    with zipfile.ZipFile(export_run_zip(Run(summary.run_dir), work / "good.zip")) as zf:
        genuine = {i.filename: zf.read(i) for i in zf.infolist()}
    files = T.build_inputs(work, genuine)
    rows, server = [], None
    try:
        for name, fn in T.cases(files, lambda: server.runs):
            # A fresh runs folder per server: a costly run imported by one row must not weigh on the next.
            if server is not None and 0 < len(rows) <= 4:  # after each import row: an imported run stays costly
                server.close()
                server = None
            if server is None:
                server = T.Server(root, Path(tempfile.mkdtemp(prefix="hostile-runs-")), free_port())
                client = Client(server.url, verbose=False)
                client.predict(api_name="/list_runs")  # warm
            growth, seconds, out = T.measure(server, fn, client, timeout)
            rows.append([name, round(growth), round(seconds, 1), out])
            print(" | ".join(map(str, rows[-1])), flush=True)
            if out.startswith("no answer") or server.proc.poll() is not None:
                server.close()  # a call still running would weigh on the next row
                server = None
    finally:
        if server is not None:
            server.close()
    body = (f"## hostile_server_{label}\n\n`{B.command_line()}` · {B.machine_line(os.cpu_count() or 1)} · "
            f"checkout: `{root}`\n\n"
            f"{B.markdown_table(['input', 'server growth MB (peak)', 'seconds', 'answer'], rows)}\n")
    print(body)
    B.write_section(Path(__file__).resolve().parent / "LOAD_CHECK.md", f"hostile_server_{label}", body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", action="store_true", help="issue 23's table against a launched app.py")
    p.add_argument("--root", type=Path, default=B.ROOT, help="the checkout whose app.py serves (--server)")
    p.add_argument("--label", default="after", help="the section's name (--server)")
    p.add_argument("--old-root", type=Path, help="a folder holding another symptomgen package, for 'before'")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--only", help="run the cases whose id contains this text")
    a = p.parse_args()
    if a.server:
        server_table(a.root.resolve(), a.label, min(a.timeout, 60))
        return
    sys.path.insert(0, str(B.ROOT / "tests"))
    import zipfile

    from test_hostile_imports import CASES, _write_zip

    from symptomgen.config import DataConfig, TrainConfig
    from symptomgen.runs import Run
    from symptomgen.share import export_run_zip
    from symptomgen.trainer import run_training

    work = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    tiny = TrainConfig(model="scratch", epochs=1, batch_size=16, max_length=64, scratch_layers=2, scratch_width=64,
                       scratch_vocab=800, save_checkpoints=False)
    summary = run_training(DataConfig(source="sample"), tiny, work / "runs")
    with zipfile.ZipFile(export_run_zip(Run(summary.run_dir), work / "good.zip")) as zf:
        genuine = {i.filename: zf.read(i) for i in zf.infolist()}
    rows = []
    for label, change, _ in CASES:
        if a.only and a.only not in label:
            continue
        files = dict(genuine)
        change(files)
        zip_path = _write_zip(files, work / "hostile.zip")
        size = zip_path.stat().st_size / 2**20
        new = measure(zip_path, B.ROOT, a.timeout)
        row = [label, round(size, 2), new["growth_mb"], new["seconds"], new["outcome"]]
        if a.old_root:
            old = measure(zip_path, a.old_root, a.timeout)
            row[2:2] = [old["growth_mb"], old["seconds"], old["outcome"]]
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    header = ["case", "zip MB", "peak RSS growth MB", "seconds", "outcome"]
    if a.old_root:
        header = ["case", "zip MB", "before: growth MB", "before: s", "before: outcome", "after: growth MB",
                  "after: s", "after: outcome"]
    body = (f"## hostile_imports\n\n`{B.command_line()}` · {B.machine_line(os.cpu_count() or 1)}\n\n"
            f"{B.markdown_table(header, rows)}\n")
    print(body)
    B.write_section(Path(__file__).resolve().parent / "LOAD_CHECK.md", "hostile_imports", body)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        main()
