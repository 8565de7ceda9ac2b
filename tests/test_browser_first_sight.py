"""First sight: the page as a new visitor reads it before, during and after a run, on a desktop (1400×1000) and
a phone (390×844), in headless Chromium (see ``test_browser``).

Screenshots of every tab at both widths and in each phase go to ``test-artifacts/screenshots``, named
``first-<width>-<phase>-<tab>.png``.  The tests share one offline server and run in file order: a fresh page,
then a run, then three runs compared.
"""

from __future__ import annotations

import re
import time

import pytest
from conftest import TINY, launch
from test_browser import SHOTS, browser  # noqa: F401 - the module's browser fixture

from symptomgen.config import DataConfig
from symptomgen.store import RunStore
from symptomgen.ui import build_page

WIDE, PHONE = {"width": 1400, "height": 1000}, {"width": 390, "height": 844}
TABS = ("Data", "Train", "Generate", "Evaluate")
# Curves a person can see: series drawn in a colour, with at least one segment or dot that takes up room.
VISIBLE_LINES = """e => Array.from(e.querySelectorAll('.sg-series')).filter(g => {
    const s = getComputedStyle(g).stroke;
    return s && s !== 'none' && Array.from(g.querySelectorAll('line, circle')).some(m => {
        const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; }); }).length"""
VISIBLE_DOTS = """e => Array.from(e.querySelectorAll('.sg-series circle')).filter(c => {
    const b = c.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length"""
X_LABELS = "e => Array.from(e.querySelectorAll('.sg-x-labels span')).map(s => s.textContent.trim())"
# Issue 22 (low), phone: the page never scrolls sideways, and a list's value (ellipsis when long) ends before the
# arrow's box.  Each visible dropdown: [its value, too long for the box?, text's right edge, the arrow's left edge].
PAGE_WIDTH = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
DROPDOWNS = """() => Array.from(document.querySelectorAll('.secondary-wrap input')).filter(e => e.offsetParent)
    .map(e => { const s = getComputedStyle(e), arrow = e.closest('.wrap').querySelector('.icon-wrap');
      return [e.value, e.scrollWidth > e.clientWidth && s.textOverflow === 'ellipsis',
              e.getBoundingClientRect().right - parseFloat(s.paddingRight),
              arrow ? arrow.getBoundingClientRect().left : Infinity]; })"""
# Sideways overflow of a table's own scrolling box: [scrollWidth, clientWidth].
TABLE_WIDTH = "e => { const v = e.querySelector('.virtual-table-viewport'); return [v.scrollWidth, v.clientWidth]; }"
# The preview's cells holding a long target: [its text's right edge, the text's height, the preview's right edge].
LONG_CELLS = """() => { const box = document.querySelector('#data-preview');
  if (!box) return [];
  const edge = box.getBoundingClientRect().right;
  return Array.from(box.querySelectorAll('td'))
    .filter(td => td.offsetParent && td.textContent.includes('symptom number 8'))
    .map(td => { const r = document.createRange(); r.selectNodeContents(td); const t = r.getBoundingClientRect();
                 return [t.right, t.height, edge]; }); }"""
LONG_TARGET = ", ".join(f"symptom number {i} with a longer description" for i in range(9))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """An offline server with no runs yet, launched as a notebook would: ``demo.launch()`` with no ``css=`` (the
    demo carries its own CSS; the phone-layout assertions below fail without it)."""
    runs_dir = tmp_path_factory.mktemp("first-sight-runs")
    demo, context = build_page(RunStore.at(runs_dir))
    url = launch(demo, guarded=False)  # as a notebook's demo.launch() would
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield url, context, runs_dir
    context.jobs.stop()
    context.jobs.join(60)
    demo.close()


def open_page(browser, url: str, viewport: dict):  # noqa: F811 - the fixture's value
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(120_000)
    page.goto(url)
    page.locator("#hub-banner").get_by_text("Offline").wait_for()
    return page


def show_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(600)  # let a redrawn chart settle before a screenshot (not an assertion)


def shoot_tabs(page, phase: str) -> None:
    for name in TABS:
        show_tab(page, name)
        check_layout(page, f"{phase} {name}")
        page.screenshot(path=SHOTS / f"first-{page.viewport_size['width']}-{phase}-{name.lower()}.png",
                        full_page=True)


def check_layout(page, where: str) -> None:
    """No sideways scrolling of the page, and no list value running under its arrow."""
    width, seen = page.evaluate(PAGE_WIDTH)
    assert width <= seen, (where, width, seen)
    for value, _, text_right, arrow_left in page.evaluate(DROPDOWNS):
        assert text_right <= arrow_left, (where, value, text_right, arrow_left)


def box(page, selector: str) -> dict:
    return page.locator(selector).first.bounding_box()


