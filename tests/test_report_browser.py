"""The report's explorer in a real headless Chromium (Debian's, driven by Playwright): it loads
offline without console errors, the values table searches and sorts, the sunburst drills down,
and the report writes a screenshot of each view. One report is built for the whole module."""

from __future__ import annotations

import importlib
import os
import struct
from dataclasses import dataclass
from typing import Any

import pytest

from wildvalues.analysis.label_audit import SUPPRESSED_LABEL
from wildvalues.reporting import report, screenshots
from wildvalues.settings.sections import ReportSettings

# The handmade run of tests/test_report.py (tests/ is on sys.path, not a package mypy can follow).
handmade = importlib.import_module("test_report")
K, PLANTED, RUN = handmade.K, handmade.PLANTED, handmade.RUN
BROWSER = ReportSettings().browser
EXPECTED_VIEWS = ["taxonomy", "values", "context_heatmap", "response_types", "mirroring", "anomalies"]


def _require_browser() -> None:
    reason = screenshots.unavailable_reason(BROWSER)
    if reason is None:
        return
    if os.environ.get("CI"):  # make test installs Chromium: in CI its absence is a failure
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(f"no headless browser here: {reason}")


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    _require_browser()
    store = handmade.make_store(spark, str(tmp_path_factory.mktemp("browser_out")))
    out = str(tmp_path_factory.mktemp("browser_report"))
    settings = ReportSettings(screenshots=True, browser=BROWSER)
    return report.build_report(store, RUN, out, K, metrics={"conversations": 1234.0}, settings=settings)


@pytest.fixture(scope="module")
def chromium(built):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=BROWSER, args=list(screenshots.CHROMIUM_ARGS))
        yield browser
        browser.close()


@dataclass
class Opened:
    page: Any  # playwright's Page
    problems: list[str]  # console errors, page errors and network requests seen so far


@pytest.fixture
def opened(chromium, built):
    """The report opened from its file, every request other than file:// refused and recorded."""
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    def refuse_network(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            problems.append(f"request to {route.request.url}")
            route.abort()

    page.route("**/*", refuse_network)
    page.goto(f"file://{built.html_path}", wait_until="load")
    page.wait_for_function("() => document.querySelector('#sunburst .main-svg') !== null")
    yield Opened(page, problems)
    context.close()


def _visible_values(page) -> list[str]:
    return page.eval_on_selector_all(
        "#values-table tbody tr", "rows => rows.filter(r => !r.hidden).map(r => r.cells[0].textContent)"
    )


def test_loads_offline_with_no_console_errors(opened):
    page = opened.page
    assert page.title() == f"wildvalues report {RUN}"
    charts = page.eval_on_selector_all(".js-plotly-plot", "divs => divs.map(d => d.id)")
    assert charts == ["sunburst", "heatmap", "response-types", "mirroring-bars"]
    assert opened.problems == []


def test_search_filters_and_headers_sort_the_values_table(opened):
    page = opened.page
    # k and the auditor leave two values: the planted one is audited out, the others are below k.
    assert _visible_values(page) == ["helpfulness", "honesty"]
    search = page.locator("#values-table-search")
    search.fill("HON")
    assert _visible_values(page) == ["honesty"]
    search.fill("practical")  # the top category column matches too
    assert _visible_values(page) == ["helpfulness", "honesty"]
    search.fill("no such value")
    assert _visible_values(page) == []
    search.fill("")
    header = page.locator("#values-table th", has_text="expressions")
    header.click()
    assert _visible_values(page) == ["honesty", "helpfulness"]  # 60, 80 expressions
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert _visible_values(page) == ["helpfulness", "honesty"]
    assert PLANTED not in page.content()
    assert opened.problems == []


def _slice_labels(page) -> list[str]:
    return page.eval_on_selector_all("#sunburst g.slice text", "texts => texts.map(t => t.textContent)")


def test_a_click_on_a_top_category_drills_down(opened):
    page = opened.page
    assert _slice_labels(page) == ["all AI values", "Practical values", SUPPRESSED_LABEL]  # root, top, level 2
    page.evaluate(
        "() => { window.clicked = []; document.getElementById('sunburst')"
        ".on('plotly_sunburstclick', e => window.clicked.push(e.points[0].id)); }"
    )
    label = page.locator("#sunburst g.slice text", has_text="Practical values")
    label.scroll_into_view_if_needed()  # the mouse clicks viewport coordinates
    box = label.bounding_box()
    assert box is not None
    # The label does not take pointer events: click the wedge under its middle.
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => document.getElementById('sunburst').data[0].level === 'L3/l3:a'")
    # The transition ends with the top category in the centre and the root gone.
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#sunburst g.slice text'))"
        ".map(t => t.textContent).join('|') === 'Practical values|[suppressed label]|Name l1a'"
    )
    assert page.evaluate("() => window.clicked") == ["L3/l3:a"]
    assert _slice_labels(page) == ["Practical values", SUPPRESSED_LABEL, "Name l1a"]  # top, level 2, level 1
    assert opened.problems == []


def _png_size(path: str) -> tuple[int, int]:
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_a_screenshot_of_each_view_is_written_beside_the_report(built):
    folder = os.path.dirname(built.html_path)
    assert built.screenshot_paths == [os.path.join(folder, f"view_{view}.png") for view in EXPECTED_VIEWS]
    for path in built.screenshot_paths:
        width, height = _png_size(path)
        assert width > 600 and height > 100, path


def test_without_playwright_or_a_browser_the_reason_says_which(monkeypatch):
    _require_browser()  # playwright is there (the test extra): the browser path is then what decides
    assert screenshots.unavailable_reason("/nonexistent/chromium") == (
        "no browser at /nonexistent/chromium (apt-get install -y chromium, or set report.browser)"
    )
    real = screenshots.importlib.util.find_spec
    monkeypatch.setattr(
        screenshots.importlib.util, "find_spec", lambda name: None if name == "playwright" else real(name)
    )
    assert screenshots.unavailable_reason(BROWSER) == (
        "the playwright package is not installed (pip install -e '.[screenshots]')"
    )
