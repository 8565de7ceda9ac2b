"""Server RSS while a page follows a long training job (issue 25 item 5).

Launches ``python app.py`` (offline, a fresh runs folder), starts the quick-CPU scratch job (4 layers, width 256,
100 epochs on the bundled sample) through ``/train`` and follows it to its end through ``/attach`` (the stream a
page re-attaches with on load), both with ``gradio_client``, so two streams follow it, as a page that pressed
Start and one reloaded.  Every second it samples the resident memory (RSS) of the server process and of the
training child (its largest child process), and reports start / after epoch 1 / mid / end / peak and the server's
growth per 10 epochs (least squares from epoch 1 to the end): does the server's memory grow with the epochs and
steps it streams?  Writes the table to ``bench/RESULTS.md`` (section ``follow_rss``; a few minutes).

    python bench/follow_rss.py
    python bench/follow_rss.py --tiny --epochs 5 --results /tmp/r.md   # the 2-layer model: well under a minute
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchlib as B
import psutil

MIB = 1024 * 1024


def epochs_shown(outputs: tuple) -> int:
    """Rows in the epochs table of one streamed view (the second output: a dataframe's ``data``)."""
    table = outputs[1] if len(outputs) > 1 else None
    return len(table.get("data") or []) if isinstance(table, dict) else 0


class Sampler:
    """RSS of the server and of its largest child (the training process) every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 1.0):
        self.server, self.every = psutil.Process(pid), every
        self.epoch, self.views = 0, 0  # set by the follower: epochs shown, views received
        self.samples: list[tuple[float, int, float, float | None]] = []  # (time, epoch, server MiB, child MiB)
        self.alive = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _child_mib(self) -> float | None:
        sizes = []
        for child in self.server.children(recursive=True):
            try:
                sizes.append(child.memory_info().rss)
            except psutil.Error:  # ended between the listing and the read
                pass
        return max(sizes) / MIB if sizes else None

    def _run(self) -> None:
        while self.alive:
            try:
                server = self.server.memory_info().rss / MIB
            except psutil.Error:
                return
            self.samples.append((time.perf_counter(), self.epoch, server, self._child_mib()))
            time.sleep(self.every)

    def stop(self) -> None:
        self.alive = False
        self.thread.join(5)


def follow(client, sampler: Sampler) -> None:
    """Follow the running job through /attach until it ends, telling ``sampler`` the epochs shown."""
    job = client.submit(api_name="/attach")
    seen = 0
    while not job.done() or seen < len(job.outputs()):
        outputs = job.outputs()
        for view in outputs[seen:]:
            sampler.views += 1
            sampler.epoch = max(sampler.epoch, epochs_shown(view))
        seen = len(outputs)
        time.sleep(0.2)
    job.result(timeout=60)


def first_at(samples, epoch: int) -> tuple[int, float, float | None]:
    """The first sample that shows ``epoch`` epochs done: (epoch, server MiB, child MiB), the child's latest reading
    by then (it may have exited just before, at the end)."""
    i = next((i for i, s in enumerate(samples) if s[1] >= epoch), len(samples) - 1)
    child = next((s[3] for s in reversed(samples[:i + 1]) if s[3] is not None), None)
    return samples[i][1], samples[i][2], child


def mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def table(samples, before, epochs: int) -> tuple[str, float]:
    """The Markdown table and the server's growth per 10 epochs (MiB)."""
    running = [s for s in samples if s[1] >= 1]
    slope = statistics.linear_regression([s[1] for s in running], [s[2] for s in running]).slope \
        if len({s[1] for s in running}) > 1 else float("nan")
    child_peak = max((s[3] for s in samples if s[3] is not None), default=None)
    rows = [["start (server up, before Start)", 0, mib(before[2]), "—"]]
    for name, epoch in (("after epoch 1", 1), (f"mid (epoch {epochs // 2})", epochs // 2),
                        (f"end (epoch {epochs})", epochs)):
        shown, server, child = first_at(samples, epoch)
        rows.append([name, shown, mib(server), mib(child)])
    rows.append(["peak (whole run)", "—", mib(max(s[2] for s in samples)), mib(child_peak)])
    growth = f"{10 * slope:+.1f}" if slope == slope else "—"  # nan: every sample saw the same epoch
    rows.append(["growth per 10 epochs (epoch 1 → end, least squares)", "—", growth, "—"])
    return B.markdown_table(["point", "epoch", "server RSS MiB", "training child RSS MiB"], rows), 10 * slope


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="the 2-layer width-64 scratch model (for tests)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the job (default 100; 5 with --tiny)")
    p.add_argument("--results", type=Path, default=B.RESULTS, help="Markdown file to write the section into")
    a = p.parse_args()
    from gradio_client import Client

    sys.path.insert(0, str(B.ROOT / "tests"))
    from conftest import free_port

    epochs = a.epochs or (5 if a.tiny else 100)
    job_args = dict(B.TINY_JOB if a.tiny else B.QUICK_JOB, epochs=epochs)
    runs = Path(tempfile.mkdtemp(prefix="follow-rss-runs-"))
    port = free_port()
    proc = B.launch_app(runs, port)
    try:
        url = f"http://127.0.0.1:{port}/"
        starter, page = Client(url, verbose=False), Client(url, verbose=False)
        sampler = Sampler(proc.pid)
        time.sleep(3)  # a few samples of the idle server (after the clients loaded its API)
        before = sampler.samples[-1]
        B.say(f"starting a {epochs}-epoch job; following it through /attach")
        t0 = time.perf_counter()
        train = starter.submit(**job_args, api_name="/train")
        while not train.outputs():
            if train.done():
                raise SystemExit(f"the job did not start: {train.exception()}")
            time.sleep(0.2)
        follow(page, sampler)
        final = train.result(timeout=600)
        wall = time.perf_counter() - t0
        time.sleep(2)
        sampler.stop()
    finally:
        proc.terminate()
        proc.wait(30)
    if sampler.epoch < epochs:
        raise SystemExit(f"the job ended at epoch {sampler.epoch} of {epochs}: {final[3] if final else ''}")
    body_table, growth = table(sampler.samples, before, epochs)
    model = "2 layers, width 64" if a.tiny else "4 layers, width 256"
    body = (f"## follow_rss\n\n`{B.command_line()}` · {B.machine_line(os.cpu_count() or 1)}\n\n"
            f"A {epochs}-epoch scratch job ({model}, the bundled sample) started through `/train` and followed to "
            f"its end through `/attach` (two streams: {sampler.views} views to the `/attach` follower), "
            f"{wall:.0f} s; RSS sampled every second ({len(sampler.samples)} samples).  Server: the `app.py` "
            "process; training child: its largest child process.\n\n"
            f"{body_table}\n")
    print(body)
    B.say(f"server growth per 10 epochs: {growth:+.1f} MiB")
    B.write_section(a.results, "follow_rss", body)


if __name__ == "__main__":
    main()
