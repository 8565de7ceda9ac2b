"""Loss curves drawn for people: plain HTML and SVG, made on the server and shown by ``gr.HTML``.

Why not Gradio's plots: in Gradio 6.31 ``gr.LinePlot`` fixes its series (colour domain) when the chart is first
built and only swaps the data afterwards, so curves added later (a second or third run on the compare plot) get no
colour and are not drawn; its line mark draws nothing for a series with one point (after epoch 1 the plot looked
empty); its x axis cannot be told to tick whole numbers only (short runs showed epochs 1.5, 2.5).  ``gr.Plot``
with a Vega-Lite chart fixes those but shrinks the chart to zero width while its tab or accordion is hidden and
does not widen it again.  This chart has no script: x positions are percentages of the box (it fits a desktop or
a phone), y positions are pixels, every epoch is a dot with a tooltip, ticks are whole epochs, each run has its
own colour and validation is dashed.  The points travel in the ``data-points`` attribute (``chart_points``).
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


def loss_chart(points: pd.DataFrame, epochs: int | None = None, title: str = "Loss per token",
               steps: list[tuple[float, float]] | None = None) -> str:
    """The chart as an HTML fragment: a line per series with a dot on each epoch; x runs over whole epochs from 1
    to ``epochs`` (default: the last epoch in ``points``).  ``steps``: ``(epoch, loss)`` points within epochs (the
    training loss every few steps), drawn smoothed as a light line from epoch 0.  A one-line note when there is
    nothing to draw yet."""
    steps = [(float(e), float(v)) for e, v in (steps or []) if math.isfinite(float(v))]
    if (points is None or not len(points)) and not steps:
        return f"<div class='sg-chart sg-chart-empty' data-points='[]'><p><b>{html.escape(title)}</b>: the curves " \
               "appear here after the first epoch.</p></div>"
    if points is None:
        points = loss_points([])
    first = 0 if steps else 1  # the step curve starts inside epoch 1, at x = 0
    last = max(int(points["epoch"].max()) if len(points) else 1, int(epochs or 0), math.ceil(max(
        (e for e, _ in steps), default=0)), 2)  # a one-epoch chart still spans 1..2
    step = -(-last // MAX_TICKS)
    ticks = list(range(first, last + 1, step))
    smoothed = smooth([v for _, v in steps])
    losses = list(points["loss"]) + smoothed
    ylo, yhi = float(min(losses)), float(max(losses))
    yt = nice_ticks(ylo, yhi)
    ylo, yhi = min(ylo, yt[0]), max(yhi, yt[-1])

    def x(e: float) -> str:
        return f"{X_PAD + (100 - 2 * X_PAD) * (e - first) / (last - first):.3f}%"

    def y(v: float) -> float:
        return round(6 + (HEIGHT - 12) * (yhi - v) / (yhi - ylo), 2)

    runs = list(dict.fromkeys(points["run"]))
    several = any(runs)  # the compare plot: one colour per run; the Train tab: one per kind
    colour = ({r: PALETTE[i % len(PALETTE)] for i, r in enumerate(runs)} if several else {})
    grid = "".join(f"<line x1='0%' x2='100%' y1='{y(t)}' y2='{y(t)}' stroke='#9ca3af' stroke-opacity='0.35'/>"
                   for t in yt)
    series_svg, legend = [], []
    for name, group in points.groupby("series", sort=False):
        group = group.sort_values("epoch")
        run, kind = group["run"].iloc[0], group["kind"].iloc[0]
        c = colour.get(run) if several else KIND_COLOURS.get(kind, PALETTE[0])
        dash = f" stroke-dasharray='{DASH.get(kind, '')}'" if DASH.get(kind) else ""
        e, v = list(group["epoch"]), list(group["loss"])
        segs = "".join(f"<line x1='{x(e[i])}' y1='{y(v[i])}' x2='{x(e[i + 1])}' y2='{y(v[i + 1])}'{dash}/>"
                       for i in range(len(e) - 1))
        dots = "".join(f"<circle cx='{x(a)}' cy='{y(b)}' r='3.5' fill='{c}'><title>{html.escape(str(name))}, "
                       f"epoch {a}: {b:.4f}</title></circle>" for a, b in zip(e, v))
        series_svg.append(f"<g class='sg-series' data-series='{html.escape(str(name), quote=True)}' stroke='{c}' "
                          f"stroke-width='2' fill='none'>{segs}{dots}</g>")
        if not several:
            legend.append(_swatch(c, kind, kind))
    if steps:
        segs = "".join(f"<line x1='{x(steps[i][0])}' y1='{y(smoothed[i])}' x2='{x(steps[i + 1][0])}' "
                       f"y2='{y(smoothed[i + 1])}'/>" for i in range(len(steps) - 1))
        data_steps = html.escape(json.dumps([[round(e, 4), round(v, 5)] for (e, _), v in zip(steps, smoothed)]))
        series_svg.insert(0, f"<g class='sg-steps' data-count='{len(steps)}' data-steps='{data_steps}' "
                             f"stroke='{STEP_COLOUR}' stroke-width='1.5' fill='none'>{segs}</g>")
        legend.insert(0, _swatch(STEP_COLOUR, "train", "train, every few steps (smoothed)"))
    if several:
        legend = [_swatch(colour[r], "train", r) for r in runs]
        legend += [_swatch("#6b7280", k, k) for k in KINDS]
    ylabels = "".join(f"<span style='position:absolute;right:6px;top:{y(t) - 8}px;font-size:11px'>{_fmt(t)}</span>"
                      for t in yt)
    xlabels = "".join(f"<span style='position:absolute;left:{x(t)};transform:translateX(-50%);font-size:11px'>"
                      f"{t}</span>" for t in ticks)
    data = html.escape(json.dumps(points[POINT_COLUMNS].to_dict(orient="records")), quote=True)
    return (f"<div class='sg-chart' data-points='{data}' style='width:100%'>"
            f"<div style='font-size:13px;margin:0 0 4px 0'><b>{html.escape(title)}</b></div>"
            f"<div style='display:flex;align-items:stretch'>"
            f"<div class='sg-y-labels' style='position:relative;width:44px;flex:none;height:{HEIGHT}px'>{ylabels}</div>"
            f"<div style='position:relative;flex:1;min-width:0'>"
            f"<svg class='sg-plot' width='100%' height='{HEIGHT}' style='display:block;overflow:visible' "
            f"role='img' aria-label='{html.escape(title, quote=True)}'>{grid}{''.join(series_svg)}</svg>"
            f"<div class='sg-x-labels' style='position:relative;height:16px;margin-top:2px'>{xlabels}</div>"
            f"<div style='text-align:center;font-size:11px'>epoch</div></div></div>"
            f"<div class='sg-legend' style='display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0 0 44px;"
            f"font-size:11px'>{''.join(legend)}</div></div>")


def score_chart(rows, epochs: int | None = None, metric: str = "score (phrase F1 or ROUGE-L)") -> str:
    """The per-epoch generation scores as a chart like ``loss_chart``'s: ``(kind, epoch, score)`` rows, ``kind`` one
    of ``SCORE_KINDS`` (the constant answer's is drawn dashed: the line to beat).  Its points' ``loss`` column holds
    the score."""
    points = loss_points([("", kind, e, v) for kind, e, v in rows if v is not None])
    return loss_chart(points, epochs=epochs, title=f"Greedy {metric} on the per-epoch sample (dashed: a constant "
                                                   "answer)")


def _swatch(colour: str, kind: str, label: str) -> str:
    dash = f" stroke-dasharray='{DASH[kind]}'" if DASH.get(kind) else ""
    return (f"<span style='display:inline-flex;align-items:center;gap:4px'><svg width='26' height='8'>"
            f"<line x1='1' y1='4' x2='25' y2='4' stroke='{colour}' stroke-width='2'{dash}/></svg>"
            f"{html.escape(str(label))}</span>")


def chart_points(value: str | None) -> pd.DataFrame:
    """The points inside a chart (its ``data-points``), as a frame with ``POINT_COLUMNS``."""
    import re

    found = re.search(r"data-points='([^']*)'", value or "")
    rows = json.loads(html.unescape(found.group(1))) if found else []
    return pd.DataFrame(rows, columns=POINT_COLUMNS)
