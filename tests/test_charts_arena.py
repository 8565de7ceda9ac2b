"""Issue 24 item 5, without a browser: the loss chart's log scale, smoothing and extra curves (learning rate, grad
norm), the runs list's sparklines (escaped), and the arena's bounds and one-sentence refusals."""

from __future__ import annotations

import json
import math
import re

import gradio as gr
import pytest
from conftest import TINY

from symptomgen.events import EpochResult
from symptomgen.records import RunRecord, RunStatus
from symptomgen.runs import Run
from symptomgen.store import RunStore
from symptomgen.ui.arena_panel import ArenaPanel, arena_html
from symptomgen.ui.charts import HEIGHT, YScale, log_ticks, loss_chart, loss_points, smooth, sparkline, toggle_css
from symptomgen.ui.context import PageContext
from symptomgen.ui.generate_tab import runs_history_html
from symptomgen.ui.train_tab import _plot

HOSTILE = "<script>alert('x')</script>\"&"


def _epochs(n: int) -> list[EpochResult]:
    return [EpochResult(epoch=e, train_loss=3.0 / e, val_loss=3.2 / e, epoch_seconds=1.0, tokens_per_sec=1.0,
                        learning_rate=1e-3, is_best=True) for e in range(1, n + 1)]


def _group(chart: str, cls: str) -> str:
    """The markup of the first ``<g class='cls'...>`` group (it holds no nested group)."""
    found = re.search(rf"<g class='{re.escape(cls)}[' ].*?</g>", chart)
    assert found, cls
    return found.group(0)


def _ys(group: str) -> list[float]:
    return [float(v) for v in re.findall(r"y[12]='([-\d.]+)'", group)]


def test_the_log_scale_gives_equal_ratios_equal_distances():
    log = YScale([1.0, 10.0, 100.0], log=True, height=212)
    assert log(100.0) == pytest.approx(6) and log(1.0) == pytest.approx(206)  # top and bottom of the area
    assert log(10.0) == pytest.approx((log(1.0) + log(100.0)) / 2)  # 1 → 10 as far as 10 → 100
    lin = YScale([1.0, 10.0, 100.0])
    assert lin(10.0) > (lin(1.0) + lin(100.0)) / 2 + 50  # on the linear scale 10 sits near the bottom
    assert not log.shows(0.0) and lin.shows(0.0) and not lin.shows(math.nan)
    assert log_ticks(0.5, 30.0) == [0.5, 1, 2, 5, 10, 20]
    assert log_ticks(2.1, 2.9) == [2.1, 2.9]  # no round value inside: the ends
    flat = YScale([3e-3, 3e-3])  # a constant learning rate: labelled around its value, not around 0
    assert min(flat.ticks) > 0 and flat.ticks[0] <= 3e-3 <= flat.ticks[-1] and 6 < flat(3e-3) < HEIGHT - 6


def test_the_chart_draws_a_log_view_and_the_css_toggles_it():
    chart = loss_chart(loss_points([("", "train", e, 10.0 ** -e) for e in (1, 2, 3)]))
    lin, log = _group(chart, "sg-series"), _group(chart, "sg-series-log")
    assert len(re.findall("<circle", lin)) == len(re.findall("<circle", log)) == 3
    lin_y, log_y = [float(v) for v in re.findall(r"cy='([\d.]+)'", lin)], \
        [float(v) for v in re.findall(r"cy='([\d.]+)'", log)]
    assert log_y[1] - log_y[0] == pytest.approx(log_y[2] - log_y[1], abs=0.02)  # decades equally spaced
    assert lin_y[1] - lin_y[0] > 5 * (lin_y[2] - lin_y[1])  # linear: the first drop dwarfs the second
    assert "<g class='sg-log' style='display:none'>" in chart  # hidden until the box is ticked
    css = toggle_css(["loss-plot"])
    assert "html[data-sg-loss-plot-log] #loss-plot .sg-lin" in css and "g.sg-log" in css
    # The score chart (scores may be 0) has no log view.
    from symptomgen.ui.charts import score_chart

    assert "sg-log" not in score_chart([("taught", 1, 0.0), ("taught", 2, 0.5)])


def test_smoothing_changes_the_drawn_step_curve():
    noisy = [(e / 10, 3.0 + (1.0 if i % 2 else -1.0)) for i, e in enumerate(range(1, 21))]
    chart = _plot(_epochs(2), 2, noisy)
    smoothed, raw = _group(chart, "sg-steps sg-smooth"), _group(chart, "sg-steps-raw sg-raw")
    assert "display:none" in raw and "display:none" not in smoothed.split(">")[0]  # smoothed shown by default
    raw_y, smooth_y = _ys(raw), _ys(smoothed)
    assert len(raw_y) == len(smooth_y) == 2 * 19 and raw_y != smooth_y
    spread = lambda ys: max(ys) - min(ys)  # noqa: E731
    assert spread(smooth_y[10:]) < spread(raw_y[10:]) / 2  # the zigzag is flattened (past the first points)
    points = json.loads(re.search(r"data-steps='([^']*)'", chart).group(1).replace("&quot;", '"'))
    assert [v for _, v in points] == pytest.approx(smooth([v for _, v in noisy]), abs=1e-4)
    assert chart.count("class='sg-steps ") == 1  # one element carries the points (the page reads it)


