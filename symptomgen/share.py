"""Keep and share a trained run: a zip download, the Hugging Face Hub, and the way back in.

One layout serves the zip and the Hub repo, so ``AutoModelForCausalLM.from_pretrained``
works on either as is::

    README.md                   model card (YAML front matter read by the Hub)
    config.json, model.safetensors, tokenizer*.json, ...   the best model (from best/)
                                (a LoRA run: adapter_config.json, adapter_model.safetensors; merged on request)
    symptomgen/run.json         the run's settings and results (its config.json)
    symptomgen/metrics.csv      one row per epoch
    symptomgen/train.csv, val.csv   the exact split, so evaluation after import stays honest
    symptomgen/base/            the untrained model of a ``scratch`` run (before/after numbers)

Zips hold that layout under one ``<run_id>/`` folder.  Anything imported is treated as
hostile: size caps, no absolute paths, ``..``, links or pickle files (.bin/.pt/.pkl),
safetensors weights only, and the result must load as a run before it joins ``runs/``.
The Hub token comes from the argument, ``HF_TOKEN`` or a saved ``hf auth login``; it is never logged or saved.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import pandas as pd

from . import __version__
from . import importcheck as IC
from . import layout as L
from .card import public_source, write_model_card
from .errors import HubUnreachableError, ShareError, UserError, failure_reason, first_line, without_paths
from .hub import hub_endpoint, hub_reachable, looks_like_hub_id, offline_requested
from .limits import check_zip_directory
from .lora import is_adapter_folder, make_portable
from .records import RunStatus
from .runs import METRIC_COLUMNS, Run, atomic_write_json
from .settings import current
from .store import RunStore, folder_bytes

META = L.SHARE_META
RUN_JSON = f"{META}/{L.SHARE_RECORD}"
ALLOWED_SUFFIXES = {".json", ".safetensors", ".txt", ".md", ".csv", ".jinja", ".model"}
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz"}
MAX_MEMBERS = 500
_CHUNK = 1 << 20


__all__ = ["ShareError", "export_run_zip", "import_run_from_hub", "import_run_zip", "push_run_to_hub",
           "write_model_card"]



# ----------------------------------------------------------------------------- export

def _copy_model(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.is_symlink() and f.suffix in ALLOWED_SUFFIXES:
            shutil.copy2(f, dest / f.name)


def _save_merged(run: Run, dest: Path) -> None:
    """A LoRA run's best model as whole weights: base and adapter merged (loads without peft)."""
    from .modeling import load_pretrained

    model, tokenizer = load_pretrained(run.best_dir)  # an adapter folder loads merged
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)


def _stage(run: Run, dest: Path, merged: bool = False) -> None:
    """Write the share layout of ``run`` into the empty folder ``dest`` (``merged``: a LoRA run's adapter
    merged into its base, as whole weights)."""
    if not run.config_path.is_file() or not (run.path / L.VAL_SPLIT).is_file():
        raise ShareError(f"{run.path} is not a SymptomGen run folder (no config.json/val.csv).")
    if not run.has_best():
        raise ShareError(f"Run {run.run_id} has no saved model yet (no epoch finished), so there is nothing to share.")
    merged = merged and is_adapter_folder(run.best_dir)
    if merged:
        _save_merged(run, dest)
    else:
        _copy_model(run.best_dir, dest)
        if is_adapter_folder(dest):
            make_portable(dest, run.record().lora_base)
    meta = dest / META
    meta.mkdir()
    rec = run.record()
    if merged:
        rec = rec.with_(lora_base=None)  # whole weights now: nothing to apply them to
    if rec.data is not None:
        rec = rec.with_(data=rec.data.with_(source=public_source(rec.data.source)))
    shared = {k: v for k, v in rec.to_json().items() if k not in ("pid", "host")}  # this machine's, not theirs
    atomic_write_json(meta / L.SHARE_RECORD, shared)
    for name in (L.METRICS, L.TRAIN_SPLIT, L.VAL_SPLIT):
        if (run.path / name).is_file():
            shutil.copy2(run.path / name, meta / name)
    if (run.base_dir / L.MODEL_CONFIG).is_file():
        _copy_model(run.base_dir, meta / L.BASE)
    write_model_card(run.path, dest / L.MODEL_CARD, adapter=is_adapter_folder(dest))


