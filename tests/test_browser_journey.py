"""The new user's journey of issue 22, replayed in headless Chromium on one offline server (see ``test_browser``).

Upload a table of free-text rows → Start with the page's defaults (it either refuses with a one-click fix, or
finishes at least one epoch) → reload (the upload and the settings stay) → a step curve with several points in
epoch 1 → Stop and Resume (epoch 1 stays in the table) → Evaluate preselects the newest run.  Screenshots go to
``test-artifacts/screenshots`` as ``journey-*.png``.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import TINY, launch
from test_browser import SHOTS, browser  # noqa: F401 - the module's browser fixture

from symptomgen.store import RunStore
from symptomgen.ui import build_page

# Enough epochs that Stop, clicked once epoch 1 is done, lands well before the run ends: a tiny epoch takes about a
# second, and a progress line that reads "Epoch 2 of N" for one second can pass between two polls (CI saw that).
EPOCHS = 20
NAMES = ["Alpha fever", "Beta cough", "Gamma rash", "Delta ache", "Epsilon chill", "Zeta itch", "Eta burn"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    demo, context = build_page(RunStore(tmp_path_factory.mktemp("journey-runs")))
    url = launch(demo)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield url, context
    context.jobs.stop()
    context.jobs.join(60)
    demo.close()


def _table(path) -> str:
    """A free-text table unlike the sample: 7 names × 6 rows of sentences, with its own column names."""
    rows = ["condition,story"]
    for i in range(42):
        name = NAMES[i % len(NAMES)]
        rows.append(f"{name},\"the patient says the {name.split()[1]} started {i % 5 + 1} days ago and "
                    f"gets worse at night; rest helps a little\"")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _set_number(page, elem: str, value) -> None:
    box = page.locator(f"#{elem} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def _rows(page) -> int:
    return int(page.locator("#epoch-table [role=grid]").get_attribute("aria-rowcount") or 1) - 1


def test_the_journey(browser, site, tmp_path):  # noqa: F811
    url, context = site
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(url)
    page.locator("#hub-banner").get_by_text("Offline").wait_for()

    # Upload: the mapping is guessed, the notice points up to it, and the sample's preset reads Custom.
    page.get_by_role("tab", name="Data").click()
    page.get_by_label("Uploaded file").check()
    page.locator("#data-upload input[type=file]").set_input_files(_table(tmp_path / "stories.csv"))
    page.wait_for_function("() => document.querySelector('#data-target-column input').value === 'story'")
    assert "mapping above" in page.locator("#data-summary").inner_text()
    page.get_by_role("tab", name="Train").click()
    assert page.locator("#stop-button").is_disabled()  # no job: nothing to stop
    page.wait_for_function("() => document.querySelector('#train-preset input').value.startsWith('Custom')")
    assert "no longer applies" in page.locator("#train-preset-note").inner_text()
    page.screenshot(path=SHOTS / "journey-01-upload-preset-custom.png", full_page=True)

    # Start with the defaults: refused with a fix, or trains; either way the page says which.  The model is
    # then made tiny (as a test must), and the run kept resumable with a step curve.
    page.locator("#start-button").click()
    outcome = page.wait_for_function(
        "() => document.querySelector('#train-estimate').innerText.includes('not one epoch would finish') ? "
        "'refused' : (document.querySelector('#train-progress').innerText.includes('Epoch') ? 'training' : null)",
        timeout=180_000).json_value()
    page.screenshot(path=SHOTS / "journey-02-start-with-defaults.png", full_page=True)
    if outcome == "refused":
        assert re.search(r"takes about .+ but the time budget", page.locator("#train-estimate").inner_text())
        page.locator("#fit-budget-button").click()
    else:
        page.wait_for_function("() => +document.querySelector('#epoch-table [role=grid]')"
                               ".getAttribute('aria-rowcount') >= 2", timeout=300_000)  # ≥ 1 epoch finished
        page.locator("#stop-button").click()  # (the rest of the defaults' run is not this test's business)
        page.locator("#train-summary").get_by_text(re.compile("finished|stopped")).wait_for(timeout=300_000)
        assert _rows(page) >= 1
    page.wait_for_function("() => document.querySelector('#stop-button').disabled")  # no job now

    page.get_by_text("More settings").click()
    for name, value in (("scratch-layers", TINY.scratch_layers), ("scratch-width", TINY.scratch_width),
                        ("epochs", EPOCHS), ("batch-size", 2), ("max-minutes", 0)):
        _set_number(page, f"train-{name}", value)
    page.wait_for_timeout(800)  # the form is remembered after each change

    # Reload: the upload and the settings are still there.
    page.reload()
    page.locator("#hub-banner").get_by_text("Offline").wait_for()
    page.get_by_role("tab", name="Data").click()
    page.wait_for_function("() => document.querySelector('#data-target-column input').value === 'story'")
    assert page.get_by_label("Uploaded file").is_checked()
    assert "stories" in page.locator("#data-upload").inner_text()
    page.get_by_role("tab", name="Train").click()
    page.get_by_text("More settings").click()
    assert page.locator("#train-scratch-width input[type=number]").input_value() == str(TINY.scratch_width)
    assert page.locator("#train-epochs input[type=number]").input_value() == str(EPOCHS)
    page.screenshot(path=SHOTS / "journey-03-after-reload.png", full_page=True)

    # The same form as a CLI command.
    page.get_by_text("Reuse settings: from a run, or as a CLI command").click()
    page.locator("#cli-button").click()
    page.locator("#cli-command").get_by_text("python -m symptomgen train").wait_for()
    cli = page.locator("#cli-command").inner_text()
    assert "--data stories.csv" in cli and f"--epochs {EPOCHS}" in cli and "--target-column story" in cli

    # Train; epoch 1 draws a step curve with several points; Stop after it points to Resume.
    page.locator("#start-button").click()
    page.wait_for_function("() => !document.querySelector('#stop-button').disabled")
    epoch_now = f"(document.querySelector('#train-progress').innerText.match(/Epoch (\\d+) of {EPOCHS}/) || [])[1]"
    page.wait_for_function(f"() => +({epoch_now} || 0) >= 2", polling=250, timeout=300_000)  # epoch 1 done
    page.locator("#stop-button").click()
    steps = page.locator("#loss-plot .sg-steps")
    points = json.loads(steps.get_attribute("data-steps"))
    assert len([e for e, _ in points if e <= 1.0]) > 1
    page.locator("#train-notice").get_by_text("Resume").wait_for()
    page.locator("#train-summary").get_by_text("stopped").wait_for(timeout=120_000)
    page.screenshot(path=SHOTS / "journey-04-step-curve-stopped.png", full_page=True)

    # Resume: the list is open with the run preselected; epoch 1 stays in the table as the rest join it.
    run_id = re.search(r"Run (\S+) stopped", page.locator("#train-summary").inner_text()).group(1)
    assert "-stories-scratch" in run_id
    page.wait_for_function(f"() => document.querySelector('#resume-run input').value.startsWith('{run_id}')")
    page.locator("#resume-button").click()
    page.locator("#train-summary").get_by_text(re.compile(r"Run \S+ finished")).wait_for(timeout=300_000)
    table = page.locator("#epoch-table").inner_text()
    assert _rows(page) == EPOCHS and re.search(r"(?m)^\s*1\s", table), table
    page.screenshot(path=SHOTS / "journey-05-resumed.png", full_page=True)

    # Evaluate preselects the newest run; Generate offers the run's own names and shows its data.
    page.get_by_role("tab", name="Evaluate").click()
    newest = RunStore(context.store.root).finished()[0].run_id
    page.wait_for_function(f"() => document.querySelector('#eval-run input').value.startsWith('{newest}')")
    page.get_by_role("tab", name="Generate").click()
    page.wait_for_function(f"() => document.querySelector('#gen-model input').value.startsWith('{newest}')")
    assert page.get_by_text("stories.csv").count() >= 1 or "stories" in page.locator("#gen-output").inner_text()
    assert page.get_by_text(NAMES[0], exact=True).count() + page.get_by_text(NAMES[1], exact=True).count() >= 1
    page.wait_for_function(f"() => {json.dumps(NAMES)}.some(n => document.querySelector('#gen-examples').innerText"
                           ".includes(n))")  # the examples are the run's own names, not the sample's
    assert "Asthma" not in page.locator("#gen-examples").inner_text()
    assert page.get_by_text("not medical advice").count() == 1
    page.screenshot(path=SHOTS / "journey-06-generate.png", full_page=True)
    page.close()

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(url)
    phone.get_by_role("tab", name="Train").click()
    phone.wait_for_timeout(1500)
    phone.screenshot(path=SHOTS / "journey-07-phone-train.png", full_page=True)
    phone.close()
