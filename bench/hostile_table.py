"""Issue 23's table of costly inputs, each sent once to a launched ``app.py`` through ``gradio_client``.

Used by ``hostile_imports.py --server [--root DIR]``: the server of ``DIR`` (default this checkout) runs as its own
process (``python app.py``, offline, a fresh runs folder); the peak growth of its resident memory and its children's
(sampled every 20 ms) and the seconds to the answer are measured per case, each case stopped after ``timeout``
seconds.  The inputs are built here, once, the same for every checkout.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import psutil

GEN_TRAIN = dict(source="sample", upload=None, model="scratch", epochs=1, batch_size=16, learning_rate=3e-3,
                 max_length=32, scratch_layers=1, scratch_width=32, scratch_vocab=300)


def zip_directory_of(count: int) -> bytes:
    """A zip whose central directory lists ``count`` empty entries (zip64 end records), written directly."""
    entries = io.BytesIO()
    for i in range(count):
        name = f"f{i}.json".encode()
        entries.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0,
                                  0, 0, 0, 0) + name)
    cd = entries.getvalue()
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(cd), 0)
    loc = struct.pack("<IIQI", 0x07064B50, 0, len(cd), 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return cd + z64 + loc + eocd


def build_inputs(work: Path, genuine: dict[str, bytes]) -> dict[str, Path]:
    """The files of the table's rows, from a genuine run export's members ``genuine``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def run_zip(name: str, change) -> Path:
        files = dict(genuine)
        change(files)
        path = work / name
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for member, data in files.items():
                zf.writestr(member, data)
        return path

    def member(files, suffix):
        return next(k for k in files if k.endswith(suffix))

    def unknown_key(files):
        rec = json.loads(files[member(files, "run.json")])
        rec["junk"] = [[]] * 10_000_000  # 30 MB written compactly: under the 32 MB cap of a run.json
        files[member(files, "run.json")] = json.dumps(rec, separators=(",", ":")).encode()

    def wide_train(files):
        cols = 20_000
        header = ",".join(["prompt", "target"] + [f"c{i}" for i in range(cols - 2)])
        row = ",".join(["Asthma", "cough"] + ["x"] * (cols - 2))
        files[member(files, "train.csv")] = (header + "\n" + "\n".join([row] * 1_200) + "\n").encode()

    def wide_metrics(files):
        files[member(files, "metrics.csv")] = ("x," * 1_000_000 + "x\n").encode()  # 2 MB, 1 M columns

    out = {"zip1m": work / "directory-1m.zip"}
    out["zip1m"].write_bytes(zip_directory_of(1_000_000))
    out["record"] = run_zip("unknown-key.zip", unknown_key)
    out["train_csv"] = run_zip("wide-train.zip", wide_train)
    out["metrics"] = run_zip("wide-metrics.zip", wide_metrics)
    cols = 20_000
    out["csv"] = work / "wide.csv"
    with open(out["csv"], "w") as f:
        f.write(",".join(["Name", "Symptoms"] + [f"c{i}" for i in range(cols - 2)]) + "\n")
        row = ",".join(["Asthma", "cough"] + ["x"] * (cols - 2)) + "\n"
        for _ in range(1_284):
            f.write(row)
    out["parquet_bomb"] = work / "bomb.parquet"
    n = 3_000_000
    pq.write_table(pa.table({"Name": pa.array(np.zeros(n, dtype=np.int8)).cast(pa.string()),
                             "Symptoms": pa.array(np.zeros(n, dtype=np.int8)).cast(pa.string())}),
                   out["parquet_bomb"], compression="zstd")
    out["parquet_nested"] = work / "nested.parquet"
    pq.write_table(pa.table({"Name": [[f"n{i}"] * 20 for i in range(20_000)],
                             "Symptoms": [{"a": [{"b": list(range(20))}]} for _ in range(20_000)]}),
                   out["parquet_nested"])
    return out


