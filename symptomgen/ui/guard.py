"""The web server's front door: request bodies capped, and the login covering MCP too.

A pure ASGI middleware that the page's FastAPI app runs first (``launch_guard``):

- **Body cap.**  Every request body but a file upload is refused past ``Settings.max_request_bytes`` (1 MB by
  default) with HTTP 413 and one sentence, from its ``Content-Length`` before a byte is read, or while it streams
  when it has none (such a body is buffered up to the cap, never past it).  A 50 MB disease name in a JSON body is
  refused for the cost of its headers, not parsed.
- **MCP behind the login.**  Gradio checks its login on the page's routes and on tool *calls*, but serves MCP's tool
  list and schemas to anyone.  With a login configured, every ``/gradio_api/mcp`` request needs the page's login
  cookie or HTTP Basic credentials of a configured user (what an MCP client can send in a header).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any, Callable

from starlette.middleware import Middleware

UPLOAD_PATHS = ("/gradio_api/upload",)  # multipart file uploads: capped by launch(max_file_size=...) instead
MCP_PREFIX = "/gradio_api/mcp"


class RequestGuard:
    """ASGI middleware: see the module docstring.  ``credentials``: the login's ``(user, password)`` pairs, or
    None when the page has no login."""

    def __init__(self, app: Callable, max_body_bytes: int, credentials: list[tuple[str, str]] | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.credentials = list(credentials or [])

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if self.credentials and path.startswith(MCP_PREFIX) and not self._logged_in(scope):
            return await _refuse(send, 401, "Log in first: this server's MCP tools need the same login as its "
                                            "page (HTTP Basic user:password).",
                                 [(b"www-authenticate", b'Basic realm="SymptomGen"')])
        if path.endswith(UPLOAD_PATHS):
            return await self.app(scope, receive, send)
        limit = self.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _refuse(send, 413, _too_large(limit))
        if length is not None:
            return await self.app(scope, receive, send)
        # No Content-Length (chunked): read up to the cap here, then hand the body on.  Raising from inside the
        # app's own read would not do: FastAPI turns any error while parsing a body into a 400 of its own.
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > limit:
                return await _refuse(send, 413, _too_large(limit))
            if not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _logged_in(self, scope: dict) -> bool:
        app: Any = scope.get("app")
        cookies = _cookies(_header(scope, b"cookie") or "")
        cookie_id = getattr(app, "cookie_id", None)
        tokens = getattr(app, "tokens", {}) or {}
        if cookie_id and any(cookies.get(f"access-token{kind}-{cookie_id}") in tokens
                             for kind in ("", "-unsecure")):
            return True
        auth = _header(scope, b"authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return any(hmac.compare_digest(user, u) & hmac.compare_digest(password, p) for u, p in self.credentials)


def _too_large(limit: int) -> str:
    return (f"The request is larger than this server's {limit // 1024} KB limit for requests (files go through "
            "an upload); send less.")


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _cookies(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            out[key] = value
    return out


async def _refuse(send: Callable, status: int, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def guard_app_kwargs(max_body_bytes: int, credentials: list[tuple[str, str]] | None) -> dict:
    """``launch(app_kwargs=...)`` that installs the guard in front of the page's FastAPI app."""
    return {"middleware": [Middleware(RequestGuard, max_body_bytes=max_body_bytes, credentials=credentials)]}
