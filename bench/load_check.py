"""Load check: 32 concurrent light generations while a job trains, through ``gradio_client`` (issue 12).

Launches ``python app.py`` (offline, a fresh runs folder), trains a tiny run to generate with, then measures

* 32 /generate calls submitted at once (16 new tokens each) with no job running: p50 / p95 seconds per call;
* a training job (the quick-CPU scratch model) alone: optimizer steps per second, read from its streamed progress;
* the same 32 calls while that job trains: p50 / p95, and the job's steps per second during the burst.

Training runs in its own process at a lower priority, so generations keep their pace and training takes what they
leave.  Prints a Markdown table and writes it to ``bench/LOAD_CHECK.md`` with the command and machine (~3 min).

    python bench/load_check.py
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchlib as B

CALLS = 32
GEN = dict(name="Asthma", top_k=8, top_p=0.95, temperature=0.5, repetition_penalty=1.2, max_new_tokens=16,
           num_sequences=1, compare=False)
TINY, JOB = B.TINY_JOB, B.QUICK_JOB
STEP = re.compile(r"step (\d+) of")


def burst(client, run_id: str) -> list[float]:
    """Submit ``CALLS`` generations at once; seconds from submit to result for each."""
    started = time.perf_counter()
    jobs = [client.submit(model=run_id, seed=i, **GEN, api_name="/generate") for i in range(CALLS)]
    done: list[float] = []

    def wait(job):
        job.result(timeout=600)
        done.append(time.perf_counter() - started)

    threads = [threading.Thread(target=wait, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(done)


def p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


class StepWatch:
    """The training job's optimizer step over time, from the progress its stream shows."""

    def __init__(self, job):
        self.job, self.points, self.alive = job, [], True
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        while self.alive and not self.job.done():
            outputs = self.job.outputs()
            if outputs and (m := STEP.search(str(outputs[-1][0]))):
                step = int(m.group(1))
                if not self.points or step != self.points[-1][1]:
                    self.points.append((time.perf_counter(), step))
            time.sleep(0.2)

    def rate(self, since: float, until: float) -> float:
        inside = [(t, s) for t, s in self.points if since <= t <= until]
        if len(inside) < 2:
            return float("nan")
        (t0, s0), (t1, s1) = inside[0], inside[-1]
        return (s1 - s0) / (t1 - t0)


FLOOD = 80
HEAVY = dict(GEN, max_new_tokens=256, num_sequences=2, compare=True)  # 256 × 2 × 2 sides = 2× the per-call cap


