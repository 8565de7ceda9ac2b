"""Small pieces shared by the UI tabs: error translation and range-checked inputs.

Handlers raise ``errors.UserError`` subclasses (config validation, data, model
loading, run lookups) and the UI shows each as a ``gr.Error`` carrying that one
sentence, never a traceback; anything else is logged and shown as an internal error.  ``NamedSlider``/``NamedNumber`` reject out-of-range values sent
through the API with a message that names the field.
"""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from ..errors import UserError, first_line, internal_error_line

log = logging.getLogger(__name__)


def to_gr_error(exc: BaseException) -> gr.Error:
    """The one line a visitor sees: a ``UserError``'s own sentence; a file or disk problem in one line; anything
    else (a bug) as a short "internal error" line, with its traceback in the server log."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, UserError):
        return gr.Error(first_line(exc), print_exception=False)
    if isinstance(exc, OSError):
        log.warning("file or disk error in a UI handler", exc_info=exc)
        return gr.Error(f"The server could not read or write a file: {exc.strerror or first_line(exc)}.",
                        print_exception=False)
    log.error("unexpected error in a UI handler", exc_info=exc)
    return gr.Error(internal_error_line(exc), print_exception=False)


def user_errors(fn):
    """Decorate a handler (plain or generator) so its errors reach the page as one-line ``gr.Error``s.

    ``functools.wraps`` keeps the signature, so the API keeps the parameter names.
    """
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise to_gr_error(exc) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise to_gr_error(exc) from None
    return wrapper


def _preprocess_naming_field(component, parent_preprocess, payload):
    """Run the component's own preprocessing; on error, say which field was wrong."""
    try:
        return parent_preprocess(payload)
    except gr.Error as exc:
        raise gr.Error(f"{component.label}: {exc.message}", print_exception=False) from None
    except (TypeError, ValueError):
        raise gr.Error(f"{component.label} must be a number, got {payload!r}.", print_exception=False) from None


# Gradio finds a template component's front end from its first base class, so these subclass the
# Gradio component directly (a mixin placed first breaks the page) and share the logic above.
class NamedSlider(gr.Slider):
    """A slider whose out-of-range error names the field (``is_template``: drawn as a plain slider)."""

    is_template = True

    def preprocess(self, payload):
        return _preprocess_naming_field(self, super().preprocess, payload)


class NamedNumber(gr.Number):
    """A number box whose out-of-range error names the field."""

    is_template = True

    def preprocess(self, payload):
        return _preprocess_naming_field(self, super().preprocess, payload)


def slider(rng: tuple, label: str, *, step: float | None = None, value=None, info: str | None = None,
           elem_id: str | None = None) -> NamedSlider:
    """A slider over a ``(min, max, default)`` range from ``config``."""
    lo, hi, default = rng
    return NamedSlider(minimum=lo, maximum=hi, value=default if value is None else value, step=step, label=label,
                       info=info, elem_id=elem_id)
