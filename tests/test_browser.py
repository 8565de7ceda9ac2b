"""A real browser (Playwright + Debian's headless chromium) trains and generates on the page.

Skipped when ``/usr/bin/chromium`` is missing, except under CI (``CI=true``), where it fails.
Screenshots go to ``test-artifacts/screenshots`` (printed).  ``SYMPTOMGEN_FULL_CYCLE=1`` trains
with the page's own offline preset instead of two epochs, to time the full offline cycle.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from conftest import launch

from symptomgen.store import RunStore
from symptomgen.ui import build_page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
FULL_CYCLE = os.environ.get("SYMPTOMGEN_FULL_CYCLE", "") == "1"


def _need(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI is set, so the browser test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        _need(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the playwright Python package is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    demo, context = build_page(RunStore(tmp_path_factory.mktemp("browser-runs")))
    yield launch(demo)
    context.jobs.stop()
    context.jobs.join(60)
    demo.close()


def test_train_then_generate_in_the_browser(browser, app_url, capsys):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with capsys.disabled():
        print(f"\nscreenshots: {SHOTS}")
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(60_000)
    page.goto(app_url)
    banner = page.locator("#hub-banner")
    banner.get_by_text("Offline").wait_for()  # the offline notice is visible
    page.get_by_text("not medical advice").first.wait_for()
    page.screenshot(path=SHOTS / "01-offline-notice.png", full_page=True)

    page.get_by_role("tab", name="Train").click()
    model = page.locator("#train-model input")
    page.wait_for_function("() => document.querySelector('#train-model input').value === 'scratch'")
    assert model.input_value() == "scratch"
    if not FULL_CYCLE:
        epochs = page.locator("#train-epochs input[type=number]")
        epochs.fill("2")
        epochs.press("Tab")
    total = int(page.locator("#train-epochs input[type=number]").input_value())
    started = time.perf_counter()
    page.locator("#start-button").click()

    # Rows stream in: first one epoch, then the rest, with the plot drawn as they arrive.
    grid = page.locator("#epoch-table [role=grid]")
    page.wait_for_function("() => document.querySelector('#epoch-table [role=grid]')"
                           ".getAttribute('aria-rowcount') === '2'", polling=250, timeout=120_000)
    page.locator("#train-progress").get_by_text(re.compile(r"Epoch \d+ of \d+")).wait_for()
    page.screenshot(path=SHOTS / "02-training-first-epoch.png", full_page=True)
    # Another tab opened mid-run (or this one reloaded) re-attaches: history first, then the rest live.
    other = browser.new_page(viewport={"width": 1280, "height": 1400})
    other.goto(app_url)
    other.get_by_role("tab", name="Train").click()
    other.wait_for_function("() => +document.querySelector('#epoch-table [role=grid]')"
                            ".getAttribute('aria-rowcount') >= 2", timeout=120_000)
    page.locator("#train-summary").get_by_text("finished").wait_for(timeout=300_000)
    trained_s = time.perf_counter() - started
    other.locator("#train-summary").get_by_text("finished").wait_for(timeout=30_000)
    assert other.locator("#epoch-table [role=grid]").get_attribute("aria-rowcount") == str(total + 1)
    other.screenshot(path=SHOTS / "03b-reattached-tab.png", full_page=True)
    other.close()
    page.screenshot(path=SHOTS / "03-training-done.png", full_page=True)
    assert grid.get_attribute("aria-rowcount") == str(total + 1)  # header + one row per epoch
    table_text = page.locator("#epoch-table").inner_text()
    assert "★ best" in table_text and "val loss" in table_text
    plot = page.locator("#loss-plot .sg-chart").first  # the loss chart; the score chart sits below it
    # Two real curves, each a line with a dot per epoch, on numeric axes.
    plot.locator(".sg-series").nth(1).wait_for()
    assert plot.locator(".sg-series").count() == 2  # train and validation
    for curve in plot.locator(".sg-series").all():
        assert curve.locator("line").count() == total - 1 and curve.locator("circle").count() == total
    y_labels = plot.locator(".sg-y-labels span").all_inner_texts()
    assert len(y_labels) >= 2 and all(float(t) == float(t) for t in y_labels)
    # Issue 21: the per-epoch generation score, taught and unseen, with the constant answer's line to beat.
    scores = page.locator("#score-plot")
    assert scores.locator("svg.sg-plot").count() == 1
    assert [s.get_attribute("data-series") for s in scores.locator(".sg-series").all()] == \
        ["taught", "unseen", "constant answer"]
    for curve in scores.locator(".sg-series").all():
        assert curve.locator("circle").count() == total
    link = page.locator("#metrics-file [data-testid=download-link]")
    assert link.get_attribute("download").endswith("-metrics.csv")
    with page.expect_download() as download:
        link.click()
    lines = Path(download.value.path()).read_text().strip().splitlines()
    assert lines[0].startswith("epoch,") and len(lines) == total + 1

    page.get_by_role("tab", name="Generate").click()
    run_id = re.search(r"Run (\S+) finished", page.locator("#train-summary").inner_text()).group(1)
    page.wait_for_function(f"() => document.querySelector('#gen-model input').value.startsWith('{run_id}')")
    page.locator("#gen-name textarea, #gen-name input").first.fill("Kidney Failure")
    page.locator("#generate-button").click()
    page.locator("#gen-reference").get_by_text("Reference symptoms for Kidney Failure").wait_for(timeout=120_000)
    cycle_s = time.perf_counter() - started
    text = page.locator("#gen-output textarea").input_value()
    assert text.strip()
    page.locator("#not-medical-advice").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "04-generated.png", full_page=True)
    with capsys.disabled():
        print(f"offline cycle: {total} epochs trained in {trained_s:.1f} s; train + generate {cycle_s:.1f} s "
              f"(from clicking Start); generated: {text[:120]!r}")

    # Explain the output (on request), then evaluate the run on 3 of its validation rows.
    page.locator("#explain-section").get_by_text("Explain this generation (per-token").click()
    page.locator("#explain-button").click()
    page.locator("#explain-summary").get_by_text("perplexity").wait_for(timeout=60_000)
    page.screenshot(path=SHOTS / "05-explained.png", full_page=True)
    page.get_by_role("tab", name="Evaluate").click()
    page.wait_for_function(f"() => document.querySelector('#eval-run input').value.startsWith('{run_id}')")
    rows = page.locator("#eval-rows input[type=number]")
    rows.fill("3")
    rows.press("Tab")
    page.locator("#evaluate-button").click()
    page.locator("#eval-status").get_by_text("evaluated 3 validation row(s)").wait_for(timeout=120_000)
    assert page.locator("#eval-table tbody tr").count() == 3
    assert "perplexity" in page.locator("#eval-summary").inner_text()
    page.screenshot(path=SHOTS / "06-evaluated.png", full_page=True)
    page.close()


def test_refused_actions_leave_the_controls_usable(browser, app_url, tmp_path):
    """An upload offers its own columns (picked from a list: typing and Enter cannot swap in another one); a
    failed preview or a refused Start only says why (no "Error" badges over the column mapping or the Generate
    tab's model list, which the user needs next)."""
    other = tmp_path / "other.csv"
    other.write_text("disease,signs,therapy\nFlu,\"fever, cough\",rest\nGout,joint pain,diet\nAcne,spots,cream\n")
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(60_000)
    page.goto(app_url)
    page.get_by_role("tab", name="Data").click()
    page.get_by_label("Uploaded file").check()  # the file box belongs to this source
    page.locator("#data-upload input[type=file]").set_input_files(str(other))
    page.wait_for_function("() => document.querySelector('#data-prompt-column input').value === 'disease'")
    assert page.locator("#data-target-column input").input_value() == "signs"
    assert "disease, signs, therapy" in page.locator("#data-summary").inner_text()

    target = page.locator("#data-target-column input")
    target.press("t")
    target.press("Enter")
    page.keyboard.press("Escape")
    assert target.input_value() == "signs"  # never another column

    page.get_by_label("Hugging Face dataset").check()
    page.locator("#data-hub-dataset textarea, #data-hub-dataset input").first.fill("../secret.csv")
    page.locator("#preview-button").click()
    page.locator("text=not a Hugging Face dataset id >> visible=true").first.wait_for()  # the one on screen
    for widget in ("#data-prompt-column", "#data-target-column"):
        assert "Error" not in page.locator(widget).inner_text()
    page.locator("#data-target-column input").click()  # not covered by an error overlay

    page.get_by_role("tab", name="Train").click()
    page.locator("#start-button").click()
    page.locator("text=not a Hugging Face dataset id >> visible=true").first.wait_for()  # the one on screen
    page.get_by_role("tab", name="Generate").click()
    assert "Error" not in page.locator("#gen-model").inner_text()
    page.screenshot(path=SHOTS / "07-refused-start.png", full_page=True)
    page.close()