def test_learning_rate_and_grad_norm_appear_only_with_their_data():
    without = _plot(_epochs(2), 2, [(0.5, 3.0), (1.0, 2.5), (1.5, 2.2)])  # an older run: loss only
    assert "sg-aux-plot" not in without and without.count("Not recorded for this run.") == 2
    with_both = _plot(_epochs(2), 2, [(0.5, 3.0, 1e-3, 2.0), (1.0, 2.5, 5e-4, 1.0), (1.5, 2.2, None, None)])
    assert "data-aux='lr'" in with_both and "data-aux='grad'" in with_both
    assert re.search(r"class='sg-aux sg-aux-lr' style='display:none", with_both)  # hidden until toggled
    assert "data-count='2'" in with_both  # the point without them is left out of both curves
    only_lr = _plot(_epochs(2), 2, [(0.5, 3.0, 1e-3, None), (1.0, 2.5, 1e-3, None)])
    assert "data-aux='lr'" in only_lr and "data-aux='grad'" not in only_lr
    assert "sg-aux" not in loss_chart(loss_points([("", "train", 1, 1.0)]), aux={})
    # The compare chart: a learning-rate line per run when given, none without.
    points = loss_points([(r, k, e, 1.0 / e) for r in ("a", "b") for k in ("train", "validation") for e in (1, 2)])
    compare = loss_chart(points, aux={"lr": [("a", "#000000", [(1, 1e-3), (2, 5e-4)])]})
    assert compare.count("class='sg-aux-series'") == 1 and "data-aux='grad'" not in compare


def test_a_sparkline_escapes_a_hostile_run_name_and_skips_bad_numbers():
    line = sparkline([(1, 3.0), (2, "nan"), ("x", 1.0), (3, 2.0)], [(1, 3.2), (2, float("inf")), (3, 2.5)],
                     label=HOSTILE)
    assert "<script>" not in line and "&lt;script&gt;" in line and "&#x27;x&#x27;" in line
    assert line.count("<polyline") == 2 and "2 epoch(s)" in line  # the non-numbers are left out
    assert "–" in sparkline([], [], label=HOSTILE) and "script" not in sparkline([], [])


def test_the_runs_list_escapes_what_a_run_folder_says(tmp_path):
    store = RunStore(tmp_path)
    run = Run(tmp_path / "20260101-000000-evil")
    run.path.mkdir()
    record = RunRecord(run_id=run.run_id, status=RunStatus.FINISHED, train=TINY.with_(model=HOSTILE))
    (run.path / "config.json").write_text(json.dumps(record.to_json(), default=str))
    run.metrics_path.write_text("epoch,training_loss,validation_loss\n1,3.0,3.3\n2,<b>,2.9\n3,2.0,2.5\n")
    page = runs_history_html(store)
    assert "<script>" not in page and "<b>" not in page and "&lt;script&gt;" in page
    assert run.run_id in page and page.count("<polyline") == 2
    assert "No runs yet" in runs_history_html(RunStore(tmp_path / "none"))


def test_the_arena_columns_are_escaped():
    page = arena_html([(HOSTILE, "not fine-tuned", [HOSTILE]), ("b", "d", "Not available.")], note=HOSTILE)
    assert "<script>" not in page and page.count("&lt;script&gt;") == 3 and "sg-arena-problem" in page


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    return ArenaPanel(PageContext.create(RunStore(tmp_path_factory.mktemp("arena-runs"))))


ARGS = dict(name="Asthma", top_k=8, top_p=0.95, temperature=0.5, repetition_penalty=1.2, max_new_tokens=8,
            num_sequences=1, seed=3)


@pytest.mark.parametrize("models, args, message", [
    (["scratch"], {}, "Pick 2 to 4 models"),
    (["scratch", "scratch"], {}, "Pick 2 to 4 models"),  # repeats count once
    ([f"r{i}" for i in range(5)], {}, "At most 4 models in the arena"),
    (["a", "b"], dict(max_new_tokens=200, num_sequences=2), "at most 512 tokens in all"),
    (["scratch", "../../etc/passwd"], {}, "neither a finished run"),
    ("scratch", {}, "must be a list of text"),
])
def test_the_arena_refuses_in_one_sentence(arena, models, args, message):
    with pytest.raises(gr.Error) as info:
        for _ in arena.compare(models, **{**ARGS, **args}):
            pass
    text = str(info.value.message)
    assert message in text and "Traceback" not in text and "\n" not in text


def test_the_arena_shares_one_drawn_seed_and_says_a_missing_model_in_its_column(arena, monkeypatch):
    """The untrained scratch model beside distilgpt2, which offline cannot load: its column says so; a blank
    seed is drawn once and named."""
    views = list(arena.compare(["scratch", "distilgpt2"], **{**ARGS, "seed": None}))
    last, status = views[-1]
    assert status == "Done." and "(drawn at random, the same for all)" in last
    assert last.count("class='sg-arena-col'") == 2 and "sg-arena-problem" in last
    assert last.count("sg-arena-text") >= 1  # the scratch model's text


def test_an_older_steps_file_still_reads_and_takes_the_new_columns(tmp_path):
    """A steps.csv from before the learning rate and grad norm: read with them empty, rewritten once on append."""
    run = Run(tmp_path / "20260101-000000-old")
    run.path.mkdir()
    run.steps_path.write_text("step,epoch,loss\n1,0.5,3.0\n2,1.0,2.5\n")
    assert list(run.history()[1]) == [(0.5, 3.0, None, None), (1.0, 2.5, None, None)]
    run.append_step(3, 1.5, 2.0, 1e-3, 0.75)
    assert run.steps_path.read_text().splitlines()[0] == "step,epoch,loss,learning_rate,grad_norm"
    assert list(run.history()[1])[-1] == (1.5, 2.0, 1e-3, 0.75) and len(run.steps()) == 3
