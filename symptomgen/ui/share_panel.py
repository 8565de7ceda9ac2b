"""Keep and share a run, on the Evaluate tab: zip download, load from a zip or the Hub, push, model card.

The download is only ever a zip the server has just built (``share.export_run_zip``) from a
run found by ``RunStore.open`` inside the runs folder: no path from the page or an API
caller is ever served.  Imports go through ``share.import_run_zip``/``import_run_from_hub``,
which treat every archive as hostile.  The handlers are methods of ``SharePanel``
(callable without a page).

A page's visitors are strangers, so pushing and reading private repos act with the *visitor's* Hub token: the one
their "Sign in with Hugging Face" gave (on a Space) or one they type for this request (never stored or shown).
The server's own ``HF_TOKEN`` acts for them only behind a login, when the owner sets ``SYMPTOMGEN_LEND_HF_TOKEN=1``
(``share.visitor_token``).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Callable

import gradio as gr

from ..catalog import run_choices
from ..errors import InvalidInput
from ..gguf_export import DEFAULT_GGUF_TYPE, GGUF_TYPES, estimate_run, export_run_gguf, modelfile_text
from ..layout import EXPORTS_DIR
from ..settings import current
from ..share import visitor_token
from .context import PageContext
from .widgets import checked_types, user_errors

log = logging.getLogger(__name__)
EXPORT_DIR = EXPORTS_DIR  # one zip per run, replaced on each export; swept after an hour (RunStore.sweep)
_export_lock = threading.Lock()  # export_run_zip's temporary name is per process, so one export at a time


def _card_body(text: str) -> str:
    """The model card without its YAML front matter (that is for the Hub, not for reading)."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            return text[end + 4:].lstrip()
    return text


def sign_in_offered() -> bool:
    """Whether the page shows "Sign in with Hugging Face": on a Space with OAuth only (Gradio refuses to build a page
    with a LoginButton on a Space without it), and only with Gradio's OAuth extra installed (``gradio[oauth]``),
    else pasting a token still works."""
    if not current().space_oauth:
        return False
    if importlib.util.find_spec("authlib") is None or importlib.util.find_spec("itsdangerous") is None:
        log.warning("Sign in with Hugging Face needs gradio[oauth] (authlib, itsdangerous); offering tokens only")
        return False
    return True


def token_note() -> str:
    who = ("sign in with Hugging Face above (then a bare repo name goes in your namespace), or paste a write token"
           if sign_in_offered() else "paste a write token")
    lent = (" Logged-in users of this server may also leave it empty: the owner lends the server's token."
            if current().lends_hub_token else "")
    return (f"Pushing acts with **your own** Hub token: {who} "
            "([huggingface.co/settings/tokens](https://huggingface.co/settings/tokens)). It is used for this request "
            f"only, never stored or shown.{lent} Repos are created private unless you untick *Private*.")


def _signed_in(oauth: gr.OAuthToken | None) -> str | None:
    return getattr(oauth, "token", None) or None


def own_namespace(repo_id: str | None, profile: gr.OAuthProfile | None) -> str:
    """A bare repo name (no ``owner/``) goes in the signed-in visitor's own namespace; anything else as typed."""
    repo = (repo_id or "").strip()
    user = getattr(profile, "username", None)
    return f"{user}/{repo}" if repo and "/" not in repo and user else repo


