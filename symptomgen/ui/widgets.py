"""Small pieces shared by the UI tabs: error translation, range-checked inputs and the settings' widgets.

Handlers raise ``errors.UserError`` subclasses (config validation, data, model
loading, run lookups) and the UI shows each as a ``gr.Error`` carrying that one
sentence, never a traceback; anything else is logged and shown as an internal error.
``NamedSlider``/``NamedNumber`` reject out-of-range values sent through the API
with a message that names the field.  ``setting_widget`` builds the widget of a
config setting from its metadata (``config.Spec``), so no range is restated here.
"""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from ..config import setting
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


def setting_widget(cls: type, name: str, **overrides):
    """The widget of one setting of a config class, from its metadata: label, help (as ``info``), default,
    and range and step (numbers) or choices.  ``overrides`` go to the component as given (``value`` for a
    preset's value, ``elem_id``, a page-worded ``label``; ``choices`` turns a text setting into a dropdown of
    suggestions that still takes any text)."""
    s = setting(cls, name)
    kw = {"label": s.label, "info": s.help, "value": s.default, **overrides}
    if s.kind == "number":
        bounds = {"minimum": s.min, "maximum": s.max, "step": s.step}
        if s.slider:
            return NamedSlider(**bounds, **kw)
        return NamedNumber(**bounds, precision=0 if s.integer else None, **kw)
    if s.kind == "choice":  # two choices read best as buttons, more as a list
        return (gr.Radio if len(s.choices) <= 2 else gr.Dropdown)(list(s.choices), **kw)
    if s.kind == "switch":
        return gr.Checkbox(**kw)
    if "choices" in kw:
        return gr.Dropdown(allow_custom_value=True, **kw)
    return gr.Textbox(**kw)


def named_parameters(names):
    """Give a ``*values`` handler the parameter names ``names`` as its signature.

    Gradio names an endpoint's API parameters after ``inspect.signature(fn)`` (``utils.get_function_params``),
    and clients call them by keyword, so a handler over a field list built at run time needs these names.
    Apply it below ``user_errors``: ``functools.wraps`` copies ``__signature__`` onto the wrapper.
    """
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])

    def decorate(fn):
        fn.__signature__ = signature
        return fn
    return decorate
