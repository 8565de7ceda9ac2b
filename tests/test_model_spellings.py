"""Issue 24 item 7: every place that takes a model, with every spelling of one finished run.

The spellings: its Hub id (the run's ``best/`` served by a stand-in Hub on 127.0.0.1, which really downloads), the
same Hub id with the Hub out of reach (offline), its run id, its run folder and its ``best/`` folder (the folders
relative, as ``train`` prints them).  The places: the CLI (``train``, ``generate`` one name, ``--names-file``,
``--whole-table``, ``evaluate``, ``export`` as a zip and as GGUF, ``push``), the MCP tools and the page's handlers
(train, generate, explain, bulk, evaluate, export, push), called as methods over a ``PageContext``.

Each accepted spelling must give what the run's own files give when loaded directly, without any resolver: the same
sampled text (seeded), the same CSV, the same evaluation, the same zip, GGUF or pushed files, the same starting
weights for a training.  A decoy run, newer than the real one and with other weights, would be picked by a place that
ignored its argument and took the newest run (checked once: its outputs differ).  A refusal must be the one sentence
expected for that place (the page and the tools never take a server path; evaluate, export and push take runs only)
and come at once; the offline Hub id fails fast with the Hub-unreachable sentence (the page's training falls back to
the scratch model with a notice, as documented).  Trainings stop right after loading their starting model (the
real ``load_for_training``, inside the real ``run_training``): the weights are what is compared; ``test_cli`` trains
on from a run in each local spelling to the end.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import re
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import gradio as gr
import pandas as pd
import pytest
from conftest import TINY

from symptomgen import cli
from symptomgen.config import DataConfig, GenerationSettings
from symptomgen.errors import UserError
from symptomgen.runs import Run, parent_run_id
from symptomgen.settings import override
from symptomgen.store import RunStore

SPELLINGS = ("hub", "hub-offline", "run-id", "run-folder", "best")
LOCAL = ("run-id", "run-folder", "best")
HUB_ID = "standin/spelled-run"
NAME = "Kidney Failure"
SAMPLING = GenerationSettings(temperature=0.9, max_new_tokens=8, seed=7)  # seeded sampling: weights-sensitive
CLI_SAMPLING = ("--temperature", "0.9", "--max-new-tokens", "8", "--seed", "7")
SENTINEL = "stopped after loading its model (test)"
FAST_S = 8.0  # a refusal comes before any model is loaded or any network is waited on (a loaded 2-core machine)


# -- a stand-in Hub that takes pushes and serves model downloads ----------------------------------------------------
class ModelHub(BaseHTTPRequestHandler):
    """Just enough of the Hub's HTTP API for ``from_pretrained`` and ``HfApi.upload_folder``: repos as dicts of
    files, one commit; every request recorded in ``seen``."""

    COMMIT = "5" * 40
    repos: dict[str, dict[str, bytes]] = {}
    seen: list[tuple[str, str]] = []

    def _send(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value, status: int = 200, code: str | None = None) -> None:
        headers = {"content-type": "application/json", "X-Repo-Commit": self.COMMIT}
        if code:
            headers["x-error-code"] = code
        self._send(status, json.dumps(value).encode(), headers)

    def _answer(self) -> None:
        path = unquote(urlparse(self.path).path)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        ModelHub.seen.append((self.command, path))
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            req = json.loads(body)
            repo = f"{req.get('organization') or 'me'}/{req['name']}"
            ModelHub.repos.setdefault(repo, {})
            return self._json({"url": f"http://{self.headers['host']}/{repo}", "name": repo})
        if path == "/api/validate-yaml":
            return self._json({"errors": [], "warnings": []})
        if parts[:2] == ["api", "models"]:
            rest = parts[2:]
            verb = next((v for v in ("preupload", "commit", "tree", "revision") if v in rest), "info")
            cut = rest.index(verb) if verb in rest else len(rest)
            repo, sub = "/".join(rest[:cut]), "/".join(rest[cut + 2:])
            files = ModelHub.repos.get(repo)
            if files is None:
                return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
            if verb == "preupload":
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                             for f in json.loads(body)["files"]]})
            if verb == "commit":
                for line in body.splitlines():
                    op = json.loads(line)
                    if op["key"] == "file":
                        files[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
                return self._json({"commitUrl": f"http://{self.headers['host']}/{repo}/commit/{self.COMMIT}",
                                   "commitOid": self.COMMIT})
            if verb == "tree":
                listed = [{"type": "file", "path": n, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                          for n, b in files.items() if not sub or n.startswith(sub + "/")]
                if sub and not listed:
                    return self._json({"error": "Entry not found"}, 404, "EntryNotFound")
                return self._json(listed)
            return self._json({"id": repo, "sha": self.COMMIT, "private": False,
                               "siblings": [{"rfilename": n, "size": len(b)} for n, b in files.items()]})
        if "resolve" in parts:
            cut = parts.index("resolve")
            files = ModelHub.repos.get("/".join(parts[:cut]))
            name = "/".join(parts[cut + 2:])
            if files is None:
                return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
            if name not in files:
                return self._json({"error": "Entry not found"}, 404, "EntryNotFound")
            data = files[name]
            return self._send(200, data, {"X-Repo-Commit": self.COMMIT, "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                                          "content-type": "application/octet-stream"})
        return self._json({"error": "Not found"}, 404, "RepoNotFound")

    def do_GET(self):
        self._answer()

    def do_HEAD(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def log_message(self, *args):
        pass


def served(repo: str, name: str) -> bool:
    return ("GET", f"/{repo}/resolve/{ModelHub.COMMIT}/{name}") in ModelHub.seen or \
        ("GET", f"/{repo}/resolve/main/{name}") in ModelHub.seen


# -- the run, its decoy, and what their own files give ---------------------------------------------------------------
def weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def zip_files(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def shared_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """A zip's or a pushed repo's files, the model card reduced to its title: the card also shows the run's latest
    evaluation, which the evaluate cases here replace."""
    return {n: b.split(b"\n\n", 2)[1] if n.endswith("README.md") else b for n, b in files.items()}


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class World:
    root: Path  # the working directory: runs/ inside it
    store: RunStore
    run: Run
    decoy: Run
    hub: str
    names: list[str]
    scratch: Path
    _anchors: dict = field(default_factory=dict)

    def spell(self, spelling: str) -> str:
        rel = Path("runs") / self.run.run_id
        return {"hub": HUB_ID, "hub-offline": HUB_ID, "run-id": self.run.run_id, "run-folder": str(rel),
                "best": str(rel / "best")}[spelling]

    def anchor(self, what: str, run: Run | None = None):
        """What ``run``'s (default: the real run's) own files give, loaded directly: no name is resolved."""
        run = run or self.run
        key = (what, run.run_id)
        if key not in self._anchors:
            self._anchors[key] = ANCHORS[what](self, run)
        return self._anchors[key]


def _served(run: Run):
    from symptomgen.generation import ModelCache

    return ModelCache().get(run.best_dir)  # the page's way: placed for serving


def _generate(loaded):
    def anchor(w: World, run: Run) -> str:
        from symptomgen.generation import generate

        model, tok = loaded(run)
        return generate(model, tok, NAME, SAMPLING)[0]
    return anchor


def _bulk(loaded, names=None, references: bool = True):
    """The CSV of ``generate_many`` over ``names`` (default: the world's; "table": the run's own), references from
    the run's split (or, not ``references``, from the bundled sample as for a model without a run)."""
    def anchor(w: World, run: Run) -> list[dict]:
        from symptomgen.bulk import generate_many, table_names, write_csv

        wanted = table_names(run) if names == "table" else w.names
        model, tok = loaded(run)
        path = w.scratch / f"anchor-{time.monotonic_ns()}.csv"
        return read_csv(write_csv(generate_many(model, tok, wanted, SAMPLING, run if references else None), path))
    return anchor


