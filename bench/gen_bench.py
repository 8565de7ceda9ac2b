"""Generation and start-up benchmark: per-token cost, first streamed token, batching, app start.

Measured on a distilgpt2-shaped random model (KV cache on) through the project's
own ``symptomgen.generation.stream``:

* ms per generated token (median gap between streamed tokens) against the floor,
  one cached forward step of the same model at the same cache length;
* time to the first streamed token;
* ``num_return_sequences=3`` in one batched call against three single calls;
* seconds from ``python app.py`` to the first HTTP 200 (fresh process each time).

It also prints the serving dtype this CPU gets and why (``modeling.serving_dtype``: bf16 only where the CPU's own
flags show native bf16, and ``SYMPTOMGEN_CPU_BF16`` is not 0).

Prints a Markdown table and writes it to ``bench/RESULTS.md`` (section ``gen_bench``).

    python bench/gen_bench.py                 # ~2 min on 2 cores
    python bench/gen_bench.py --tiny --results /tmp/r.md --no-startup   # for tests
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import benchlib as B

PROMPT = "Kidney Failure"


def _stream_timed(model, tok, settings) -> dict:
    from symptomgen.generation import stream

    t0 = time.perf_counter()
    stamps = []
    texts = None
    for texts in stream(model, tok, PROMPT, settings):
        stamps.append(time.perf_counter())
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"first": stamps[0] - t0, "total": stamps[-1] - t0, "tokens": len(stamps),
            "gap": B.median(gaps) if gaps else float("nan"), "texts": texts}


def cached_step_seconds(model, tok, context: int, repeats: int = 30) -> float:
    """Median time of one forward step of one new token with a KV cache of ``context`` tokens."""
    import inspect

    import torch

    # transformers 5.x renames ``past_key_values`` to ``cache``; use whichever this version takes.
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    ids = torch.randint(0, len(tok), (1, context))
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True)
        past, nxt = out.past_key_values, ids[:, -1:]
        times = []
        for _ in range(repeats):
            # The same position each time, so the cache length stays fixed: drop what the step appends.
            t = time.perf_counter()
            model(input_ids=nxt, use_cache=True, **{key: past})
            times.append(time.perf_counter() - t)
            past.crop(-1)
    return B.median(times)


def measure_generation(a, model_dir: Path, serving: bool = False) -> dict:
    """The figures for the model as ``place`` puts it: fp32 on CPU, or ``serving=True`` as the app serves it
    (bf16 weights on CPUs with native bf16)."""
    from symptomgen.config import GenerationSettings
    from symptomgen.modeling import load_pretrained, place, serving_dtype

    B.set_threads(a.threads)
    model, tok = load_pretrained(model_dir)
    place(model, serving=serving)
    one = GenerationSettings(max_new_tokens=a.new_tokens, num_return_sequences=1, seed=0)
    three = one.with_(num_return_sequences=3)
    _stream_timed(model, tok, one)  # warm-up (first-call allocations, kernel selection)
    singles = [_stream_timed(model, tok, one) for _ in range(a.repeats)]
    prompt_len = len(tok(PROMPT + " |", add_special_tokens=False)["input_ids"])
    mid_context = prompt_len + a.new_tokens // 2
    step = cached_step_seconds(model, tok, mid_context)
    batched, separate = [], []
    for _ in range(a.repeats):  # interleaved
        batched.append(_stream_timed(model, tok, three)["total"])
        separate.append(sum(_stream_timed(model, tok, one.with_(seed=s))["total"] for s in range(3)))
    return {"per_token": B.median(s["gap"] for s in singles), "step": step, "context": mid_context,
            "first": B.median(s["first"] for s in singles), "tokens": B.median(s["tokens"] for s in singles),
            "batched3": B.median(batched), "separate3": B.median(separate),
            "params": sum(p.numel() for p in model.parameters()), "serving_decision": serving_dtype()[1],
            "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_startup(timeout: float = 120.0) -> dict:
    """Seconds from spawning ``python app.py`` to the first HTTP 200 on its port."""
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        env["SYMPTOMGEN_RUNS_DIR"] = str(Path(tmp) / "runs")
        log = open(Path(tmp) / "app.log", "w+")
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(B.ROOT / "app.py")], cwd=B.ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while time.perf_counter() - started < timeout:
                if proc.poll() is not None:
                    log.seek(0)
                    return {"error": f"app.py exited with {proc.returncode}: {log.read()[-300:].strip()}"}
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                        if resp.status == 200:
                            return {"seconds": time.perf_counter() - started}
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
                time.sleep(0.05)
            return {"error": f"no HTTP 200 within {timeout:.0f}s"}
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the session this script started for the app
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()


def render(a, gs: list[dict], starts: list[dict]) -> str:
    lines = [f"## Generation and start-up ({'tiny' if a.tiny else 'distilgpt2-shaped'} model)", "",
             f"Command: `{B.command_line()}`  ", f"Machine: {B.machine_line(a.threads)}  ", ""]
    targets = []
    if gs:
        g0 = gs[0]

        def row(label, fn):
            return [label, *[fn(g) for g in gs]]

        lines += [f"Prompt `{PROMPT} |`, up to {a.new_tokens} new tokens, seed-notebook sampling (top-k 8, top-p 0.95, "
                  f"temperature 0.5, repetition penalty 1.2), KV cache on, {a.repeats} repeats (medians), "
                  f"{g0['params'] / 1e6:.1f} M parameters.  Columns: the model as `place()` leaves it (fp32 on CPU) "
                  "and as the app serves it (`place(serving=True)`: bf16 weights on CPUs with native bf16).", "",
                  f"Serving dtype on this machine (`modeling.serving_dtype`, per CPU): **{gs[-1]['dtype']}**, "
                  f"because {g0['serving_decision']}.", "",
                  B.markdown_table(["figure", *[f"{g['label']} ({g['dtype']})" for g in gs]], [
                      row("ms per generated token (symptomgen.generation.stream)", lambda g: g["per_token"] * 1e3),
                      row("ms per cached forward step (1 token, cache of "
                          f"{g0['context']})", lambda g: g["step"] * 1e3),
                      row("per-token / forward-step ratio", lambda g: f"{g['per_token'] / g['step']:.2f}"),
                      row("time to first streamed token (ms)", lambda g: g["first"] * 1e3),
                      row("tokens streamed per call (median)", lambda g: g["tokens"]),
                      row("num_return_sequences=3, one batched call (s)", lambda g: g["batched3"]),
                      row("three single calls (s)", lambda g: g["separate3"]),
                      row("batched speed-up", lambda g: f"{g['separate3'] / g['batched3']:.2f}×")]), ""]
        served = gs[-1]
        targets += [("generation ≤ 14 ms per token (as served)", f"{served['per_token'] * 1e3:.1f} ms",
                     served["per_token"] <= 0.014),
                    ("num_return_sequences=3 in one call ≥ 2.5× faster than three calls (as served)",
                     f"{served['separate3'] / served['batched3']:.2f}×",
                     served["separate3"] / served["batched3"] >= 2.5)]
    if starts:
        ok = [s["seconds"] for s in starts if "seconds" in s]
        errors = [s["error"] for s in starts if "error" in s]
        if ok:
            lines += [f"App start-up, `python app.py` to first HTTP 200 (fresh process each): cold {ok[0]:.1f} s"
                      + (f", then {', '.join(f'{x:.1f}' for x in ok[1:])} s" if len(ok) > 1 else "") + ".", ""]
            targets.append(("app start-up to first 200 ≤ 10 s", f"{ok[0]:.1f} s (cold)", ok[0] <= 10))
        if errors:
            lines += [f"App start-up not measured: {errors[0]}", ""]
    if targets:
        lines += ["Targets (issue 13):", "", B.markdown_table(
            ["target", "measured", "verdict"], [[t, m, "met" if ok else "**not met**"] for t, m, ok in targets]), ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=B.default_data(), help="texts for the tokenizer (default: the real dataset)")
    p.add_argument("--new-tokens", type=int, default=48, help="max_new_tokens per call (default 48, the app's)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each measurement (default 5)")
    p.add_argument("--startups", type=int, default=2, help="app launches to time; the first is the cold one")
    p.add_argument("--no-startup", action="store_true", help="skip the app start-up measurement")
    p.add_argument("--no-generation", action="store_true", help="skip the generation measurements")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--tiny", action="store_true", help="tiny model and few tokens: for tests")
    p.add_argument("--results", type=Path, default=B.RESULTS, help="Markdown file to write (default bench/RESULTS.md)")
    p.add_argument("--json-out", type=Path, help="also write the raw figures as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.tiny:
        a.new_tokens, a.repeats, a.startups = min(a.new_tokens, 8), 1, min(a.startups, 1)
    from symptomgen import quiet_libraries
    from symptomgen.config import DataConfig
    from symptomgen.data import format_example, prepare

    quiet_libraries()
    starts = [] if a.no_startup else [measure_startup() for _ in range(a.startups)]
    gs: list[dict] = []
    if not a.no_generation:
        prepared = prepare(DataConfig(source=a.data))
        texts = [format_example(p, t) for p, t in zip(prepared.train["prompt"], prepared.train["target"])]
        with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
            folder = B.build_model_folder(Path(tmp) / "model", texts, "tiny" if a.tiny else "distilgpt2")
            gs = [{**measure_generation(a, folder), "label": "fp32 weights"},
                  {**measure_generation(a, folder, serving=True), "label": "as served"}]
    body = render(a, gs, starts)
    print(body)
    B.write_section(a.results, "gen_bench", body)
    if a.json_out:
        a.json_out.write_text(json.dumps({"generation": gs, "startups": starts}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