def test_a_fresh_page_before_any_run(browser, site, tmp_path):  # noqa: F811
    url, _, runs_dir = site
    page = open_page(browser, url, WIDE)
    shoot_tabs(page, "before")
    from symptomgen.sweeper import _sweepers  # the first visit started the leftover sweeper, however launched
    assert str(runs_dir.resolve()) in _sweepers

    # Offline, the Train tab's model list says which Hub models would train the scratch model instead.
    show_tab(page, "Train")
    page.locator("#train-model input").click()
    offered = re.compile(r"^gpt2-medium \(not downloaded; offline it trains scratch\)")
    page.get_by_role("option", name=offered).wait_for(timeout=30_000)
    page.screenshot(path=SHOTS / "first-1400-before-offline-model-list.png", full_page=True)
    page.keyboard.press("Escape")
    assert page.locator("#train-model input").input_value() == "scratch"

    # Offline, the preselected model is one that loads, and its output box says what it is.
    show_tab(page, "Generate")
    assert page.locator("#gen-model input").input_value().startswith("Untrained scratch model")
    page.locator("#generate-button").click()
    page.wait_for_function("() => document.querySelector('#gen-output textarea').value.trim().length > 0")
    page.locator("#gen-reference").get_by_text("Kidney Failure").first.wait_for()
    assert "Untrained" in page.locator("#gen-output").inner_text()
    assert "characters" in page.locator("#gen-name").inner_text()  # the limit, where the name is typed
    page.screenshot(path=SHOTS / "first-1400-before-generated-untrained.png", full_page=True)

    # Data: no placeholder table before a preview; upload → sample maps the sample's own columns; preview works.
    show_tab(page, "Data")
    assert not page.locator("#data-preview").is_visible()
    other = tmp_path / "other.csv"
    other.write_text("disease,signs\nFlu,\"fever, cough\"\nGout,joint pain\nAcne,spots\n")
    page.get_by_label("Uploaded file").check()
    page.locator("#data-upload input[type=file]").set_input_files(str(other))
    page.wait_for_function("() => document.querySelector('#data-prompt-column input').value === 'disease'")
    page.get_by_label("Bundled sample (offline)").check()
    page.wait_for_function("() => document.querySelector('#data-prompt-column input').value === 'Name'")
    assert page.locator("#data-target-column input").input_value() == "Symptoms"
    page.locator("#preview-button").click()
    page.locator("#data-summary").get_by_text("Columns found").wait_for()
    page.locator("#data-preview").wait_for()
    assert page.locator("#data-preview th").first.inner_text().strip().startswith("split")
    page.screenshot(path=SHOTS / "first-1400-before-previewed.png", full_page=True)
    page.close()

    phone = open_page(browser, url, PHONE)
    shoot_tabs(phone, "before")
    show_tab(phone, "Generate")
    out, base = box(phone, "#gen-output"), box(phone, "#gen-base-output")
    assert base["y"] >= out["y"] + out["height"] - 1, (out, base)  # stacked, not squeezed side by side
    assert out["width"] > 0.8 * (PHONE["width"] - 40)
    # The model list's long value ("Untrained scratch model (random weights: …)") ends in an ellipsis before the arrow.
    model = [d for d in phone.evaluate(DROPDOWNS) if d[0].startswith("Untrained scratch model")]
    assert model and model[0][1] and model[0][2] <= model[0][3], model
    phone.screenshot(path=SHOTS / "first-390-before-generate-dropdown.png", full_page=True)
    show_tab(phone, "Data")
    phone.get_by_label("Uploaded file").check()
    label, icon = box(phone, "#data-upload [data-testid=block-label]"), box(phone, "#data-upload .icon-wrap")
    assert label["y"] + label["height"] <= icon["y"], (label, icon)  # the label no longer covers the icon
    phone.screenshot(path=SHOTS / "first-390-before-upload.png", full_page=True)

    # Long targets wrap inside the preview, on a phone too: no cell's text runs past the table's right edge.
    long = tmp_path / "long.csv"
    long.write_text("Name,Symptoms\n" + "".join(f'Disease {i},"{LONG_TARGET}"\n' for i in range(12)))
    phone.locator("#data-upload input[type=file]").set_input_files(str(long))
    phone.wait_for_function("() => document.querySelector('#data-target-column input').value === 'Symptoms'")
    phone.locator("#preview-button").click()
    preview = phone.locator("#data-preview")
    phone.wait_for_function(f"() => ({LONG_CELLS})().length > 0", timeout=60_000)
    for right, height, edge in phone.evaluate(LONG_CELLS):
        assert right <= edge + 1 and height > 60, (right, height, edge)  # inside the box, on several lines
    assert preview.evaluate(TABLE_WIDTH)[0] <= preview.evaluate(TABLE_WIDTH)[1]
    check_layout(phone, "phone preview")
    phone.screenshot(path=SHOTS / "first-390-before-long-preview.png", full_page=True)
    phone.close()