def _evaluation(w: World, run: Run) -> dict:
    """``evaluate --limit 1 --no-base`` of the run, as its JSON."""
    from symptomgen.evaluation import evaluate_run

    out = evaluate_run(run.path, limit=1, include_base=False)
    out.pop("table"), out.pop("taught_table")
    return json.loads(json.dumps(out))


def _page_evaluation(w: World, run: Run) -> pd.DataFrame:
    """The Evaluate tab's summary of one row, base model included."""
    from symptomgen.evaluation import evaluate_run
    from symptomgen.ui.evaluate_tab import summary_frame

    return summary_frame(evaluate_run(run.path, limit=1))


def _explain(w: World, run: Run) -> pd.DataFrame:
    from symptomgen.explain import explain_generation

    model, tok = _served(run)
    ex = explain_generation(model, tok, NAME, SAMPLING)
    return ex.to_frame().round(4).dropna(axis=1, how="all")


def _zip(w: World, run: Run) -> dict[str, bytes]:
    from symptomgen.share import export_run_zip

    return shared_files(zip_files(export_run_zip(run, w.scratch / f"anchor-{run.run_id}.zip")))


def _pushed(w: World, run: Run) -> dict[str, bytes]:
    """A pushed run's files: the zip's, without the zip's top folder."""
    return {n.split("/", 1)[1]: b for n, b in w.anchor("zip", run).items()}


