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
import types
import typing

import gradio as gr

from ..config import setting, shown
from ..errors import InvalidInput, UserError, first_line, internal_error_line

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
            except Exception as exc:  # noqa: BLE001 - any library error becomes one sentence
                raise to_gr_error(exc) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any library error becomes one sentence
            raise to_gr_error(exc) from None
    return wrapper


def _preprocess_naming_field(component, parent_preprocess, payload):
    """Run the component's own preprocessing; on error, say which field was wrong."""
    try:
        return parent_preprocess(payload)
    except gr.Error as exc:
        raise gr.Error(f"{component.label}: {exc.message}", print_exception=False) from None
    except (TypeError, ValueError):
        raise gr.Error(f"{component.label} must be a number, got {shown(payload)}.", print_exception=False) from None


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


class ListedChoices(gr.Dropdown):
    """A dropdown that lets a person pick only from its list (``allow_custom_value=False`` on the page, so Enter
    after a half-typed name adds nothing), while API clients may send any value (the handler checks it and says
    what is wrong).  Gradio's own check would test a client's value against the choices the page was built with,
    which are filled in later (runs, a file's columns)."""

    is_template = True  # drawn by Gradio's dropdown; allow_custom_value keeps its default, False

    def preprocess(self, payload):
        return payload  # the handler validates names; the page could only send listed ones


def setting_widget(cls: type, name: str, *, radio: bool | None = None, **overrides):
    """The widget of one setting of a config class, from its metadata: label, help (as ``info``), default,
    and range and step (numbers) or choices.  ``overrides`` go to the component as given (``value`` for a
    preset's value, ``elem_id``, a page-worded ``label``; ``choices`` turns a text setting into a dropdown of
    suggestions that still takes any text).  ``radio`` shows a choice as buttons (True) or a list (False);
    by default two choices are buttons and more are a list."""
    s = setting(cls, name)
    kw = {"label": s.label, "info": s.help, "value": s.default, **overrides}
    if s.kind == "number":
        bounds = {"minimum": s.min, "maximum": s.max, "step": s.step}
        if s.slider:
            return NamedSlider(**bounds, **kw)
        return NamedNumber(**bounds, precision=0 if s.integer else None, **kw)
    if s.kind == "choice":  # two choices read best as buttons, more as a list
        buttons = len(s.choices) <= 2 if radio is None else radio
        return (gr.Radio if buttons else gr.Dropdown)(list(s.choices), **kw)
    if s.kind == "switch":
        return gr.Checkbox(**kw)
    if "choices" in kw:
        return gr.Dropdown(allow_custom_value=True, **kw)
    return gr.Textbox(**kw)


def named_parameters(names, annotations=None, method: bool = False):
    """Give a ``*values`` handler the parameter names ``names`` as its signature (with ``annotations[name]`` as
    the type where given, for ``checked_types``); ``method``: a method's, ``self`` first (bound, it is dropped).

    Gradio names an endpoint's API parameters after ``inspect.signature(fn)`` (``utils.get_function_params``),
    and clients call them by keyword, so a handler over a field list built at run time needs these names.
    Apply it below ``user_errors``: ``functools.wraps`` copies ``__signature__`` onto the wrapper.
    """
    annotations = annotations or {}
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                     annotation=annotations.get(n, inspect.Parameter.empty))
                                   for n in (("self",) if method else ()) + tuple(names)])

    def decorate(fn):
        fn.__signature__ = signature
        return fn
    return decorate


# What an API caller may send for each annotation of a handler's parameter (``checked_types``).
_KINDS = {str: ((str,), "text"), float: ((int, float), "a number"), int: ((int, float), "a number"),
          bool: ((bool,), "true or false")}


