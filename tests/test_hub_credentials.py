"""The owner's Hub token serves only the owner; the login covers MCP; request bodies are capped.

A stand-in Hub on 127.0.0.1 records every request the server sends it (method, path, Authorization), so the tests
see exactly which token, if any, acted for an anonymous visitor of the page while the server has ``HF_TOKEN``.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from conftest import StandInHub, launch
from gradio_client import Client
from gradio_client.exceptions import AppError

from symptomgen.settings import override
from symptomgen.share import visitor_token
from symptomgen.ui import build_demo

OWNER = "hf_owner_secret_token_0123456789"
VISITOR = "hf_visitor_token_abcdef"


@pytest.fixture(scope="module")
def page(trained_run, hub):
    """The page, launched as ``python app.py`` launches it (no login), on a server whose owner has ``HF_TOKEN``
    and can reach the stand-in Hub."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False  # conftest's HF_HUB_OFFLINE=1, read by huggingface_hub at import
    with override(offline=False, hub_endpoint=hub):
        demo = build_demo(runs_dir=trained_run.run_dir.parent)
        url = launch(demo)
        yield url, Client(url, verbose=False)
        demo.close()
    constants.HF_HUB_OFFLINE = saved


def test_an_anonymous_push_is_refused_and_never_reaches_the_hub(page, trained_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OWNER)
    StandInHub.seen.clear()
    with pytest.raises(AppError, match="No Hugging Face token: sign in with Hugging Face or give a write token"):
        page[1].predict(run_id=trained_run.run_dir.name, repo_id="victim-org/important-model", private=False,
                        api_name="/push_run")
    assert StandInHub.seen == []  # not one request: no repo created, no commit sent


def test_a_push_acts_with_the_visitors_own_token_only(page, trained_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OWNER)
    StandInHub.seen.clear()
    with pytest.raises(AppError, match="Could not push run"):  # the stand-in refuses the visitor's token
        page[1].predict(run_id=trained_run.run_dir.name, repo_id="me/my-run", private=True, typed_token=VISITOR,
                        api_name="/push_run")
    assert StandInHub.seen, "the push should have reached the stand-in Hub"
    assert all(auth == f"Bearer {VISITOR}" for _, _, auth in StandInHub.seen)


def test_an_anonymous_import_of_a_private_repo_is_refused_without_the_owners_token(page, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OWNER)
    StandInHub.seen.clear()
    with pytest.raises(AppError, match="Could not download run 'owner/private-repo'") as err:
        page[1].predict(upload=None, hub_id="owner/private-repo", api_name="/import_run")
    assert OWNER not in str(err.value)
    assert StandInHub.seen, "the import should have asked the stand-in Hub"
    assert not any(OWNER in auth for _, _, auth in StandInHub.seen)
    assert all(auth == "" for _, _, auth in StandInHub.seen)  # anonymous


def test_the_owners_token_is_lent_only_behind_a_login_and_an_opt_in(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OWNER)
    assert visitor_token(VISITOR, None) == VISITOR and visitor_token("", "hf_signed_in") == "hf_signed_in"
    with override(auth="", lend_hub_token=True):
        assert visitor_token("", None) is None  # no login: every visitor is a stranger
    with override(auth="ann:secret", lend_hub_token=False):
        assert visitor_token(None, None) is None
    with override(auth="ann:secret", lend_hub_token=True):
        assert visitor_token(None, None) == OWNER


def test_a_request_body_over_the_cap_is_refused_in_one_sentence_and_the_server_stays_up(page):
    import http.client
    from urllib.parse import urlparse

    url = urlparse(page[0])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest("POST", "/gradio_api/queue/join")  # a 50 MB disease name: refused on its headers alone
    conn.putheader("content-type", "application/json")
    conn.putheader("content-length", str(50 << 20))
    conn.endheaders()
    conn.send(b'{"data": ["' + b"x" * 4096)
    answer = conn.getresponse()
    assert answer.status == 413
    assert "larger than this server's 1024 KB limit" in json.loads(answer.read())["error"]
    conn.close()
    chunked = http.client.HTTPConnection(url.hostname, url.port, timeout=10)  # no Content-Length: counted as read
    chunked.request("POST", "/gradio_api/queue/join", body=iter([b"x" * (256 << 10)] * 8),
                    headers={"content-type": "application/json"}, encode_chunked=True)
    assert chunked.getresponse().status == 413
    chunked.close()
    with urllib.request.urlopen(page[0] + "config", timeout=10) as answer:  # still serving
        assert answer.status == 200


def test_with_a_login_mcp_tool_list_and_schemas_need_credentials(tmp_path):
    demo = build_demo(runs_dir=tmp_path / "runs")
    url = launch(demo, auth=[("ann", "secret")], mcp_server=True)
    try:
        schema = url + "gradio_api/mcp/schema"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(schema, timeout=10)
        assert err.value.code == 401 and "Log in first" in json.loads(err.value.read())["error"]
        listing = urllib.request.Request(url + "gradio_api/mcp/", method="POST",
                                         data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode(),
                                         headers={"content-type": "application/json",
                                                  "accept": "application/json, text/event-stream"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(listing, timeout=10)
        assert err.value.code == 401
        wrong = urllib.request.Request(schema, headers={"authorization": "Basic "
                                                        + base64.b64encode(b"ann:wrong").decode()})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(wrong, timeout=10)
        assert err.value.code == 401
        right = urllib.request.Request(schema, headers={"authorization": "Basic "
                                                        + base64.b64encode(b"ann:secret").decode()})
        with urllib.request.urlopen(right, timeout=10) as answer:
            assert answer.status == 200 and "generate_symptoms" in answer.read().decode()
    finally:
        demo.close()


def test_text_from_an_imported_run_reaches_the_model_card_escaped(trained_run, tmp_path):
    import shutil

    from symptomgen.card import write_model_card

    run = tmp_path / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, run)
    record = json.loads((run / "config.json").read_text())
    record["device"] = "<img src=x onerror=alert(1)>"
    record["data"]["target_column"] = "Symptoms` <b>bold</b>"
    record["train"]["scheduler"] = '<a href="javascript:alert(1)">click</a> | x'
    (run / "config.json").write_text(json.dumps(record))
    card = write_model_card(run)
    assert "<img" not in card and "<a href" not in card and "&lt;img src=x" in card
    assert "`Symptoms' <b>bold</b>`" in card  # inside a code span: shown literally, and no backtick escapes it