def test_during_and_after_a_run(browser, site):  # noqa: F811
    url, context, _ = site
    page = open_page(browser, url, WIDE)
    show_tab(page, "Train")
    for name, value in (("epochs", 3), ("batch-size", 16)):
        field = page.locator(f"#train-{name} input[type=number]")
        field.fill(str(value))
        field.press("Tab")
    page.get_by_text("More settings").click()
    for name, value in (("scratch-layers", TINY.scratch_layers), ("scratch-width", TINY.scratch_width)):
        field = page.locator(f"#train-{name} input[type=number]")
        field.fill(str(value))
        field.press("Tab")
    page.locator("#start-button").click()
    phone = open_page(browser, url, PHONE)  # another visitor, on a phone, while it runs

    # After epoch 1: a dot per curve, whole-epoch ticks, time left.
    page.wait_for_function("() => document.querySelector('#epoch-table [role=grid]')"
                           ".getAttribute('aria-rowcount') === '2'", timeout=400_000)
    plot = page.locator("#loss-plot .sg-chart").first  # the loss chart (the score chart is below it)
    page.wait_for_function(f"e => ({VISIBLE_DOTS})(e) >= 2", arg=plot.element_handle())
    labels = plot.evaluate(X_LABELS)
    assert labels and all(re.fullmatch(r"\d+", t) for t in labels), labels
    page.screenshot(path=SHOTS / "first-1400-during-epoch-1.png", full_page=True)
    shoot_tabs(phone, "during")
    shoot_tabs(page, "during")
    show_tab(page, "Train")
    page.locator("#train-summary").get_by_text("finished").wait_for(timeout=400_000)
    page.wait_for_function(f"e => ({VISIBLE_LINES})(e) === 2", arg=plot.element_handle())
    shoot_tabs(page, "after")
    shoot_tabs(phone, "after")
    # The epochs table fits the phone's width: no sideways scrolling inside it either.
    show_tab(phone, "Train")
    scrolled, shown = phone.locator("#epoch-table").evaluate(TABLE_WIDTH)
    assert scrolled <= shown and "val loss" in phone.locator("#epoch-table").inner_text(), (scrolled, shown)
    phone.locator("#epoch-table").screenshot(path=SHOTS / "first-390-after-epoch-table.png")
    phone.close()

    # A refused Start says why, and leaves the finished run's progress, table and plot as they were.
    deadline = time.monotonic() + 120
    while context.jobs.busy() and time.monotonic() < deadline:
        time.sleep(0.5)
    page.wait_for_function("() => document.querySelector('#train-notice [data-testid=status-tracker]')"
                           ".classList.contains('hide')")  # the run's stream has ended
    show_tab(page, "Data")
    page.get_by_label("Hugging Face dataset").check()
    page.locator("#data-hub-dataset textarea, #data-hub-dataset input").first.fill("../not-a-dataset.csv")
    show_tab(page, "Train")
    page.locator("#start-button").click()
    page.get_by_text("not a Hugging Face dataset id").first.wait_for()
    page.wait_for_timeout(500)
    for shown in ("#train-progress", "#epoch-table", "#loss-plot", "#train-summary"):
        assert "Error" not in page.locator(shown).inner_text(), shown
    assert plot.evaluate(VISIBLE_LINES) == 2
    assert "finished" in page.locator("#train-summary").inner_text()
    page.screenshot(path=SHOTS / "first-1400-after-refused-start.png", full_page=True)
    page.close()


def test_compare_draws_three_runs_and_lists_only_known_ones(browser, site):  # noqa: F811
    from symptomgen.trainer import run_training

    url, _, runs_dir = site

    def runs() -> list[str]:
        return sorted(p.name for p in runs_dir.iterdir() if (p / "metrics.csv").is_file())

    while len(runs()) < 3:  # the page's run (when the test before ran) and tiny ones of different lengths
        time.sleep(1.1)  # run ids have one-second resolution
        epochs = 2 + len(runs()) % 2
        run_training(DataConfig(source="sample"), TINY.with_(epochs=epochs, seed=len(runs())), runs_dir)
    page = open_page(browser, url, WIDE)
    show_tab(page, "Evaluate")
    page.get_by_text("Compare runs: loss curves on one plot").click()
    runs = runs()
    picker = page.locator("#compare-runs input")
    picker.fill(runs[0][:-3])  # part of a name, then Enter: a listed run is chosen, never the typed text
    picker.press("Enter")
    page.keyboard.press("Escape")
    tokens = page.locator("#compare-runs .token")
    page.wait_for_function("() => document.querySelectorAll('#compare-runs .token').length === 1")
    assert tokens.first.inner_text().strip() in runs
    for name in runs:
        if name not in tokens.all_inner_texts():
            picker.fill(name)
            picker.press("Enter")
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.querySelectorAll('#compare-runs .token').length === 3")
    assert sorted(t.strip() for t in tokens.all_inner_texts()) == runs
    plot = page.locator("#compare-plot")
    page.wait_for_function(f"e => ({VISIBLE_LINES})(e) === 6", arg=plot.element_handle())  # train + val × 3
    page.screenshot(path=SHOTS / "first-1400-after-compare-three-runs.png", full_page=True)
    page.close()
