"""The Hub going away mid-session: the next check sees it, and loads fail at once with a clear sentence.

The "Hub" here is a listening socket on loopback (``HF_ENDPOINT``) that a test can take away; nothing leaves
the machine.  ``from_pretrained``/``load_dataset`` are guarded so that an online attempt is recorded instead
of made (transformers would otherwise retry for ~50 s before failing).
"""

from __future__ import annotations

import socket

import pytest

from symptomgen import data as data_mod
from symptomgen import hub, modeling
from symptomgen.errors import HubUnreachableError
from symptomgen.hub import hub_reachable, unreachable_message


class LoopbackHub:
    def __init__(self):
        self.port = 0
        self.sock: socket.socket | None = None
        self.up()

    def up(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(8)
        self.port, self.sock = sock.getsockname()[1], sock

    def down(self) -> None:
        self.sock.close()


@pytest.fixture
def loopback_hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # our check must really run (huggingface_hub stays offline)
    monkeypatch.setattr(hub, "_unreachable_since", {})
    server = LoopbackHub()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.port}")
    yield server
    server.down()


@pytest.fixture
def online_attempts(monkeypatch):
    """Record (instead of make) every download attempt: local-only loads run for real."""
    attempts: list[str] = []

    def guard(real):
        def load(source, *args, **kwargs):
            if kwargs.get("local_files_only"):
                return real(source, *args, **kwargs)
            attempts.append(str(source))
            raise OSError("test guard: no downloads in tests")
        return load

    import datasets
    import transformers

    for auto in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(auto, "from_pretrained", guard(auto.from_pretrained))

    monkeypatch.setattr(datasets, "load_dataset", lambda name, *a, **k: attempts.append(name) or pytest.fail("online"))
    return attempts


def test_an_outage_mid_session_is_seen_by_the_next_check(loopback_hub):
    assert hub_reachable()
    assert hub_reachable()  # a success is not cached ...
    loopback_hub.down()
    assert not hub_reachable()  # ... so the outage shows at once, not after a stale "reachable" expires
    assert "127.0.0.1 could not be reached" in unreachable_message("model 'x'")


def test_loads_after_an_outage_fail_with_a_sentence_and_never_try_to_download(loopback_hub, online_attempts):
    # While the Hub is up, an uncached model id goes online (here the guard records it and refuses).
    with pytest.raises(modeling.ModelLoadError, match="Could not load 'someone/symptom-model'"):
        modeling.load_pretrained("someone/symptom-model")
    assert online_attempts == ["someone/symptom-model"]

    loopback_hub.down()
    with pytest.raises(HubUnreachableError, match=r"model 'someone/symptom-model'.*127\.0\.0\.1 could not be "
                                                  r"reached.*'scratch'"):
        modeling.load_pretrained("someone/symptom-model")
    with pytest.raises(HubUnreachableError, match=r"dataset 'someone/diseases'.*could not be reached"):
        data_mod.load_records("someone/diseases")
    assert online_attempts == ["someone/symptom-model"]  # nothing new: both failed on the check


def test_a_failed_check_is_trusted_briefly_then_retried(loopback_hub, monkeypatch):
    loopback_hub.down()
    assert not hub_reachable()
    loopback_hub.up()
    assert not hub_reachable()  # within the window a blackholed Hub does not cost another timeout
    monkeypatch.setattr(hub, "_UNREACHABLE_TTL_S", 0.0)
    assert hub_reachable()  # once it passes, the Hub's return is noticed