def export_run_zip(run: Run, dest: Path | str, merged: bool = False) -> Path:
    """Zip a run (best model, tokenizer, config, metrics, split, model card); returns the zip's path.

    ``dest`` is the zip file, or a folder to put ``<run_id>.zip`` in.  ``merged``: a LoRA run's model as
    whole weights (its adapter merged into the base) instead of the adapter.
    """
    dest = Path(dest)
    if dest.is_dir() or dest.suffix.lower() != ".zip":
        dest = dest / f"{run.run_id}.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(L.temp_file(dest.name, os.getpid()))
    with tempfile.TemporaryDirectory(prefix="symptomgen-export-") as stage:
        _stage(run, Path(stage), merged)
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
                for f in sorted(Path(stage).rglob("*")):
                    if f.is_file():
                        zf.write(f, f"{run.run_id}/{f.relative_to(stage).as_posix()}")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return dest


# ----------------------------------------------------------------------------- import

# Control characters (newline, ESC, NUL), format characters (RTL/LTR marks and overrides, zero-width), line and
# paragraph separators: a name holding one could not be shown as it is, or would be shown as another name.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _check_name(name: str, label: str, is_link: bool = False, is_dir: bool = False) -> PurePosixPath:
    """A safe relative path for an archive or repo member, or a ShareError saying what is wrong."""
    shown = name[:120]
    if any(unicodedata.category(c) in _UNPRINTABLE for c in name):
        escaped = shown.encode("unicode_escape").decode("ascii")
        raise ShareError(f"{label}: the name '{escaped}' holds a control or direction-changing character; member "
                         "names must be plain printable text.")
    if is_link:
        raise ShareError(f"{label}: '{shown}' is a symbolic link; links are not allowed in a run archive.")
    if "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ShareError(f"{label}: '{shown}' is an absolute or non-portable path; only relative paths are allowed.")
    path = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in name.rstrip("/").split("/")):
        raise ShareError(f"{label}: '{shown}' would be written outside the run folder (path traversal).")
    if is_dir:
        return path
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ShareError(f"{label}: '{shown}' is a pickle-based file, which can run code when loaded; "
                         "only safetensors weights are accepted.")
    if suffix not in ALLOWED_SUFFIXES:
        raise ShareError(f"{label}: unexpected file '{shown}'; a run archive holds only "
                         f"{', '.join(sorted(ALLOWED_SUFFIXES))} files.")
    return path