def _expected(annotation) -> tuple[tuple[type, ...], str, bool] | None:
    """(accepted types, words for them, None accepted) for ``str``/``float``/``int``/``bool``/``list[str]``, each
    optionally ``| None``; None for any other annotation (not checked here)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _expected(rest[0]) if len(rest) == 1 else None
        return None if inner is None else (inner[0], inner[1], True)
    if typing.get_origin(annotation) is list and args == (str,):
        return (list,), "a list of text", False
    if annotation in _KINDS:
        accepted, words = _KINDS[annotation]
        return accepted, words, False
    return None


def _wrong(value, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in accepted:
        return True  # True is an int to Python, not a number to a person
    if not isinstance(value, accepted):
        return True
    return isinstance(value, list) and not all(isinstance(v, str) for v in value)


def checked_types(fn):
    """Refuse arguments of the wrong type before the handler runs, in one sentence naming the field (an API caller
    can send a list where the page sends text).  The types come from the handler's annotations (``str``,
    ``float``, ``int``, ``bool``, ``list[str]``, each optionally ``| None``); other parameters are not checked.
    Apply below ``user_errors``, which shows the ``InvalidInput`` as the page's error line."""
    signature = inspect.signature(fn, eval_str=True)  # follows __wrapped__ and honours __signature__
    expected = {n: e for n, p in signature.parameters.items() if (e := _expected(p.annotation)) is not None}

    def check(args, kwargs) -> None:
        for name, value in signature.bind_partial(*args, **kwargs).arguments.items():
            if name not in expected:
                continue
            accepted, words, optional = expected[name]
            if value is None and optional:
                continue
            if value is None or _wrong(value, accepted):
                shown = "nothing" if value is None else type(value).__name__
                if isinstance(value, list) and list in accepted:
                    shown = "a list holding " + next(type(v).__name__ for v in value if not isinstance(v, str))
                raise InvalidInput(f"The field '{name}' must be {words}, got {shown}.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            check(args, kwargs)
            yield from fn(*args, **kwargs)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        check(args, kwargs)
        return fn(*args, **kwargs)
    return wrapper


# -- presets ----------------------------------------------------------------------------------------------------
CUSTOM, CUSTOM_LABEL = "custom", "Custom (changed by hand)"


def preset_named(presets: typing.Mapping[str, object], fields, values) -> str:
    """The key of the preset whose ``fields`` hold ``values`` (widget values, in ``fields`` order), or ``CUSTOM``."""
    shown = dict(zip(fields, values))
    for key, preset in presets.items():
        if all(shown[f] == getattr(preset, f) for f in fields):
            return key
    return CUSTOM


def link_preset(preset: gr.Dropdown, knobs: list, presets: typing.Mapping[str, object], fields) -> None:
    """Choosing a preset sets the knobs; a knob moved by hand makes the dropdown name the preset the knobs now
    show, "Custom" once they match none (so it never names values it does not hold)."""
    preset.change(lambda p: [gr.skip() if p not in presets else getattr(presets[p], f) for f in fields],
                  inputs=preset, outputs=knobs, api_visibility="private", show_progress="hidden")
    for knob in knobs:
        knob.input(lambda *values: preset_named(presets, fields, values), inputs=knobs, outputs=preset,
                   api_visibility="private", show_progress="hidden")


def chart_toggles(holder: str, toggles=("smooth", "log", "lr", "grad")) -> list[gr.Checkbox]:
    """A row of checkboxes that switch the views of the chart inside ``#holder`` (``charts.TOGGLES``): each
    runs in the browser only (``js=``, no server call), so it works while the chart streams."""
    from .charts import TOGGLES, toggle_js

    boxes = []
    with gr.Row(elem_classes="sg-chart-toggles"):
        for t in toggles:
            label, value = TOGGLES[t]
            box = gr.Checkbox(value, label=label, elem_id=f"{holder}-{t}", container=False, min_width=120)
            box.change(None, inputs=box, js=toggle_js(holder, t), api_visibility="private", queue=False,
                       show_progress="hidden")
            boxes.append(box)
    return boxes
