"""Fast, honest answers to "can we reach the Hugging Face Hub?".

``from_pretrained``/``load_dataset`` retry for a long time when the network is
down or filtered.  We check reachability once (a TCP connect with a short timeout,
cached for a minute) and fail within seconds with a sentence saying what could
not be reached, so callers can fall back to the bundled sample and ``scratch``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from urllib.parse import urlparse

HUB_TIMEOUT_S = float(os.environ.get("SYMPTOMGEN_HUB_TIMEOUT", "3"))
_CACHE_TTL_S = 60.0
_cache: dict[str, tuple[float, bool]] = {}
_lock = threading.Lock()


class HubUnreachableError(RuntimeError):
    """The Hub could not be reached and the thing asked for is not cached locally."""


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def offline_requested() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE=1``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub opens within ``timeout`` seconds (cached)."""
    if offline_requested():
        return False
    url = urlparse(hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    with _lock:
        hit = _cache.get(host)
        if hit and time.monotonic() - hit[0] < _CACHE_TTL_S:
            return hit[1]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    with _lock:
        _cache[host] = (time.monotonic(), ok)
    return ok


def unreachable_message(what: str) -> str:
    reason = ("offline mode is on (HF_HUB_OFFLINE=1)" if offline_requested()
              else f"{urlparse(hub_endpoint()).hostname} could not be reached")
    return (f"Could not download {what} from the Hugging Face Hub: {reason}. "
            "Use the bundled sample data and the 'scratch' model, or a local folder.")


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
    raw = os.environ.get("SYMPTOMGEN_ALLOWED_MODELS", "")
    return [m.strip() for m in raw.split(",") if m.strip()]


def check_model_allowed(model_id: str) -> None:
    """Raise ValueError when an allow-list is set and ``model_id`` is not on it."""
    allow = allowed_models()
    if not allow:
        return
    ok = any(model_id == a or (a.endswith("/*") and model_id.startswith(a[:-1])) for a in allow)
    if not ok:
        raise ValueError(f"Model '{model_id[:100]}' is not allowed on this server; allowed: {', '.join(allow)}.")