def _extract_zip(zip_path: Path, dest: Path) -> None:
    label = zip_path.name
    if not zip_path.is_file():
        raise ShareError(f"{label} does not exist.")
    if zip_path.stat().st_size > current().max_import_bytes:
        raise ShareError(f"{label} is larger than the {current().max_import_bytes >> 20} MB import limit.")
    if not zipfile.is_zipfile(zip_path):
        raise ShareError(f"{label} is not a zip file.")
    check_zip_directory(zip_path, label, MAX_MEMBERS, error=ShareError)  # before ZipFile lists every entry
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS:
            raise ShareError(f"{label} holds {len(infos)} files; a run archive holds at most {MAX_MEMBERS}.")
        if sum(i.file_size for i in infos) > current().max_import_bytes:
            raise ShareError(f"{label} unpacks to more than the {current().max_import_bytes >> 20} MB import limit.")
        checked = [(i, _check_name(i.filename, label, stat.S_ISLNK(i.external_attr >> 16))) for i in infos]
        if len({str(p).lower() for _, p in checked}) != len(checked):
            raise ShareError(f"{label} holds the same file name twice.")
        for info, rel in checked:
            if info.file_size > IC.member_limit(rel):
                raise _member_too_big(label, rel)
        written = 0
        try:
            for info, rel in checked:
                target = dest.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "xb") as out:
                    # Declared sizes can lie (zip bombs): count what is really written, per file and in all.
                    this, limit = 0, IC.member_limit(rel)
                    while chunk := src.read(_CHUNK):
                        written, this = written + len(chunk), this + len(chunk)
                        if this > limit:
                            raise _member_too_big(label, rel)
                        if written > current().max_import_bytes:
                            raise ShareError(f"{label} unpacks to more than the {current().max_import_bytes >> 20} MB "
                                             "import limit.")
                        out.write(chunk)
        except (RuntimeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # encrypted, truncated, corrupt
            raise ShareError(f"{label} could not be unpacked: {first_line(exc)}") from None


def _member_too_big(label: str, rel: PurePosixPath) -> ShareError:
    limit = IC.member_limit(rel)
    shown = f"{limit >> 20} MB" if limit >= 1 << 20 else f"{limit >> 10} KB"
    return ShareError(f"{label}: {'/'.join(rel.parts[-2:])} unpacks to more than the {shown} allowed for such a file.")


def _find_root(folder: Path, label: str) -> Path:
    if (folder / RUN_JSON).is_file():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX"]
    if len(subs) == 1 and (subs[0] / RUN_JSON).is_file():
        return subs[0]
    raise ShareError(f"{label} is not a SymptomGen run export (no {RUN_JSON} found).")


def _check_tree(root: Path, label: str) -> None:
    """Re-check an unpacked/downloaded tree: no links, only allowed file types, size cap."""
    total = 0
    for p in root.rglob("*"):
        _check_name(p.relative_to(root).as_posix(), label, p.is_symlink(), p.is_dir())
        if p.is_file():
            total += p.stat().st_size
    if total > current().max_import_bytes:
        raise ShareError(f"{label} is larger than the {current().max_import_bytes >> 20} MB import limit.")
    IC.check_sizes(root, label)


def _install(root: Path, store: RunStore, work: Path, label: str, origin: str) -> Run:
    """Validate the share layout under ``root`` and turn it into a run folder in ``store``."""
    from .modeling import load_pretrained

    _check_tree(root, label)
    meta = root / META
    # Every field checked (records.RunRecord.problems): a forged value cannot reach a label or a printed line.
    rec = IC.check_record(IC.read_json(meta / L.SHARE_RECORD, label, RUN_JSON), label, META)
    if not ((root / L.MODEL_CONFIG).is_file() or is_adapter_folder(root)) or not list(root.glob("*.safetensors")):
        raise ShareError(f"{label} holds no model in safetensors format (config.json or a LoRA "
                         "adapter_config.json, + *.safetensors).")
    # Sizes from config.json and the weights' headers, before anything is built or loaded.
    if is_adapter_folder(root):
        IC.check_adapter(root, label)
    else:
        IC.check_weights(root, label, "model")
    if (meta / L.BASE / L.MODEL_CONFIG).is_file():
        IC.check_weights(meta / L.BASE, label, "base model")
    for name in (L.TRAIN_SPLIT, L.VAL_SPLIT):
        IC.check_split(meta / name, label, META)
    if (meta / L.METRICS).is_file():
        IC.check_metrics(meta / L.METRICS, label, META)
    run = Run(work / "run")  # built here, then adopted into the store whole
    run.path.mkdir()
    if (meta / L.METRICS).is_file():  # every column the app reads, present (empty where the zip had none)
        pd.read_csv(meta / L.METRICS).reindex(columns=METRIC_COLUMNS).to_csv(run.metrics_path, index=False)
    for name in (L.TRAIN_SPLIT, L.VAL_SPLIT):
        if (meta / name).is_file():
            shutil.move(str(meta / name), run.path / name)
    if (meta / L.BASE / L.MODEL_CONFIG).is_file():
        shutil.move(str(meta / L.BASE), run.base_dir)
    best = run.best_dir
    best.mkdir()
    for f in root.iterdir():
        if f.is_file() and f.name != L.MODEL_CARD:
            shutil.move(str(f), best / f.name)
    for folder, what in ((best, "model"), (run.base_dir, "base model")):
        if folder.is_dir():
            try:
                model, tokenizer = load_pretrained(folder)
            except Exception as exc:  # noqa: BLE001 - ModelLoadError, or whatever a forged tokenizer makes a library raise
                why = failure_reason(exc, then="import it again")
                raise ShareError(f"{label}: the {what} does not load ({why}).") from None
            IC.check_tokenizer(model, tokenizer, label, what)
            del model, tokenizer
    store.check_room(folder_bytes(run.path))
    run_id = store.free_id(rec.run_id)
    status = RunStatus.INTERRUPTED if rec.status is RunStatus.RUNNING else rec.status
    rec = rec.with_(run_id=run_id, imported_from=origin, status=status, pid=None, host="")
    atomic_write_json(run.config_path, rec.to_json())
    return store.adopt(run.path, run_id)


def import_run_zip(zip_path: Path | str, store: RunStore) -> Run:
    """Unpack an exported run zip (safely) into ``store`` and return the new run."""
    zip_path = Path(zip_path)
    with store.importing() as work:
        try:
            _extract_zip(zip_path, work / "unpacked")
            root = _find_root(work / "unpacked", zip_path.name)
            return _install(root, store, work, zip_path.name, f"zip:{zip_path.name}")
        except Exception as exc:  # noqa: BLE001 - any library error becomes one sentence
            raise _import_failure(zip_path.name, exc) from None


def _import_failure(label: str, exc: Exception) -> Exception:
    """What an import that failed says: its own sentence, or the failure in words; never a path of this server
    (the upload's temporary folder, the runs folder)."""
    if isinstance(exc, UserError):
        return type(exc)(without_paths(first_line(exc)))
    return ShareError(f"{label} could not be imported: {failure_reason(exc, then='import it again')}")


# ----------------------------------------------------------------------------- Hub

def hub_token() -> str | None:
    """The Hub token of this machine's owner: ``HF_TOKEN``, else a saved ``hf auth login`` (never logged or stored).

    For the owner's own doors (the CLI).  The web page never passes it on a visitor's behalf unless a login is
    configured and the owner opted in (``visitor_token``)."""
    from huggingface_hub import get_token

    return (get_token() or "").strip() or None


def visitor_token(typed: str | None = None, signed_in: str | None = None) -> str | None:
    """The Hub token a page visitor's push or import acts with: the one they typed, else the one their "Sign in with
    Hugging Face" gave (on a Space), else the server's own only where ``Settings.lends_hub_token``; else None
    (anonymous: public repos only, and no push)."""
    for token in (typed, signed_in):
        token = (token or "").strip()
        if token:
            return token
    return hub_token() if current().lends_hub_token else None


def _token(token: str | None) -> str:
    token = (token or "").strip()
    if not token:
        raise ShareError("No Hugging Face token: sign in with Hugging Face or give a write token "
                         "(https://huggingface.co/settings/tokens) to push a run; from the command line, set the "
                         "HF_TOKEN environment variable.")
    return token


def _unreachable(action: str, hint: str) -> HubUnreachableError:
    from urllib.parse import urlparse

    why = ("offline mode is on (HF_HUB_OFFLINE=1)" if offline_requested()
           else f"{urlparse(hub_endpoint()).hostname} could not be reached")
    return HubUnreachableError(f"Could not {action}: {why}; {hint}.")


def _hub_failure(action: str, exc: Exception, token: str | None) -> ShareError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if token:
        first = first.replace(token, "***")
    return ShareError(f"Could not {action}: {first[:300]}")


def _check_repo_id(repo_id: str) -> str:
    repo_id = str(repo_id or "").strip()
    if not looks_like_hub_id(repo_id) or "/" not in repo_id:
        raise ShareError(f"'{repo_id[:80]}' is not a Hub repo id; use the form owner/name.")
    return repo_id


def push_run_to_hub(run: Run, repo_id: str, token: str | None = None, private: bool = True,
                    merged: bool = False) -> str:
    """Upload a run (share layout, model card) to a Hub model repo with ``token`` (required: never a token found
    on this machine, see ``hub_token``); returns the repo URL (``merged``: as for ``export_run_zip``)."""
    repo_id = _check_repo_id(repo_id)
    action = f"push run {run.run_id} to the Hugging Face Hub"
    with tempfile.TemporaryDirectory(prefix="symptomgen-push-") as stage:
        _stage(run, Path(stage), merged)  # local problems first: they need no token and no network
        secret = _token(token)
        if not hub_reachable():
            raise _unreachable(action, "the run is still here, and `export` makes a zip you can share instead")
        from huggingface_hub import HfApi

        api = HfApi(endpoint=hub_endpoint(), token=secret, library_name="symptomgen",
                    library_version=__version__)
        try:
            url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=stage, repo_type="model",
                              commit_message=f"Upload SymptomGen run {run.run_id}")
        except Exception as exc:  # noqa: BLE001 - HTTP, auth and connection errors: one sentence, token scrubbed
            raise _hub_failure(action, exc, secret) from None
    return str(url)