class SharePanel:
    """The share accordion's handlers (export, import, push, model card, delete) over one page's runs."""

    def __init__(self, ctx: PageContext):
        self.ctx = ctx

    @user_errors
    @checked_types
    def export_run(self, run_id: str | None, export_format: str | None = "zip",
                   gguf_type: str | None = DEFAULT_GGUF_TYPE):
        """Build a zip of a finished run (best model, tokenizer, config, metrics, split, model card), or with
        export_format 'gguf' one GGUF file of its model (gguf_type f16, bf16 or q8_0; a LoRA run merged)."""
        from ..share import export_run_zip

        found = self.ctx.store.open(run_id)  # a run inside the runs folder, by name: never a caller's path
        with _export_lock, self.ctx.store.using(found.run_id, "exporting"):  # a delete waits for the download
            if _is_gguf(export_format):
                path = export_run_gguf(found.path, EXPORT_DIR, gguf_type or DEFAULT_GGUF_TYPE, modelfile=False)
            else:
                path = export_run_zip(found, EXPORT_DIR / f"{found.run_id}.zip")
        return str(path), _card_body(_card(found.path))

    @user_errors
    @checked_types
    def export_estimate(self, run_id: str | None, export_format: str | None, gguf_type: str | None):
        """Before the download: a GGUF file's size for the chosen type, and the Ollama Modelfile to go with it."""
        if not _is_gguf(export_format):
            return ZIP_NOTE
        if not (run_id or "").strip():
            return "Pick a finished run to see the size of its GGUF file."
        return _gguf_note(self.ctx.store.open(run_id).path, gguf_type or DEFAULT_GGUF_TYPE)

    @user_errors
    @checked_types
    def import_run(self, upload: str | None, hub_id: str | None, typed_token: str | None = None,
                   oauth: gr.OAuthToken | None = None):
        """Load a run from an uploaded zip, or else from a Hub repo id (public, or private with your own token),
        into this server's runs."""
        from ..share import import_run_from_hub, import_run_zip

        hub_id = (hub_id or "").strip()
        if upload:
            new = import_run_zip(upload, self.ctx.store)
            origin = "the uploaded zip"
        elif hub_id:
            new = import_run_from_hub(hub_id, self.ctx.store, token=visitor_token(typed_token, _signed_in(oauth)))
            origin = f"the Hub repo `{hub_id}`"
        else:
            raise InvalidInput("Upload a run zip or enter a Hub id (owner/name) first.")
        msg = (f"**Loaded** run `{new.run_id}` from {origin}. It is selected above and listed on the Generate tab; "
               "evaluation uses its own stored validation split.")
        return msg, new.run_id

    @user_errors
    @checked_types
    def push_run(self, run_id: str | None, repo_id: str | None, private: bool, typed_token: str | None = None,
                 oauth: gr.OAuthToken | None = None, profile: gr.OAuthProfile | None = None):
        """Upload a finished run (model, card, metrics, split) to a Hub model repo, with your own Hub token (signed
        in with Hugging Face, a bare repo name goes in your own namespace)."""
        from ..share import push_run_to_hub

        found = self.ctx.store.open(run_id)
        with self.ctx.store.using(found.run_id, "pushing"):
            url = push_run_to_hub(found, own_namespace(repo_id, profile),
                                  token=visitor_token(typed_token, _signed_in(oauth)), private=bool(private))
        return f"**Pushed** run `{found.run_id}` to {url} ({'private' if private else 'public'})."

    @user_errors
    @checked_types
    def model_card(self, run_id: str | None):
        """The model card that export and push write for a run."""
        if not (run_id or "").strip():
            return ""
        return _card_body(_card(self.ctx.store.open(run_id).path))

    @user_errors
    @checked_types
    def delete_run(self, run_id: str | None):
        """Delete a run that is not training (its folder, model and checkpoints) from this server."""
        if not (run_id or "").strip():
            return "Nothing deleted (no run selected, or cancelled).", None
        return f"**{self.ctx.store.delete(run_id)}**", None


