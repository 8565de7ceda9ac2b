"""Loss curves drawn for people: plain HTML and SVG, made on the server and shown by ``gr.HTML``.

Why not Gradio's plots: in Gradio 6.31 ``gr.LinePlot`` fixes its series (colour domain) when the chart is first
built and only swaps the data afterwards, so curves added later (a second or third run on the compare plot) get no
colour and are not drawn; its line mark draws nothing for a series with one point (after epoch 1 the plot looked
empty); its x axis cannot be told to tick whole numbers only (short runs showed epochs 1.5, 2.5).  ``gr.Plot``
with a Vega-Lite chart fixes those but shrinks the chart to zero width while its tab or accordion is hidden and
does not widen it again.  This chart has no script: x positions are percentages of the box (it fits a desktop or
a phone), y positions are pixels, every epoch is a dot with a tooltip, ticks are whole epochs, each run has its
own colour and validation is dashed.  The points travel in the ``data-points`` attribute (``chart_points``).

Toggles (issue 24): a log-scale view, the raw (unsmoothed) step curve, and the learning rate and gradient norm as
extra small charts are all drawn in the HTML, hidden; page checkboxes show them through CSS (``TOGGLES``), so
they work while the chart streams.  ``sparkline`` draws a run's losses per epoch for the runs list.
"""

from __future__ import annotations

import html
import json
import math

import pandas as pd

KINDS = ("train", "validation")
POINT_COLUMNS = ["epoch", "loss", "series", "run", "kind"]
PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4b5563"]
DASH = {"train": "", "validation": "6 4", "constant answer": "6 4"}
SCORE_KINDS = ("taught", "unseen", "constant answer")
"""The Train tab's score chart (``score_chart``): the per-epoch sample's two scores and the constant answer's."""
KIND_COLOURS = {"train": PALETTE[0], "validation": PALETTE[1], "taught": PALETTE[2], "unseen": PALETTE[3],
                "constant answer": "#6b7280"}
MAX_TICKS = 10  # whole-epoch labels on the x axis, at most (a phone has room for about ten)
HEIGHT = 220  # px of the plotting area
X_PAD = 3.0  # % of the width kept free at each end, so the first and last dots are whole


def loss_points(rows) -> pd.DataFrame:
    """``(run, kind, epoch, loss)`` tuples → the chart's long frame (``series`` is "run · kind", or the kind
    alone when ``run`` is empty: the Train tab's one run)."""
    points = [{"epoch": int(e), "loss": float(v), "series": f"{r} · {k}" if r else k, "run": r or "", "kind": k}
              for r, k, e, v in rows if v == v and math.isfinite(float(v))]
    return pd.DataFrame(points, columns=POINT_COLUMNS)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values (steps of 1, 2 or 5 × 10^k) covering ``lo``..``hi``."""
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [round(first + i * step, 10) for i in range(int(math.ceil((hi - first) / step)) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


STEP_COLOUR = "#93c5fd"  # the step curve: a light line under the per-epoch train curve


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """An exponential moving average, debiased (TensorBoard's smoothing): the first points are not pulled to 0."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


class YScale:
    """Loss → pixels from the top of the plotting area, linear or logarithmic, with the tick values to label.

    Linear: round ticks (``nice_ticks``) and the range widened to them.  Log: only positive values count (a loss
    per token is one), ticks are 1, 2 and 5 × 10^k inside the range (its ends when fewer than two fit), and equal
    ratios get equal distances (1 → 10 as far as 10 → 100)."""

    def __init__(self, values, log: bool = False, height: int = HEIGHT):
        self.log, self.height = log, height
        values = [float(v) for v in values if math.isfinite(float(v)) and (float(v) > 0 or not log)]
        lo, hi = (min(values), max(values)) if values else (1.0, 2.0)
        if log:
            if hi <= lo:
                lo, hi = lo / 1.5, hi * 1.5
            self.ticks = log_ticks(lo, hi)
            self.lo, self.hi = math.log10(lo), math.log10(hi)
        else:
            if hi - lo <= 1e-9 * max(abs(hi), 1e-30):  # a flat curve (a constant learning rate): ±10% around it
                pad = abs(hi) * 0.1 or 0.5
                lo, hi = lo - pad, hi + pad
            self.ticks = nice_ticks(lo, hi)
            self.lo, self.hi = min(lo, self.ticks[0]), max(hi, self.ticks[-1])

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return round(6 + (self.height - 12) * (self.hi - t) / ((self.hi - self.lo) or 1.0), 2)

    def shows(self, v: float) -> bool:
        """Whether ``v`` has a place on this scale (a log scale has none for zero or less)."""
        return math.isfinite(v) and (v > 0 or not self.log)


LOG_MANTISSAS = [1, 2, 5]  # a log axis labels 1, 2 and 5 × 10^k


def log_ticks(lo: float, hi: float) -> list[float]:
    """Values 1, 2 and 5 × 10^k between ``lo`` and ``hi`` (both > 0), or those two ends when fewer than two fit;
    at most about six (every other one is dropped past that)."""
    ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
             for m in LOG_MANTISSAS if lo * (1 - 1e-9) <= m * 10.0 ** k <= hi * (1 + 1e-9)]
    while len(ticks) > 6:
        ticks = ticks[::2]
    return ticks if len(ticks) >= 2 else [float(f"{lo:.3g}"), float(f"{hi:.3g}")]


