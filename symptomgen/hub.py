"""Fast, honest answers to "can we reach the Hugging Face Hub?".

``from_pretrained``/``load_dataset`` retry for a long time when the network is
down or filtered (48 s for one tokenizer here, with DNS failing at once).  We check
reachability before going online (a TCP connect with a short timeout) and fail within
seconds with a sentence saying what could not be reached, so callers can fall back to
the bundled sample and ``scratch``.

Only a failed check is remembered, briefly (a filtered network costs the full timeout
per check).  A successful one is not: the Hub can go away mid-session, and a stale
"reachable" would send the next load into those long retries.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlparse

from .errors import InvalidInput
from .settings import current

_UNREACHABLE_TTL_S = 15.0  # how long a failed check is trusted before trying again
_unreachable_since: dict[tuple[str, int], float] = {}
_lock = threading.Lock()



def hub_endpoint() -> str:
    return current().hub_endpoint


def offline_requested() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE=1``)."""
    return current().offline


def hub_reachable(timeout: float | None = None) -> bool:
    """Whether a TCP connection to the Hub opens within ``timeout`` seconds (default: the ``hub_timeout_s``
    setting); a failure is cached briefly."""
    if offline_requested():
        return False
    timeout = current().hub_timeout_s if timeout is None else timeout
    url = urlparse(hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    with _lock:
        failed_at = _unreachable_since.get((host, port))
        if failed_at is not None and time.monotonic() - failed_at < _UNREACHABLE_TTL_S:
            return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    with _lock:
        if ok:
            _unreachable_since.pop((host, port), None)
        else:
            _unreachable_since[(host, port)] = time.monotonic()
    return ok


def unreachable_reason() -> str:
    """Why the Hub cannot be used, in a few words: ``offline mode is on (HF_HUB_OFFLINE=1)`` or the host."""
    return ("offline mode is on (HF_HUB_OFFLINE=1)" if offline_requested()
            else f"{urlparse(hub_endpoint()).hostname} could not be reached")


def unreachable_message(what: str) -> str:
    reason = unreachable_reason()
    return (f"Could not download {what} from the Hugging Face Hub: {reason}. "
            "Use the bundled sample data and the 'scratch' model, or a local folder.")


def model_cached(model_id: str) -> bool:
    """Whether a Hub model's config is in the local Hugging Face cache (so it may load without the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - not a valid id, no cache folder: not cached
        return False


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` or a bare model name, not a filesystem path."""
    text = text.strip()
    if not text or text.startswith((".", "/", "~")) or "\\" in text or ".." in text:
        return False
    parts = text.split("/")
    return len(parts) <= 2 and all(p and all(c.isalnum() or c in "-_." for c in p) for p in parts)


def allowed_models() -> list[str]:
    """Hub ids a public deployment permits (``SYMPTOMGEN_ALLOWED_MODELS``, comma-separated, ``owner/*`` ok).

    Empty means any Hub id is allowed.
    """
    return list(current().allowed_models)


def check_model_allowed(model_id: str) -> None:
    """Raise ``InvalidInput`` when an allow-list is set and ``model_id`` is not on it."""
    allow = allowed_models()
    if not allow:
        return
    ok = any(model_id == a or (a.endswith("/*") and model_id.startswith(a[:-1])) for a in allow)
    if not ok:
        raise InvalidInput(f"Model '{model_id[:100]}' is not allowed on this server; allowed: {', '.join(allow)}.")