def import_run_from_hub(repo_id: str, store: RunStore, revision: str | None = None,
                        token: str | None = None) -> Run:
    """Download a pushed run from the Hub (safetensors and text files only) into ``store``, with ``token`` or
    anonymously (public repos only) when it is None: never with a token found on this machine."""
    repo_id = _check_repo_id(repo_id)
    action = f"download run '{repo_id}' from the Hugging Face Hub"
    if not hub_reachable():
        raise _unreachable(action, "import an exported zip of the run instead")
    from huggingface_hub import HfApi, snapshot_download

    secret = (token or "").strip() or None
    with store.importing() as work:
        try:
            try:
                info = HfApi(endpoint=hub_endpoint(), token=secret or False).model_info(repo_id, revision=revision,
                                                                                      files_metadata=True)
                size = sum(s.size or 0 for s in info.siblings or []
                           if PurePosixPath(s.rfilename).suffix in ALLOWED_SUFFIXES)
                if size > current().max_import_bytes:
                    raise ShareError(f"{repo_id} is larger than the {current().max_import_bytes >> 20} MB import "
                                     "limit.")
                for s in info.siblings or []:  # each file within its kind's cap, before downloading it
                    rel = PurePosixPath(s.rfilename)
                    if rel.suffix in ALLOWED_SUFFIXES and (s.size or 0) > IC.member_limit(rel):
                        raise _member_too_big(repo_id, rel)
                folder = Path(snapshot_download(repo_id, revision=info.sha, local_dir=work / "download",
                                                endpoint=hub_endpoint(),
                                                token=secret or False,
                                                allow_patterns=[f"*{s}" for s in sorted(ALLOWED_SUFFIXES)]))
            except ShareError:
                raise
            except Exception as exc:  # noqa: BLE001 - any library error becomes one sentence
                raise _hub_failure(action, exc, secret) from None
            shutil.rmtree(folder / ".cache", ignore_errors=True)  # huggingface_hub's own bookkeeping
            return _install(_find_root(folder, repo_id), store, work, repo_id, f"hub:{repo_id}@{info.sha}")
        except Exception as exc:  # noqa: BLE001 - any library error becomes one sentence
            raise _import_failure(repo_id, exc) from None