def build_share_section(ctx: PageContext, run: gr.Dropdown, other_updates: Callable[[], tuple],
                        other_outputs: list) -> None:
    """The "Keep and share" accordion for the run chosen in ``run``.

    After an import, ``run`` selects the new run and ``other_outputs`` get ``other_updates()``
    (e.g. the compare list and the Generate tab's model list).
    """
    with gr.Accordion("Keep and share this run", open=False, elem_id="share-section"):
        with gr.Row():
            export = gr.Button("Build the download of this run", elem_id="export-button", scale=1)
            zip_file = gr.File(label="Run zip (model, tokenizer, config, metrics, split, model card) or GGUF file",
                               interactive=False, height=90, elem_id="export-file", scale=3)
        with gr.Row():  # what the button builds: the run zip, or one GGUF file for llama.cpp / Ollama
            export_format = gr.Dropdown(EXPORT_FORMATS, value="zip", label="Download as", elem_id="export-format",
                                        scale=1)
            gguf_type = gr.Dropdown(list(GGUF_TYPES), value=DEFAULT_GGUF_TYPE, label="GGUF type (f16, bf16: 2 bytes "
                                    "per weight; q8_0: 8-bit, ~1.06)", elem_id="gguf-type", scale=1)
            export_note = gr.Markdown(ZIP_NOTE, elem_id="export-note")
        gr.Markdown("**Load a run** from an exported zip or a Hub model repo made by *Push*.")
        with gr.Row():
            upload = gr.File(label="Run zip", file_types=[".zip"], type="filepath", height=90,
                             elem_id="import-file", scale=2)
            hub_id = gr.Textbox("", label="…or a Hub id (owner/name)", placeholder="someone/symptomgen-run", scale=2)
            load = gr.Button("Load run", elem_id="import-button", scale=1)
        import_status = gr.Markdown(elem_id="import-status")
        gr.Markdown("**Push to the Hugging Face Hub**")
        if sign_in_offered():  # Gradio's OAuth: a Space with `hf_oauth: true` (README front matter)
            gr.LoginButton()
        token = gr.Textbox("", label="Your Hugging Face token (write; used for this request only)", type="password",
                           placeholder="hf_…", elem_id="hub-token")
        with gr.Row():
            repo = gr.Textbox("", label="Hub repo id (owner/name)", placeholder="you/symptomgen-kidney", scale=3)
            private = gr.Checkbox(True, label="Private", scale=1)
            push = gr.Button("Push", elem_id="push-button", scale=1)
        push_status = gr.Markdown(token_note(), elem_id="push-status")
        with gr.Accordion("Model card preview (README.md of the zip / Hub repo)", open=False):
            card = gr.Markdown(elem_id="model-card")
        with gr.Row():
            delete = gr.Button("Delete this run", variant="stop", elem_id="delete-button", scale=1)
            delete_status = gr.Markdown("Frees its disk space on this server; build a zip first to keep a copy.",
                                        elem_id="delete-status")

    panel = SharePanel(ctx)
    export_run, import_run, push_run = panel.export_run, panel.import_run, panel.push_run
    model_card, delete_run, export_estimate = panel.model_card, panel.delete_run, panel.export_estimate

    def show_imported(run_id):
        return (gr.update(choices=run_choices(ctx.store), value=run_id), None, *other_updates())

    def show_deleted(_):
        return (gr.update(choices=run_choices(ctx.store), value=None), None, *other_updates())

    share_limit = dict(concurrency_limit=1, concurrency_id="share")  # zips and uploads are disk/CPU heavy
    # A refusal marks the box next to the button that caused it, not the model card below.
    export.click(export_run, inputs=[run, export_format, gguf_type], outputs=[zip_file, card], api_name="export_run",
                 show_progress_on=zip_file, **share_limit)
    for source in (run, export_format, gguf_type):
        source.change(export_estimate, inputs=[run, export_format, gguf_type], outputs=export_note,
                      api_visibility="private", show_progress="hidden")
    # The run lists follow only a successful import (via the new id): a failed one would badge them "Error".
    imported = gr.Textbox(visible=False)
    load.click(import_run, inputs=[upload, hub_id, token], outputs=[import_status, imported], api_name="import_run",
               **share_limit) \
        .success(show_imported, inputs=imported, outputs=[run, upload, *other_outputs], api_visibility="private",
                 show_progress="hidden")
    push.click(push_run, inputs=[run, repo, private, token], outputs=push_status, api_name="push_run", **share_limit)
    # The page asks first (a browser confirm; cancelling sends no run); API callers name the run themselves.
    delete.click(delete_run, inputs=run, outputs=[delete_status, zip_file], api_name="delete_run",
                 show_progress_on=delete_status,
                 js="(run) => (run && confirm(`Delete run ${run} from this server?`)) ? run : null", **share_limit) \
        .success(show_deleted, inputs=run, outputs=[run, upload, *other_outputs], api_visibility="private",
                 show_progress="hidden")
    run.change(model_card, inputs=run, outputs=card, api_name="model_card", show_progress="hidden", queue=False)


EXPORT_FORMATS = [("zip: the run as saved", "zip"), ("GGUF: one file for llama.cpp / Ollama", "gguf")]
ZIP_NOTE = "The zip loads back here (*Load a run*) or with `from_pretrained`; GGUF runs in llama.cpp and Ollama."


def _is_gguf(export_format: str | None) -> bool:
    return str(export_format or "").strip().lower() == "gguf"


def _gguf_note(run_path: Path, gguf_type: str) -> str:
    """The size estimate and the Modelfile for Ollama (the download is the .gguf file alone)."""
    from ..modeling import EOS  # every run here is a GPT-2 with this EOS (torch loads lazily, as elsewhere)

    name = f"{run_path.name}-{gguf_type}.gguf"
    modelfile = modelfile_text(name, EOS)
    return (f"{estimate_run(run_path, gguf_type).text()} For Ollama, save this beside it as `Modelfile`, then "
            f"`ollama create symptomgen -f Modelfile`:\n\n```\n{modelfile}```")


def _card(run_path: Path) -> str:
    from ..card import write_model_card

    return write_model_card(run_path)
