"""Sign in with Hugging Face on a Space: a LoginButton appears when ``SPACE_ID`` is set, and Push acts with the
signed-in visitor's token, in their own namespace.  A stand-in OAuth token and profile (what Gradio injects for a
signed-in visitor) and a stand-in Hub on 127.0.0.1 (``conftest.StandInHub``) take the place of Hugging Face, as
``fake_spaces`` takes the place of ZeroGPU."""

from __future__ import annotations

import json
import time

import gradio as gr
import pytest
from conftest import StandInHub

from symptomgen.settings import override
from symptomgen.store import RunStore
from symptomgen.ui import build_demo
from symptomgen.ui.context import PageContext
from symptomgen.ui.share_panel import SharePanel

OWNER = "hf_owner_secret_token_0123456789"
SIGNED_IN = "hf_visitor"


def _signed_in_visitor() -> tuple[gr.OAuthToken, gr.OAuthProfile]:
    token = gr.OAuthToken(token=SIGNED_IN, scope="openid profile write-repos", expires_at=int(time.time()) + 3600)
    profile = gr.OAuthProfile({"name": "Vera Visitor", "preferred_username": "vera", "profile":
                               "https://huggingface.co/vera", "picture": ""})
    return token, profile


@pytest.fixture
def reachable_hub(hub):
    """The stand-in Hub, reachable (conftest sets HF_HUB_OFFLINE=1, which huggingface_hub read at import)."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    StandInHub.seen.clear()
    StandInHub.bodies.clear()
    with override(offline=False, hub_endpoint=hub):
        yield hub
    constants.HF_HUB_OFFLINE = saved


def test_a_signed_in_visitor_pushes_with_their_own_token_into_their_own_namespace(trained_run, reachable_hub,
                                                                                   monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OWNER)  # the owner's token is on the server, and must not be the one sent
    monkeypatch.setenv("SPACE_ID", "owner/symptomgen")
    panel = SharePanel(PageContext.create(RunStore(trained_run.run_dir.parent)))
    token, profile = _signed_in_visitor()
    with pytest.raises(gr.Error, match="Could not push run"):  # the stand-in refuses every token
        panel.push_run(trained_run.run_dir.name, "my-run", True, None, token, profile)
    assert StandInHub.seen, "the push should have reached the stand-in Hub"
    assert all(auth == f"Bearer {SIGNED_IN}" for _, _, auth in StandInHub.seen)
    created = json.loads(next(b for (_, path, _), b in zip(StandInHub.seen, StandInHub.bodies)
                              if path.endswith("/repos/create")))
    assert (created.get("organization"), created["name"]) == ("vera", "my-run")  # vera/my-run

    StandInHub.seen.clear()
    with pytest.raises(gr.Error, match="Could not push run"):  # a typed token wins over the sign-in
        panel.push_run(trained_run.run_dir.name, "team/their-run", True, "hf_typed", token, profile)
    assert {auth for _, _, auth in StandInHub.seen} == {"Bearer hf_typed"}


def test_without_a_sign_in_or_a_token_nothing_reaches_the_hub(trained_run, reachable_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OWNER)
    monkeypatch.setenv("SPACE_ID", "owner/symptomgen")
    panel = SharePanel(PageContext.create(RunStore(trained_run.run_dir.parent)))
    with pytest.raises(gr.Error, match="sign in with Hugging Face or give a write token"):
        panel.push_run(trained_run.run_dir.name, "vera/my-run", True, None, None, None)
    assert StandInHub.seen == []


def _login_buttons(demo: gr.Blocks) -> list:
    return [b for b in demo.blocks.values() if isinstance(b, gr.LoginButton)]


@pytest.fixture
def space_with_oauth(monkeypatch):
    """A stand-in for a Space with ``hf_oauth: true``: the variables Spaces set, also where Gradio read them when
    it was imported (no request to hf.co is made while the page is built)."""
    pytest.importorskip("authlib", reason="Sign in with Hugging Face needs gradio[oauth] (requirements.txt)")
    pytest.importorskip("itsdangerous", reason="Sign in with Hugging Face needs gradio[oauth] (requirements.txt)")
    from gradio import oauth

    values = {"SYSTEM": "spaces", "SPACE_ID": "owner/symptomgen", "OAUTH_CLIENT_ID": "stand-in-client",
              "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile write-repos",
              "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
        if hasattr(oauth, name):
            monkeypatch.setattr(oauth, name, value)
    return values


def test_a_space_with_oauth_offers_sign_in(tmp_path, space_with_oauth):
    assert len(_login_buttons(build_demo(runs_dir=tmp_path / "runs"))) == 1


def test_off_a_space_or_on_one_without_oauth_there_is_no_sign_in(tmp_path, monkeypatch):
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert _login_buttons(build_demo(runs_dir=tmp_path / "runs")) == []
    # A Space without `hf_oauth: true`: Gradio would refuse to build a page holding a LoginButton there.
    monkeypatch.setenv("SPACE_ID", "owner/symptomgen")
    assert _login_buttons(build_demo(runs_dir=tmp_path / "runs")) == []