def _step_values(steps) -> list[tuple[float, float, float | None, float | None]]:
    """Step points as ``(epoch, loss, learning_rate, grad_norm)`` (older callers give ``(epoch, loss)``); points
    with a loss that is not finite are left out, a learning rate or norm that is not finite reads as None."""
    out = []
    for point in steps or []:
        e, v, *rest = point
        lr, norm = (list(rest) + [None, None])[:2]
        known = [float(x) if x is not None and math.isfinite(float(x)) else None for x in (lr, norm)]
        if math.isfinite(float(v)):
            out.append((float(e), float(v), *known))
    return out


# The Train tab's and the compare chart's toggles (``chart_toggles``): each sets a data attribute on the page's
# <html> element in the browser, and the page's CSS (``toggle_css``) shows the variant it names.  The chart itself
# draws every variant, the default ones shown and the others with display:none inline, so the toggles work while
# the chart streams (a new chart arrives several times a second during training) without a server round trip, and
# the choice survives each redraw (it lives on <html>, which Gradio never redraws).
TOGGLES = {"smooth": ("Smoothed step curve", True), "log": ("Log scale (loss)", False),
           "lr": ("Learning rate", False), "grad": ("Grad norm", False)}
"""Toggle → (checkbox label, its start value).  "smooth" on is the default view: unticked, it sets ``raw``."""
AUX_TITLES = {"lr": "Learning rate (mean of each window of steps)",
              "grad": "Gradient norm before clipping (mean of each window of steps)"}
AUX_HEIGHT = 90  # px of an extra curve's plotting area


def toggle_attribute(holder: str, toggle: str) -> str:
    """The <html> data attribute that turns ``toggle`` on for the chart inside the element ``#holder``."""
    return f"data-sg-{holder}-{toggle}"


def toggle_js(holder: str, toggle: str) -> str:
    """The checkbox's client-side handler: sets or clears ``toggle_attribute`` (no server call); the smoothing
    box sets ``raw`` when unticked."""
    attr, on = (toggle_attribute(holder, "raw"), "!on") if toggle == "smooth" else \
        (toggle_attribute(holder, toggle), "!!on")
    return f"(on) => {{ document.documentElement.toggleAttribute('{attr}', {on}); return []; }}"


