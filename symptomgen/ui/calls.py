"""What every call must satisfy before a handler runs: enough values of the right kind, bounded lists, and a fair
share of the heavy queue for each visitor.

* ``check_call_values(demo)``: a call with too few values, or a file that was never uploaded (or is not a file at
  all), is refused in one sentence naming the endpoint or the field; Gradio's own refusals say nothing to a client
  unless the server shows every error (which would show paths too).
* ``bounded_names(values, most, what)``: a list argument deduplicated (order kept) and capped, before any work.
* ``VisitorLimit``: checked when a call is submitted, before it joins the queue: a visitor
  (session, and client address) with ``per_session`` calls of the group already waiting or running is refused in
  one sentence, so one client's flood never fills the queue that Stop, attach and other visitors share.
"""

from __future__ import annotations

import typing

import gradio as gr

from ..errors import InvalidInput

PER_SESSION = 2  # heavy calls one visitor (a browser tab, a gradio_client) may have waiting or running
# The same from one network address, however many sessions it opens.  Generous: behind a proxy (a Space) many
# visitors share one address; it only stops one script's many sessions from filling the queue (64) alone.
PER_ADDRESS = 16


def bounded_names(values, most: int, what: str) -> list[str]:
    """``values`` (a list of names, or one name) without repeats, in order; ``InvalidInput`` past ``most``.
    Cheap whatever the caller sent: a set lookup per item, and it stops at the first name past the cap."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise InvalidInput(f"The {what} must be a list of names, got {type(values).__name__}.")
    seen: dict[str, None] = {}
    for v in values:
        if not isinstance(v, str):
            raise InvalidInput(f"The {what} must be names (text), got {type(v).__name__}.")
        seen.setdefault(v, None)
        if len(seen) > most:
            raise InvalidInput(f"At most {most} {what} at once; {len(seen)} or more different ones were given.")
    return list(seen)


def _endpoint(block_fn) -> str:
    return f"/{block_fn.api_name}" if block_fn.api_name else "this event"


def check_call_values(demo: gr.Blocks) -> None:
    """Make ``demo`` refuse, in one sentence, a call with too few values or with a file that is not an upload."""
    original = demo.preprocess_data

    async def preprocess_data(block_fn, inputs, state, explicit_call: bool = False):
        if len(inputs) < len(block_fn.inputs):
            raise gr.Error(f"{_endpoint(block_fn)} takes {len(block_fn.inputs)} value(s); this call sent "
                           f"{len(inputs)}.", print_exception=False)
        for block, value in zip(block_fn.inputs, inputs):
            if isinstance(block, gr.File) and value is not None and not (
                    isinstance(value, dict) and isinstance(value.get("path"), str)):
                raise gr.Error(f"The field '{block.label}' must be a file uploaded to this server "
                               "(gradio_client's handle_file), not text or a number.", print_exception=False)
        try:
            return await original(block_fn, inputs, state, explicit_call)
        except gr.Error as exc:
            raise _short_choice_refusal(exc, block_fn, inputs) from None
        except Exception as exc:  # noqa: BLE001 - Gradio's refusal names server paths; ours names the field
            files = [b.label for b in block_fn.inputs if isinstance(b, gr.File)]
            if files and ("upload" in str(exc).lower() or "cache" in str(exc).lower()):
                raise gr.Error(f"The file given as '{files[0]}' was never uploaded to this server: upload it first "
                               "(gradio_client's handle_file).", print_exception=False) from None
            raise gr.Error(f"A value sent to {_endpoint(block_fn)} is not of the kind its field takes "
                           f"({type(exc).__name__}).", print_exception=False) from None

    demo.preprocess_data = preprocess_data


def _short_choice_refusal(exc: gr.Error, block_fn, inputs) -> gr.Error:
    """Gradio's refusal of a value outside a list's choices ("Value: … is not in the list of choices: …") repeats
    the value and every choice, however long (a 1000-item list gave 10 kB): one sentence naming the field instead.
    Any other error is returned as it is."""
    message = str(getattr(exc, "message", exc))
    if not (message.startswith("Value: ") and "is not in the list of choices" in message):
        return exc
    for block, value in zip(block_fn.inputs, inputs):
        if isinstance(block, (gr.Radio, gr.Dropdown)) and value is not None and str(value)[:40] in message:
            allowed = [c[1] if isinstance(c, tuple) else c for c in (block.choices or [])]
            names = ", ".join(str(c) for c in allowed[:8]) + (", …" if len(allowed) > 8 else "")
            return gr.Error(f"The field '{block.label}' takes one of: {names}.", print_exception=False)
    return gr.Error(f"A value sent to {_endpoint(block_fn)} is not one of its field's choices.",
                    print_exception=False)


class VisitorLimit:
    """Refuse a visitor's call of the concurrency ``groups`` while they already have ``per_session`` of them waiting
    or running (``per_address`` from one address), at submission, before it joins the queue.  Counted from the
    queue's own record of live events, so a cancelled or finished call frees its place at once and nothing can
    leak.  ``install(demo)`` wraps the demo's queue (call after ``demo.queue()``)."""

    def __init__(self, groups: typing.Iterable[str], per_session: int = PER_SESSION, per_address: int = PER_ADDRESS):
        self.groups, self.per_session, self.per_address = frozenset(groups), per_session, per_address

    def in_flight(self, queue, session: str | None, address: str | None) -> tuple[int, int]:
        mine = [e for e in list(queue.event_ids_to_events.values()) if e.concurrency_id in self.groups]
        by_session = sum(1 for e in mine if session and e.session_hash == session)
        by_address = sum(1 for e in mine if address and _address(e.request) == address)
        return by_session, by_address

    def refusal(self, queue, session: str | None, address: str | None) -> str | None:
        by_session, by_address = self.in_flight(queue, session, address)
        if by_session >= self.per_session:
            return (f"You already have {by_session} generations waiting or running; wait for one to finish "
                    "before asking for another.")
        if by_address >= self.per_address:
            return (f"Your address already has {by_address} generations waiting or running; wait for one to "
                    "finish before asking for another.")
        return None

    def install(self, demo: gr.Blocks) -> None:
        queue = demo._queue  # Gradio 6: made by Blocks() and queue(); push() is where a call joins it
        original = queue.push

        async def push(body, request, username):
            fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
            if fn is not None and fn.concurrency_id in self.groups:
                why = self.refusal(queue, body.session_hash, _address(request))
                if why:
                    name = fn.inputs[0].label if fn.inputs else "call"
                    # As a validator's refusal: HTTP 422, and gradio_client raises ValidationError with the sentence.
                    return False, [{"__type__": "validate", "is_valid": False, "message": why,
                                    "parameter_name": name}], "validator_error"
            return await original(body, request, username)

        queue.push = push


def _address(request) -> str | None:
    return getattr(getattr(request, "client", None), "host", None)