def newest_run(runs: Path) -> str:
    names = sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) if runs.is_dir() \
        else []
    return names[-1] if names else "20240101-000000-scratch"


def cases(files: dict[str, Path], runs_of):
    """(label, function(client) → answer) per row of the table; ``runs``: the servers' runs folder (the compare
    row names the run the 40 Starts trained, 20,000 times); ``runs_of()``: the current server's runs folder."""
    from gradio_client import handle_file

    def upload(key, api, **kw):
        return lambda c: c.predict(handle_file(str(files[key])), **kw, api_name=api)

    def concurrent_train(c):
        jobs = [c.submit(**GEN_TRAIN, api_name="/train") for _ in range(40)]
        answers = []
        for j in jobs:
            try:
                j.result(timeout=120)
                answers.append("started")
            except Exception as exc:  # noqa: BLE001
                answers.append("refused" if "already" in str(exc) else str(exc).splitlines()[0][:60])
        c.predict(api_name="/stop")
        return f"{answers.count('started')} started, {answers.count('refused')} refused" + (
            f", other: {sorted(set(a for a in answers if a not in ('started', 'refused')))[:2]}"
            if len(set(answers) - {"started", "refused"}) else "")

    return [
        ("zip whose central directory lists 1 M entries", lambda c: c.predict(
            handle_file(str(files["zip1m"])), "", api_name="/import_run")),
        ("run zip whose run.json has an unknown key of 10 M empty lists", lambda c: c.predict(
            handle_file(str(files["record"])), "", api_name="/import_run")),
        ("run zip with a train.csv of 20,000 columns", lambda c: c.predict(
            handle_file(str(files["train_csv"])), "", api_name="/import_run")),
        ("run zip whose 2 MB metrics.csv has 1 M columns", lambda c: c.predict(
            handle_file(str(files["metrics"])), "", api_name="/import_run")),
        ("CSV upload of 20,000 columns × 1,284 rows (/read_columns)", upload("csv", "/read_columns")),
        ("Parquet bomb, 3 M rows (/read_columns)", upload("parquet_bomb", "/read_columns")),
        ("Parquet with nested values (/preview_data)", lambda c: c.predict(
            source="upload", upload=handle_file(str(files["parquet_nested"])), api_name="/preview_data")),
        ("40 concurrent /train calls", concurrent_train),
        ("/compare_runs with one (existing) run name 20,000 times", lambda c: c.predict(
            [newest_run(runs_of())] * 20_000, api_name="/compare_runs")),
    ]


class Server:
    """``python app.py`` of ``root`` on a free port, offline, over a fresh runs folder."""

    def __init__(self, root: Path, runs: Path, port: int):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "SYMPTOMGEN_RUNS_DIR": str(runs), "PYTHONPATH": str(root)}
        self.url, self.runs = f"http://127.0.0.1:{port}/", runs
        self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=root, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.url, timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise SystemExit("the app did not start")

    def rss(self) -> int:
        try:
            p = psutil.Process(self.proc.pid)
            return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)] if q.is_running())
        except psutil.Error:
            return 0

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


def measure(server: Server, fn, client, timeout: float) -> tuple[float, float, str]:
    """(peak growth MB, seconds, answer) of one call; stopped at ``timeout``."""
    start, peak, done, result = server.rss(), [0], threading.Event(), {}

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], server.rss())
            done.wait(0.02)

    def call():
        try:
            answer = fn(client)
            result["out"] = "served: " + (answer if isinstance(answer, str) else "a result")[:90]
        except Exception as exc:  # noqa: BLE001
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            result["out"] = "refused: " + (lines[-1][:110] if lines else type(exc).__name__)

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout)
    seconds = time.perf_counter() - t0
    done.set()
    out = result.get("out", f"no answer after {timeout:.0f} s (stopped)")
    return max(0, peak[0] - start) / 2 ** 20, seconds, out