def flood(client_factory, run_id: str) -> dict:
    """80 heavy /generate calls at once from one client, while a job trains; meanwhile another client presses
    Stop, lists runs and generates.  What each got, and how long it took."""
    heavy = dict(HEAVY, max_new_tokens=256, num_sequences=1)  # the heaviest a call may ask (256 × 1 × 2 = 512)
    flooder, other = client_factory(), client_factory()
    train = other.submit(**JOB, api_name="/train")
    watch = StepWatch(train)
    while len(watch.points) < 2:
        if train.done():
            raise SystemExit(f"the training job ended early: {train.exception() or train.outputs()[-1][3]}")
        time.sleep(0.5)
    outcomes: dict[str, int] = {}
    jobs = []
    t_flood = time.perf_counter()
    for i in range(FLOOD):
        try:
            jobs.append(flooder.submit(model=run_id, seed=i, **{k: v for k, v in heavy.items()}, api_name="/generate"))
        except Exception as exc:  # noqa: BLE001 - counted by kind
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
    time.sleep(1.0)
    t0 = time.perf_counter()
    other.predict(api_name="/list_runs")
    list_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = other.predict(model=run_id, seed=1, **GEN, api_name="/generate")
    other_gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    stop_text = other.predict(api_name="/stop")
    stop_s = time.perf_counter() - t0
    for job in jobs:
        try:
            job.result(timeout=600)
            outcomes["served"] = outcomes.get("served", 0) + 1
        except Exception as exc:  # noqa: BLE001
            key = "refused: " + str(exc).splitlines()[-1][:90]
            outcomes[key] = outcomes.get(key, 0) + 1
    train.result(timeout=600)
    watch.alive = False
    return {"stop_s": stop_s, "stop_text": stop_text, "list_s": list_s, "other_gen_s": other_gen_s,
            "other_served": bool(gen and gen[0]), "flood_s": time.perf_counter() - t_flood, "outcomes": outcomes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flood", action="store_true", help=f"only the flood check: {FLOOD} heavy generations from one "
                   "client during training; Stop, a list and another client's generation timed meanwhile (~2 min)")
    a = p.parse_args()
    from gradio_client import Client

    sys.path.insert(0, str(B.ROOT / "tests"))
    from conftest import free_port

    runs = Path(tempfile.mkdtemp(prefix="load-check-runs-"))
    port = free_port()
    proc = B.launch_app(runs, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        B.say("training a tiny run to generate with")
        job = client.submit(**TINY, api_name="/train")
        job.result(timeout=600)
        run_id = job.outputs()[-1][5]
        if a.flood:
            B.say(f"flood of {FLOOD} heavy generations during training")
            got = flood(lambda: Client(f"http://127.0.0.1:{port}/", verbose=False), run_id)
            proc.terminate()
            proc.wait(30)
            write_flood(got)
            return
        B.say(f"warm-up burst on {run_id}")
        burst(client, run_id)  # warm up: the model loaded, the queue's workers started
        B.say("burst with no job")
        idle = burst(client, run_id)
        B.say("starting the training job")
        train = client.submit(**JOB, api_name="/train")
        watch = StepWatch(train)
        while len(watch.points) < 3:
            if train.done():
                raise SystemExit(f"the training job ended early: {train.exception() or train.outputs()[-1][3]}")
            time.sleep(0.5)
        B.say("training alone for 20 s")
        t0 = time.perf_counter()
        time.sleep(20)
        alone = watch.rate(t0, time.perf_counter())
        B.say("burst during training")
        t1 = time.perf_counter()
        busy = burst(client, run_id)
        during = watch.rate(t1, time.perf_counter())
        client.predict(api_name="/stop")
        train.result(timeout=600)
        watch.alive = False
    finally:
        proc.terminate()
        proc.wait(30)
    rows = [["no training job", CALLS, statistics.median(idle), p95(idle), "—"],
            ["training alone (20 s)", 0, "—", "—", alone],
            ["during training", CALLS, statistics.median(busy), p95(busy), during]]
    table = B.markdown_table(["situation", "generations", "p50 s", "p95 s", "training steps/s"], rows)
    body = (f"## load_check\n\n`{B.command_line()}` · {B.machine_line(os.cpu_count() or 1)}\n\n"
            f"{CALLS} `/generate` calls submitted at once ({GEN['max_new_tokens']} new tokens, a 2-layer run) through "
            "`gradio_client`; training: the quick-CPU scratch model (4 layers, width 256) in its own process.\n\n"
            f"{table}\n")
    print(body)
    B.write_section(Path(__file__).resolve().parent / "LOAD_CHECK.md", "load_check", body)


def write_flood(got: dict) -> None:
    rows = [["Stop (another client)", f"{got['stop_s']:.2f}", got["stop_text"]],
            ["/list_runs (another client)", f"{got['list_s']:.2f}", "served"],
            ["/generate (another client, 16 tokens)", f"{got['other_gen_s']:.2f}",
             "served" if got["other_served"] else "empty"]]
    rows += [[f"flood: {k}", "—", n] for k, n in sorted(got["outcomes"].items())]
    table = B.markdown_table(["call", "seconds", "answer"], rows)
    body = (f"## load_check_flood\n\n`{B.command_line()}` · {B.machine_line(os.cpu_count() or 1)}\n\n"
            f"{FLOOD} `/generate` calls (256 new tokens, side by side with the base: the most one call may ask) "
            "submitted at once from one `gradio_client` while a job trains; meanwhile a second client lists runs, "
            "generates and presses Stop.  Done when Stop answers in < 2 s and the other client is served.\n\n"
            f"{table}\n")
    print(body)
    B.write_section(Path(__file__).resolve().parent / "LOAD_CHECK.md", "load_check_flood", body)


if __name__ == "__main__":
    main()