def _gguf(w: World, run: Run) -> str:
    from symptomgen.gguf_export import export_run_gguf

    return sha(export_run_gguf(run.path, w.scratch / f"gguf-{run.run_id}", "f16", modelfile=False))


def _weights(w: World, run: Run) -> str:
    from symptomgen.modeling import load_pretrained

    return weights_digest(load_pretrained(run.best_dir)[0])


ANCHORS = {
    # The CLI serves as the page does (generation.load_for_serving): its anchors are the served model's too.
    "text": _generate(_served), "served text": _generate(_served),
    "names csv": _bulk(_served), "served names csv": _bulk(_served), "whole csv": _bulk(_served, "table"),
    "sample references csv": _bulk(_served, references=False),
    "evaluation": _evaluation, "page evaluation": _page_evaluation, "explain": _explain,
    "zip": _zip, "pushed": _pushed, "gguf": _gguf, "weights": _weights,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads of tiny matrices wait on each other (about ten
    times slower here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One finished tiny run (trained once) on a table of its own (the sample's names, symptoms in another order:
    references from the run's split differ from the bundled sample's); a newer decoy with other weights; the run's
    ``best/`` as a repo on a stand-in Hub."""
    import torch
    from safetensors.torch import load_file, save_file

    from symptomgen.trainer import run_training

    root = tmp_path_factory.mktemp("spellings")
    frame = pd.read_csv(Path(__file__).resolve().parents[1] / "symptomgen" / "sample_data" / "diseases_sample.csv")
    frame = frame.head(30).assign(Symptoms=lambda f: f["Symptoms"].map(
        lambda s: ", ".join(reversed([p.strip() for p in s.split(",")]))))
    frame.to_csv(root / "own.csv", index=False)
    store = RunStore(root / "runs")
    summary = run_training(DataConfig(source=str(root / "own.csv")), TINY.with_(score_rows=0), store)
    assert summary.status == "finished"
    run = Run(summary.run_dir)

    decoy = Run(store.root / f"{run.run_id}-decoy")  # sorts after it: the newest run
    shutil.copytree(run.path, decoy.path)
    decoy.update(run_id=decoy.run_id)
    weights = load_file(decoy.best_dir / "model.safetensors")
    torch.manual_seed(0)
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in weights.items()}, decoy.best_dir / "model.safetensors",
              metadata={"format": "pt"})
    assert store.finished()[0].run_id == decoy.run_id

    ModelHub.repos[HUB_ID] = {p.name: p.read_bytes() for p in run.best_dir.iterdir() if p.is_file()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), ModelHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    train_names = run.split_frames()[0]["prompt"].tolist()
    val_names = run.split_frames()[1]["prompt"].tolist()
    scratch = root / "scratch"
    scratch.mkdir()
    w = World(root, store, run, decoy, f"http://127.0.0.1:{server.server_address[1]}",
              [train_names[0], val_names[0], "Not A Disease In Any Table"], scratch)
    yield w
    server.shutdown()
    server.server_close()
    assert sorted(r.run_id for r in store.list()) == [run.run_id, decoy.run_id]  # the trainings stopped before a folder


def test_the_decoy_would_be_caught(world):
    """Every comparison below can fail: the decoy's files give other text, evaluation, weights and exports, and the
    run's own split gives other references than the bundled sample."""
    for what in ("text", "served text", "evaluation", "zip", "gguf", "weights"):
        assert world.anchor(what) != world.anchor(what, world.decoy), what
    real, decoy = world.anchor("names csv"), world.anchor("names csv", world.decoy)
    assert [r["generated"] for r in real] != [r["generated"] for r in decoy]
    assert [r["reference"] for r in real] != [r["reference"] for r in world.anchor("sample references csv")]


# -- calling each place ----------------------------------------------------------------------------------------------
class Refused(Exception):
    """A place said no: its one line."""


class LoadedOnly(UserError):
    """Raised by the stubbed ``load_for_training`` once the starting model is loaded."""


@dataclass
class Case:
    world: World
    spelling: str
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    loads: list = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.world.spell(self.spelling)

    def stop_trainings_after_loading(self) -> None:
        from symptomgen import trainer

        real = trainer.load_for_training

        def load_then_stop(cfg, texts):
            model, tok = real(cfg, texts)
            self.loads.append({"model": cfg.model, "parent": parent_run_id(cfg.model),
                               "weights": weights_digest(model)})
            raise LoadedOnly(SENTINEL)

        self.monkeypatch.setattr(trainer, "load_for_training", load_then_stop)

    def context(self):
        """A page's context over the runs, its trainings run in this process (a thread, as on ZeroGPU)."""
        from symptomgen import launchers, zerogpu
        from symptomgen.ui.context import PageContext

        class InThisProcess(launchers.Launcher):
            def new(self, job_id, report, end):
                return launchers._GpuCall(job_id, report, end, zerogpu._records)

        ctx = PageContext.create(self.world.store)
        ctx.jobs.launcher = InThisProcess()
        return ctx


def run_cli(*args) -> str:
    """``python -m symptomgen --runs-dir runs ARGS`` in this process: its stdout, or ``Refused`` with its error
    line (exit status 2: a user's error, never an internal one)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["--runs-dir", "runs", *map(str, args)])
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error: ")]
    if rc:
        assert rc == 2 and len(errors) == 1, (rc, err.getvalue())
        raise Refused(errors[0].removeprefix("error: "))
    return out.getvalue()


@contextlib.contextmanager
def refusals():
    """A page handler's ``gr.Error`` (its one sentence) as ``Refused``."""
    try:
        yield
    except gr.Error as exc:
        message = str(exc.message)
        assert "internal error" not in message.lower(), message
        raise Refused(message) from None


def last(generator):
    out = None
    for out in generator:
        pass
    return out


def cli_train(c: Case):
    c.stop_trainings_after_loading()
    try:
        run_cli("train", "--data", "sample", "--model", c.model, "--epochs", 1, "--max-length", 64)
    except Refused as exc:
        if SENTINEL not in str(exc):
            raise
    return c.loads


def cli_generate(c: Case):
    return run_cli("generate", NAME, "--model", c.model, *CLI_SAMPLING)


def cli_names_file(c: Case):
    names = c.tmp / "names.txt"
    names.write_text("\n".join(c.world.names), encoding="utf-8")
    run_cli("generate", "--model", c.model, "--names-file", names, "--out", c.tmp / "out.csv", *CLI_SAMPLING)
    return read_csv(c.tmp / "out.csv")


def cli_whole_table(c: Case):
    run_cli("generate", "--model", c.model, "--whole-table", "--out", c.tmp / "out.csv", *CLI_SAMPLING)
    return read_csv(c.tmp / "out.csv")


def cli_evaluate(c: Case):
    return json.loads(run_cli("evaluate", "--model", c.model, "--limit", 1, "--no-base"))


def cli_export_zip(c: Case):
    run_cli("export", c.model, "--out", c.tmp / "run.zip")
    return shared_files(zip_files(c.tmp / "run.zip"))


def cli_export_gguf(c: Case):
    run_cli("export", c.model, "--format", "gguf", "--out", c.tmp)
    (found,) = c.tmp.glob("*.gguf")
    return sha(found)


def cli_push(c: Case):
    c.monkeypatch.setenv("HF_TOKEN", "hf_spellings_test_token")
    repo = f"standin/pushed-cli-{c.spelling}"
    run_cli("push", c.model, "--repo-id", repo)
    return shared_files(ModelHub.repos[repo])


def mcp_start_training(c: Case):
    from symptomgen.ui.mcp_tools import Tools

    c.stop_trainings_after_loading()
    ctx = c.context()
    with refusals():
        started = Tools(ctx).start_training(model=c.model, epochs=1, batch_size=16, max_length=64)
    assert ctx.jobs.join(60)
    assert SENTINEL in (ctx.jobs.snapshot().error or ""), ctx.jobs.snapshot().error
    return [{**load, "notices": started["notices"]} for load in c.loads]


def mcp_generate_symptoms(c: Case):
    from symptomgen.ui.mcp_tools import Tools

    with refusals():
        return Tools(c.context()).generate_symptoms(NAME, c.model, temperature=SAMPLING.temperature,
                                                    max_new_tokens=SAMPLING.max_new_tokens, seed=SAMPLING.seed)


def mcp_evaluate_run(c: Case):
    from symptomgen.ui.mcp_tools import Tools

    with refusals():
        out = Tools(c.context()).evaluate_run(c.model, rows=1, include_base=False)
    out.pop("examples"), out.pop("note")
    return json.loads(json.dumps(out))


def mcp_export_run_zip(c: Case):
    from symptomgen.ui.mcp_tools import Tools

    with refusals():
        return shared_files(zip_files(Tools(c.context()).export_run_zip(c.model).path))


def _page_settings(c: Case) -> tuple:
    s = SAMPLING
    return s.top_k, s.top_p, s.temperature, s.repetition_penalty, s.max_new_tokens


def page_train(c: Case):
    from symptomgen.ui.form import form_of
    from symptomgen.ui.train_tab import PARAMS, TrainActions

    c.stop_trainings_after_loading()
    ctx = c.context()
    values = form_of(DataConfig(source="sample"), TINY.with_(model=c.model, epochs=1))
    with refusals():
        last(TrainActions(ctx).train(*[values.get(n) for n in PARAMS]))
    assert ctx.jobs.join(60)
    snap = ctx.jobs.snapshot()
    assert SENTINEL in (snap.error or ""), snap.error
    return [{**load, "notices": list(snap.notices)} for load in c.loads]


def page_generate(c: Case):
    from symptomgen.ui.generate_tab import GenerateActions

    with refusals():
        text, _, _ = last(GenerateActions(c.context()).generate(c.model, NAME, *_page_settings(c), 1,
                                                                SAMPLING.seed, False))
    return text


def page_explain(c: Case):
    from symptomgen.ui.explain_panel import ExplainActions

    with refusals():
        _, _, frame = ExplainActions(c.context()).explain(c.model, NAME, *_page_settings(c), 1, SAMPLING.seed, None,
                                                          "surprise")
    return frame


def page_bulk(c: Case):
    from symptomgen.ui.bulk_panel import BulkPanel

    with refusals():
        _, path = last(BulkPanel(c.context()).generate_many(c.model, "\n".join(c.world.names), False,
                                                            *_page_settings(c), SAMPLING.seed))
    return read_csv(path)


def page_evaluate(c: Case):
    from symptomgen.ui.evaluate_tab import EvaluateActions

    with refusals():
        note, summary, _, _ = last(EvaluateActions(c.context()).evaluate(c.model, 1, "none"))
    assert c.world.run.run_id in note
    return summary


def page_export_zip(c: Case):
    from symptomgen.ui.share_panel import SharePanel

    with refusals():
        path, _ = SharePanel(c.context()).export_run(c.model, "zip")
    return shared_files(zip_files(path))


def page_export_gguf(c: Case):
    from symptomgen.ui.share_panel import SharePanel

    with refusals():
        path, _ = SharePanel(c.context()).export_run(c.model, "gguf", "f16")
    return sha(path)


def page_push(c: Case):
    from symptomgen.ui.share_panel import SharePanel

    repo = f"standin/pushed-page-{c.spelling}"
    with refusals():
        SharePanel(c.context()).push_run(c.model, repo, True, "hf_spellings_test_token")
    return shared_files(ModelHub.repos[repo])


# -- what each place must do with each spelling ------------------------------------------------------------------------
SAME = "same"  # what the run's own files give (the anchor named next to it)
GENERATED = "generated"  # bulk from a Hub model: the same generated column (no run: references from the sample)
FALLBACK = "fallback"  # the page's training offline: the scratch model, with a notice saying why
NOT_A_RUN = r"is not a valid run name"
NO_PATHS_GENERATE = r"is neither a finished run nor a Hugging Face model id"
NO_PATHS_TRAIN = r"must be 'scratch', a Hub model id such as 'distilgpt2' or the name of a finished run"
HUB_DOWN_CLI = r"offline mode is on \(HF_HUB_OFFLINE=1\)"
HUB_DOWN_PAGE = r"cannot be loaded here: it is not downloaded yet and offline mode is on \(HF_HUB_OFFLINE=1\)"


def _cli_expect(anchor: str, hub, hub_offline) -> dict:
    return {"hub": hub, "hub-offline": hub_offline, **{s: (SAME, anchor) for s in LOCAL}}


def _page_expect(anchor: str, hub, hub_offline, paths: str) -> dict:
    return {"hub": hub, "hub-offline": hub_offline, "run-id": (SAME, anchor), "run-folder": paths, "best": paths}


_RUNS_ONLY = {"hub": NOT_A_RUN, "hub-offline": NOT_A_RUN}
PLACES = {
    cli_train: _cli_expect("weights", (SAME, "weights"), r"^Offline mode is on .*the model 'standin/spelled-run' "
                           r"cannot be downloaded; pass --offline-fallback"),
    cli_generate: _cli_expect("text", (SAME, "text"), HUB_DOWN_CLI),
    cli_names_file: _cli_expect("names csv", (GENERATED, "names csv"), HUB_DOWN_CLI),
    cli_whole_table: _cli_expect("whole csv", r"--whole-table needs a run", r"--whole-table needs a run"),
    cli_evaluate: {**_cli_expect("evaluation", None, None), **_RUNS_ONLY},
    cli_export_zip: {**_cli_expect("zip", None, None), **_RUNS_ONLY},
    cli_export_gguf: {**_cli_expect("gguf", None, None), **_RUNS_ONLY},
    cli_push: {**_cli_expect("pushed", None, None), **_RUNS_ONLY},
    mcp_start_training: _page_expect("weights", (SAME, "weights"), FALLBACK, NO_PATHS_TRAIN),
    mcp_generate_symptoms: _page_expect("served text", (SAME, "served text"), HUB_DOWN_PAGE, NO_PATHS_GENERATE),
    mcp_evaluate_run: {**_page_expect("evaluation", None, None, NOT_A_RUN), **_RUNS_ONLY},
    mcp_export_run_zip: {**_page_expect("zip", None, None, NOT_A_RUN), **_RUNS_ONLY},
    page_train: _page_expect("weights", (SAME, "weights"), FALLBACK, NO_PATHS_TRAIN),
    page_generate: _page_expect("served text", (SAME, "served text"), HUB_DOWN_PAGE, NO_PATHS_GENERATE),
    page_explain: _page_expect("explain", (SAME, "explain"), HUB_DOWN_PAGE, NO_PATHS_GENERATE),
    page_bulk: _page_expect("served names csv", (GENERATED, "served names csv"), HUB_DOWN_PAGE, NO_PATHS_GENERATE),
    page_evaluate: {**_page_expect("page evaluation", None, None, NOT_A_RUN), **_RUNS_ONLY},
    page_export_zip: {**_page_expect("zip", None, None, NOT_A_RUN), **_RUNS_ONLY},
    page_export_gguf: {**_page_expect("gguf", None, None, NOT_A_RUN), **_RUNS_ONLY},
    page_push: {**_page_expect("pushed", None, None, NOT_A_RUN), **_RUNS_ONLY},
}
NEEDS_THE_HUB = (cli_push, page_push)


def _observed_for_comparison(place, got, anchor_name: str, c: Case):
    """``got`` in the anchor's terms: a CLI line without its name, a training's loaded weights."""
    if anchor_name == "text":
        assert got.endswith("\n") and got.count("\n") == 1, got
        prefix = f"{NAME} | "
        assert got.startswith(prefix), got
        return got[len(prefix):-1]
    if anchor_name == "weights":
        assert len(got) == 1, got  # one model loaded, by the real run_training
        load = got[0]
        assert load["parent"] == (None if c.spelling.startswith("hub") else c.world.run.run_id), load
        assert not load.get("notices"), load["notices"]
        return load["weights"]
    return got


def _equal(got, want) -> bool:
    if isinstance(want, pd.DataFrame):
        return isinstance(got, pd.DataFrame) and got.reset_index(drop=True).equals(want.reset_index(drop=True))
    return got == want


@contextlib.contextmanager
def hub_environment(c: Case, online: bool):
    """Offline (the tests' default, ``HF_HUB_OFFLINE=1``) or with the stand-in Hub reachable; either way an empty
    Hugging Face cache (nothing loads from an earlier download) and the runs folder's parent as the working
    directory (the folder spellings are relative)."""
    from huggingface_hub import constants

    c.monkeypatch.setattr(constants, "HF_HUB_CACHE", str(c.tmp / "hf-cache"))
    c.monkeypatch.chdir(c.world.root)
    if not online:
        yield
        return
    c.monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    c.monkeypatch.setattr(constants, "ENDPOINT", c.world.hub)
    c.monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                          c.world.hub + "/{repo_id}/resolve/{revision}/{filename}")
    with override(offline=False, hub_endpoint=c.world.hub):
        yield


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("place", PLACES, ids=lambda p: p.__name__.replace("_", "-"))
def test_every_place_takes_every_spelling_of_one_run(world, place, spelling, tmp_path, monkeypatch):
    expected = PLACES[place][spelling]
    c = Case(world, spelling, tmp_path, monkeypatch)
    online = spelling == "hub" or (place in NEEDS_THE_HUB and spelling != "hub-offline")
    ModelHub.seen.clear()
    started = time.monotonic()
    with hub_environment(c, online):
        try:
            got, refusal = place(c), None
        except Refused as exc:
            got, refusal = None, str(exc)
    seconds = time.monotonic() - started

    if isinstance(expected, str) and expected != FALLBACK:  # a refusal: that sentence, at once
        assert refusal is not None, f"{place.__name__} took {spelling} {c.model!r}; expected a refusal"
        assert re.search(expected, refusal) and "\n" not in refusal, refusal
        assert seconds < FAST_S, f"refused after {seconds:.1f} s"
        assert not any(path.endswith("model.safetensors") for _, path in ModelHub.seen), ModelHub.seen
        return
    assert refusal is None, f"{place.__name__} refused {spelling} {c.model!r}: {refusal}"
    if expected == FALLBACK:
        (load,) = got
        assert load["model"] == "scratch" and load["weights"] != world.anchor("weights")
        assert any(f"Using the small 'scratch' model instead of '{HUB_ID}'" in n for n in load["notices"])
        return
    how, anchor_name = expected
    want = world.anchor(anchor_name)
    if spelling == "hub":  # really downloaded from the stand-in Hub
        assert served(HUB_ID, "model.safetensors"), ModelHub.seen
    got = _observed_for_comparison(place, got, anchor_name, c)
    if how == GENERATED:
        assert [r["name"] for r in got] == [r["name"] for r in want]
        assert [r["generated"] for r in got] == [r["generated"] for r in want]
    else:
        if isinstance(want, dict) and isinstance(got, dict):  # files: name the ones that differ
            assert sorted(got) == sorted(want)
            assert [n for n in want if got[n] != want[n]] == []
        assert _equal(got, want), f"{place.__name__} with {spelling}: {got!r:.300} != {want!r:.300}"