def toggle_css(holders) -> str:
    """The page CSS that shows each chart's variants when its toggle is on (``holders``: the charts' elem ids)."""
    rules = []
    for h in holders:
        on = lambda t, h=h: f"html[{toggle_attribute(h, t)}] #{h}"  # noqa: E731
        rules += [
            f"{on('log')} .sg-lin, {on('raw')} .sg-smooth {{ display: none !important; }}",
            f"{on('log')} g.sg-log, {on('raw')} g.sg-raw, {on('raw')} span.sg-raw {{ display: inline !important; }}",
            f"{on('log')} div.sg-log, {on('lr')} div.sg-aux-lr, {on('grad')} div.sg-aux-grad "
            "{ display: block !important; }",
        ]
    return "\n".join(rules) + "\n"


def loss_chart(points: pd.DataFrame, epochs: int | None = None, title: str = "Loss per token",
               steps=None, log_view: bool = True, aux: dict | None = None) -> str:
    """The chart as an HTML fragment: a line per series with a dot on each epoch; x runs over whole epochs from 1
    to ``epochs`` (default: the last epoch in ``points``).  ``steps``: ``(epoch, loss[, learning_rate,
    grad_norm])`` points within epochs (the training loss every few steps), drawn from epoch 0 smoothed (class
    ``sg-smooth``, shown) and raw (``sg-raw``, hidden).  ``log_view``: the same curves on a log scale too (class
    ``sg-log``, hidden; the linear ones are ``sg-lin``).  ``aux``: extra curves under the chart, hidden until
    toggled, ``{"lr" | "grad": [(label, colour, [(epoch, value), ...]), ...]}``; by default the learning rate
    and gradient norm the ``steps`` carry (none where they carry none).  A one-line note when there is nothing
    to draw yet."""
    steps = _step_values(steps)
    if (points is None or not len(points)) and not steps:
        return f"<div class='sg-chart sg-chart-empty' data-points='[]'><p><b>{html.escape(title)}</b>: the curves " \
               "appear here after the first epoch.</p></div>"
    if points is None:
        points = loss_points([])
    if aux is None:
        aux = {key: [("train", STEP_COLOUR, [(p[0], p[i]) for p in steps if p[i] is not None])]
               for key, i in (("lr", 2), ("grad", 3))}
    first = 0 if steps else 1  # the step curve starts inside epoch 1, at x = 0
    last = max(int(points["epoch"].max()) if len(points) else 1, int(epochs or 0), math.ceil(max(
        (p[0] for p in steps), default=0)), 2)  # a one-epoch chart still spans 1..2
    step = -(-last // MAX_TICKS)
    ticks = list(range(first, last + 1, step))
    raw = [p[1] for p in steps]
    smoothed = smooth(raw)
    values = list(points["loss"]) + smoothed + raw

    def x(e: float) -> str:
        return f"{X_PAD + (100 - 2 * X_PAD) * (e - first) / (last - first):.3f}%"

    runs = list(dict.fromkeys(points["run"]))
    several = any(runs)  # the compare plot: one colour per run; the Train tab: one per kind
    colour = ({r: PALETTE[i % len(PALETTE)] for i, r in enumerate(runs)} if several else {})
    groups = [(name, group.sort_values("epoch")) for name, group in points.groupby("series", sort=False)]

    def view(y: YScale, suffix: str) -> str:
        """Grid, step curves and series on scale ``y``; ``suffix`` ("" or "-log") keeps the class names the
        linear view has always had (``sg-series``, one ``sg-steps``) to the linear view alone."""
        grid = "".join(f"<line x1='0%' x2='100%' y1='{y(t)}' y2='{y(t)}' stroke='#9ca3af' stroke-opacity='0.35'/>"
                       for t in y.ticks)
        out = [grid]
        if steps:
            for kind, curve, hidden in (("smooth", smoothed, ""), ("raw", raw, " style='display:none'")):
                pts = [(e, v) for (e, *_), v in zip(steps, curve) if y.shows(v)]
                segs = "".join(f"<line x1='{x(pts[i][0])}' y1='{y(pts[i][1])}' x2='{x(pts[i + 1][0])}' "
                               f"y2='{y(pts[i + 1][1])}'/>" for i in range(len(pts) - 1))
                if kind == "smooth" and not suffix:  # the one the page and its tests read the points from
                    data = html.escape(json.dumps([[round(e, 4), round(v, 5)] for e, v in pts]))
                    cls = f"sg-steps sg-smooth' data-count='{len(pts)}' data-steps='{data}"
                else:
                    cls = f"sg-steps-{kind}{suffix} sg-{kind}"
                out.append(f"<g class='{cls}'{hidden} stroke='{STEP_COLOUR}' stroke-width='1.5' fill='none'>"
                           f"{segs}</g>")
        for name, group in groups:
            run, kind = group["run"].iloc[0], group["kind"].iloc[0]
            c = colour.get(run) if several else KIND_COLOURS.get(kind, PALETTE[0])
            dash = f" stroke-dasharray='{DASH.get(kind, '')}'" if DASH.get(kind) else ""
            pts = [(a, b) for a, b in zip(group["epoch"], group["loss"]) if y.shows(b)]
            segs = "".join(f"<line x1='{x(pts[i][0])}' y1='{y(pts[i][1])}' x2='{x(pts[i + 1][0])}' "
                           f"y2='{y(pts[i + 1][1])}'{dash}/>" for i in range(len(pts) - 1))
            dots = "".join(f"<circle cx='{x(a)}' cy='{y(b)}' r='3.5' fill='{c}'><title>{html.escape(str(name))}, "
                           f"epoch {a}: {b:.4f}</title></circle>" for a, b in pts)
            out.append(f"<g class='sg-series{suffix}' data-series='{html.escape(str(name), quote=True)}' "
                       f"stroke='{c}' stroke-width='2' fill='none'>{segs}{dots}</g>")
        return "".join(out)

    def ylabels(y: YScale) -> str:
        return "".join(f"<span style='position:absolute;right:6px;top:{y(t) - 8}px;font-size:11px'>{_fmt(t)}</span>"
                       for t in y.ticks)

    lin = YScale(values)
    log = YScale(values, log=True) if log_view else None
    hide = " style='display:none'"
    if log is None:
        svg_body, labels = view(lin, ""), (f"<div class='sg-y-labels' style='position:relative;width:44px;"
                                           f"flex:none;height:{HEIGHT}px'>{ylabels(lin)}</div>")
    else:
        svg_body = f"<g class='sg-lin'>{view(lin, '')}</g><g class='sg-log'{hide}>{view(log, '-log')}</g>"
        box = f"position:relative;width:44px;flex:none;height:{HEIGHT}px"
        labels = (f"<div class='sg-y-labels sg-lin' style='{box}'>{ylabels(lin)}</div>"
                  f"<div class='sg-y-labels-log sg-log' style='{box};display:none'>{ylabels(log)}</div>")
    legend = []
    if steps:
        legend.append(_swatch(STEP_COLOUR, "train", "train, every few steps",
                              "<span class='sg-smooth'>&nbsp;(smoothed)</span>"))
    if several:
        legend += [_swatch(colour[r], "train", r) for r in runs] + [_swatch("#6b7280", k, k) for k in KINDS]
    else:
        legend += [_swatch(KIND_COLOURS.get(g["kind"].iloc[0], PALETTE[0]), g["kind"].iloc[0], g["kind"].iloc[0])
                   for _, g in groups]
    xlabels = "".join(f"<span style='position:absolute;left:{x(t)};transform:translateX(-50%);font-size:11px'>"
                      f"{t}</span>" for t in ticks)
    extras = "".join(_aux_chart(key, curves, x) for key, curves in aux.items() if key in AUX_TITLES)
    data = html.escape(json.dumps(points[POINT_COLUMNS].to_dict(orient="records")), quote=True)
    return (f"<div class='sg-chart' data-points='{data}' style='width:100%'>"
            f"<div style='font-size:13px;margin:0 0 4px 0'><b>{html.escape(title)}</b></div>"
            f"<div style='display:flex;align-items:stretch'>{labels}"
            f"<div style='position:relative;flex:1;min-width:0'>"
            f"<svg class='sg-plot' width='100%' height='{HEIGHT}' style='display:block;overflow:visible' "
            f"role='img' aria-label='{html.escape(title, quote=True)}'>{svg_body}</svg>"
            f"<div class='sg-x-labels' style='position:relative;height:16px;margin-top:2px'>{xlabels}</div>"
            f"<div style='text-align:center;font-size:11px'>epoch</div></div></div>"
            f"<div class='sg-legend' style='display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0 0 44px;"
            f"font-size:11px'>{''.join(legend)}</div>{extras}</div>")


def _aux_chart(key: str, curves, x) -> str:
    """One extra curve's small chart (``sg-aux-<key>``, hidden until toggled), on the loss chart's x positions:
    its own linear y axis, a line per ``(label, colour, points)``; a one-line note when no curve has a point."""
    title = AUX_TITLES[key]
    curves = [(label, c, [(float(e), float(v)) for e, v in pts if v is not None and math.isfinite(float(v))])
              for label, c, pts in curves]
    curves = [cv for cv in curves if cv[2]]
    head = f"<div class='sg-aux sg-aux-{key}' style='display:none;margin-top:10px'>" \
           f"<div style='font-size:12px;margin:0 0 2px 44px'><b>{html.escape(title)}</b></div>"
    if not curves:
        return head + "<p style='margin-left:44px;font-size:12px'>Not recorded for this run.</p></div>"
    y = YScale([v for _, _, pts in curves for _, v in pts], height=AUX_HEIGHT)
    grid = "".join(f"<line x1='0%' x2='100%' y1='{y(t)}' y2='{y(t)}' stroke='#9ca3af' stroke-opacity='0.35'/>"
                   for t in y.ticks)
    lines = []
    for label, c, pts in curves:
        segs = "".join(f"<line x1='{x(pts[i][0])}' y1='{y(pts[i][1])}' x2='{x(pts[i + 1][0])}' "
                       f"y2='{y(pts[i + 1][1])}'/>" for i in range(len(pts) - 1))
        dot = "" if len(pts) > 1 else f"<circle cx='{x(pts[0][0])}' cy='{y(pts[0][1])}' r='3' fill='{c}'/>"
        lines.append(f"<g class='sg-aux-series' data-series='{html.escape(str(label), quote=True)}' "
                     f"data-count='{len(pts)}' stroke='{c}' stroke-width='1.5' fill='none'>{segs}{dot}"
                     f"<title>{html.escape(str(label))}: {_fmt(pts[-1][1])} at epoch {pts[-1][0]:.2f}</title></g>")
    labels = "".join(f"<span style='position:absolute;right:6px;top:{y(t) - 8}px;font-size:10px'>{_fmt(t)}</span>"
                     for t in y.ticks)
    return (head + f"<div style='display:flex;align-items:stretch'>"
            f"<div style='position:relative;width:44px;flex:none;height:{AUX_HEIGHT}px'>{labels}</div>"
            f"<svg class='sg-aux-plot' data-aux='{key}' width='100%' height='{AUX_HEIGHT}' "
            f"style='display:block;overflow:visible;flex:1;min-width:0' role='img' "
            f"aria-label='{html.escape(title, quote=True)}'>{grid}{''.join(lines)}</svg></div></div>")


def score_chart(rows, epochs: int | None = None, metric: str = "score (phrase F1 or ROUGE-L)") -> str:
    """The per-epoch generation scores as a chart like ``loss_chart``'s: ``(kind, epoch, score)`` rows, ``kind`` one
    of ``SCORE_KINDS`` (the constant answer's is drawn dashed: the line to beat).  Its points' ``loss`` column holds
    the score."""
    points = loss_points([("", kind, e, v) for kind, e, v in rows if v is not None])
    return loss_chart(points, epochs=epochs, title=f"Greedy {metric} on the per-epoch sample (dashed: a constant "
                                                   "answer)", log_view=False, aux={})


def _swatch(colour: str, kind: str, label: str, after: str = "") -> str:
    """A legend entry: a line in the series' colour and dash, its label (escaped), then ``after`` (markup)."""
    dash = f" stroke-dasharray='{DASH[kind]}'" if DASH.get(kind) else ""
    return (f"<span style='display:inline-flex;align-items:center;gap:4px'><svg width='26' height='8'>"
            f"<line x1='1' y1='4' x2='25' y2='4' stroke='{colour}' stroke-width='2'{dash}/></svg>"
            f"{html.escape(str(label))}{after}</span>")


def chart_points(value: str | None) -> pd.DataFrame:
    """The points inside a chart (its ``data-points``), as a frame with ``POINT_COLUMNS``."""
    import re

    found = re.search(r"data-points='([^']*)'", value or "")
    rows = json.loads(html.unescape(found.group(1))) if found else []
    return pd.DataFrame(rows, columns=POINT_COLUMNS)


SPARK_W, SPARK_H = 120, 28  # px of a sparkline


def sparkline(train, validation, label: str = "") -> str:
    """A run's losses per epoch as a small inline SVG for the runs list: validation solid (the line that says
    whether the run learned), train light; ``train``/``validation`` are ``(epoch, loss)`` pairs (values that are
    not finite numbers are left out).  ``label`` (the run's name: text from a run folder) is escaped into the
    tooltip.  A dash when there is nothing to draw."""
    def clean(pairs):
        out = []
        for e, v in pairs or []:
            try:
                e, v = float(e), float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(e) and math.isfinite(v):
                out.append((e, v))
        return sorted(out)[:MAX_SPARK_POINTS]

    train, validation = clean(train), clean(validation)
    both = train + validation
    if not both:
        return "<span class='sg-spark-empty'>–</span>"
    e_lo, e_hi = min(e for e, _ in both), max(e for e, _ in both)
    v_lo, v_hi = min(v for _, v in both), max(v for _, v in both)

    def pt(e: float, v: float) -> tuple[str, str]:
        px = 2 + (SPARK_W - 4) * ((e - e_lo) / (e_hi - e_lo) if e_hi > e_lo else 0.5)
        py = 2 + (SPARK_H - 4) * ((v_hi - v) / (v_hi - v_lo) if v_hi > v_lo else 0.5)
        return f"{px:.1f}", f"{py:.1f}"

    def line(pairs, colour: str, width: float) -> str:
        if len(pairs) == 1:
            cx, cy = pt(*pairs[0])
            return f"<circle cx='{cx}' cy='{cy}' r='2' fill='{colour}'/>"
        points = " ".join(",".join(pt(e, v)) for e, v in pairs)
        return f"<polyline points='{points}' fill='none' stroke='{colour}' stroke-width='{width}'/>" if pairs else ""

    last = validation[-1] if validation else train[-1]
    best = min(v for _, v in validation) if validation else None
    tip = f"{label}: " if label else ""
    tip += (f"validation loss {validation[0][1]:.3f} → {last[1]:.3f} (best {best:.3f}) over {len(validation)} "
            "epoch(s)" if validation else f"train loss {train[0][1]:.3f} → {last[1]:.3f}")
    return (f"<svg class='sg-spark' width='{SPARK_W}' height='{SPARK_H}' role='img' "
            f"aria-label='{html.escape(tip, quote=True)}'><title>{html.escape(tip)}</title>"
            f"{line(train, STEP_COLOUR, 1.2)}{line(validation, KIND_COLOURS['validation'], 1.8)}</svg>")


MAX_SPARK_POINTS = 500  # epochs drawn per sparkline (an imported run's metrics.csv could hold any number)
