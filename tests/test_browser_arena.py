"""Issue 24 item 5 (and item 6's page check) in headless Chromium on one offline server (see ``test_browser``):
the Train tab's chart toggles on a TINY run trained through the page's job manager, the runs list's sparklines,
the arena with two runs and the base model side by side, and bulk generation down to its CSV.  Screenshots go to
``test-artifacts/screenshots`` as ``arena-*.png``.
"""

from __future__ import annotations

import csv

import pytest
from conftest import TINY, launch
from test_browser import SHOTS, browser  # noqa: F401 - the module's browser fixture

from symptomgen.config import DataConfig
from symptomgen.store import RunStore
from symptomgen.trainer import run_training
from symptomgen.ui import build_page

VISIBLE = "e => e.getClientRects().length > 0"  # (checkVisibility() says true for an SVG group display:none)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two finished TINY runs: the first through the page's job manager (as Start runs it: its snapshot carries
    the step curve), the second in this process (quicker); then the page."""
    store = RunStore(tmp_path_factory.mktemp("arena-runs"))
    demo, context = build_page(store)
    context.jobs.start(DataConfig(source="sample"), TINY)
    assert context.jobs.join(120)
    first = context.jobs.snapshot()
    assert first.summary is not None and first.summary.status == "finished", first.error
    second = run_training(DataConfig(source="sample"), TINY.with_(seed=7), store)
    assert second.status == "finished"
    url = launch(demo)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield url, context, [first.run_id, second.run_dir.name]
    demo.close()


def _shown(page, selector: str) -> bool:
    return page.locator(selector).first.evaluate(VISIBLE)


def test_chart_toggles_sparklines_arena_and_bulk(browser, site):  # noqa: F811
    url, context, runs = site
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.locator("#hub-banner").get_by_text("Offline").wait_for()

    # Train tab: the finished job's chart; each box switches its view in the browser.
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-summary").get_by_text("finished").wait_for()
    plot = "#loss-plot .sg-chart"
    page.locator(f"{plot} .sg-steps").wait_for(state="attached")
    assert _shown(page, f"{plot} g.sg-lin") and not _shown(page, f"{plot} g.sg-log")
    assert not _shown(page, f"{plot} div.sg-aux-lr") and page.locator(f"{plot} svg[data-aux=grad]").count() == 1
    page.locator("#loss-plot-log input").check()
    page.wait_for_function(f"() => getComputedStyle(document.querySelector('{plot} g.sg-lin')).display === 'none'")
    assert _shown(page, f"{plot} g.sg-log") and _shown(page, f"{plot} .sg-y-labels-log")
    page.locator("#loss-plot-smooth input").uncheck()
    assert _shown(page, f"{plot} g.sg-steps-raw-log") and not _shown(page, f"{plot} g.sg-steps-smooth-log")
    page.locator("#loss-plot-lr input").check()
    page.locator("#loss-plot-grad input").check()
    assert _shown(page, f"{plot} svg[data-aux=lr]") and _shown(page, f"{plot} svg[data-aux=grad]")
    assert page.locator("#score-plot .sg-aux").count() == 0  # the score chart has no extra curves
    page.locator("#loss-plot").screenshot(path=SHOTS / "arena-01-train-chart-toggles.png")
    page.locator("#loss-plot-log input").uncheck()
    assert _shown(page, f"{plot} g.sg-lin") and _shown(page, f"{plot} g.sg-steps-raw")

    # Generate tab: the runs list draws a sparkline per run.
    page.get_by_role("tab", name="Generate").click()
    page.wait_for_function(f"() => document.querySelector('#gen-model input').value.startsWith('{runs[1]}')")
    page.get_by_role("button", name="Runs ▼").click()
    page.locator("#runs-history svg.sg-spark").nth(1).wait_for()
    assert page.locator("#runs-history svg.sg-spark").count() == 2
    assert page.locator("#runs-history polyline").count() == 4  # validation and train, per run
    page.locator("#runs-history").screenshot(path=SHOTS / "arena-02-runs-sparklines.png")

    # The arena: opened, it picks the two newest runs and the base model (offline: the untrained scratch model).
    page.locator("#gen-name textarea, #gen-name input").first.fill("Asthma")
    page.get_by_text("Arena: the same prompt").click()
    picks = page.locator("#arena-models .token")
    page.wait_for_function("() => document.querySelectorAll('#arena-models .token').length === 3")
    assert all(any(r in t for t in picks.all_inner_texts()) for r in runs)
    page.locator("#arena-button").click()
    page.locator("#arena-notice").get_by_text("Done.").wait_for(timeout=90_000)
    headings = page.locator("#arena-output .sg-arena-heading").all_inner_texts()
    assert len(headings) == 3 and set(runs) <= set(headings), headings
    assert any("Untrained" in h for h in headings), headings
    columns = page.locator("#arena-output .sg-arena-col")
    boxes = [c.bounding_box() for c in columns.all()]
    assert len({round(b["y"]) for b in boxes}) == 1  # side by side, in one row
    for col in columns.all():
        assert col.locator(".sg-arena-text, .sg-arena-problem").count() >= 1
    assert "seed 0" in page.locator("#arena-output").inner_text()  # the tab's seed, the same for all
    page.locator("#arena-section").screenshot(path=SHOTS / "arena-03-side-by-side.png")

    # Bulk generation: two names → a progress line, then the CSV to download.
    page.get_by_text("Generate for many names").click()
    page.locator("#bulk-names textarea").fill("Asthma\nMigraine")
    page.locator("#bulk-button").click()
    link = page.locator("#bulk-file [data-testid=download-link]")
    # Polled on a timer: Playwright's default (animation frames) never saw the link appear in this page.
    page.wait_for_function("() => document.querySelector('#bulk-file [data-testid=download-link]') !== null",
                           polling=250, timeout=90_000)
    assert "Generated for 2 name(s)" in page.locator("#bulk-status").inner_text()
    assert link.get_attribute("download").endswith(".csv")
    with page.expect_download() as download:
        link.click()
    rows = list(csv.DictReader(open(download.value.path(), encoding="utf-8")))
    assert [r["name"] for r in rows] == ["Asthma", "Migraine"]
    page.locator("#bulk-section").screenshot(path=SHOTS / "arena-04-bulk-csv.png")
    page.close()
