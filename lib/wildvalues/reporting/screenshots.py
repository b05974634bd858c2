"""PNG screenshots of the report's views, taken in a headless Chromium driven by Playwright.

The page is given as HTML text and the screenshots come back as bytes (no files written here:
the runner writes and logs them with the report). `report.screenshots` decides: auto takes them
when Playwright and the browser are both present, true requires them, false never takes them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

from wildvalues.settings.sections import ConfigError

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WIDTH, HEIGHT = 1200, 900  # the viewport; each screenshot is its view element, whatever its height
TIMEOUT_MS = 60_000
MAX_HEIGHT = 2400  # px: a long view (the values table of a large run) is shot from its top down to this
# The view's box in page coordinates, or null when the page has no such view.
_BOX_JS = """view => {
  const element = document.querySelector('[data-view="' + view + '"]');
  if (!element) { return null; }
  const r = element.getBoundingClientRect();
  return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height};
}"""


def unavailable_reason(browser: str) -> str | None:
    """Why screenshots cannot be taken here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[screenshots]')"
    if not os.access(browser, os.X_OK):
        return f"no browser at {browser} (apt-get install -y chromium, or set report.browser)"
    return None


def wanted(mode: str | bool, browser: str) -> bool:
    """Whether to take screenshots under report.screenshots; a one-line error when true cannot be met."""
    if mode is False:
        return False
    reason = unavailable_reason(browser)
    if mode is True and reason:
        raise ConfigError(f"report.screenshots is true but {reason}")
    return reason is None


def capture_views(page_html: str, views: Sequence[str], browser: str) -> dict[str, bytes]:
    """A PNG of each `data-view` element named in views (those the page lacks are skipped), by view."""
    from playwright.sync_api import sync_playwright

    shots: dict[str, bytes] = {}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=list(CHROMIUM_ARGS))
        try:
            page = chromium.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            # Offline by construction: any request other than the page itself is refused.
            page.route("**/*", lambda route: route.abort())
            page.set_content(page_html, wait_until="load", timeout=TIMEOUT_MS)
            page.wait_for_function("() => window.Plotly !== undefined", timeout=TIMEOUT_MS)
            for view in views:
                box = page.evaluate(_BOX_JS, view)
                if box is not None:
                    height = min(box["height"], MAX_HEIGHT)
                    shots[view] = page.screenshot(
                        clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": height},
                        full_page=True,
                        timeout=TIMEOUT_MS,
                        animations="disabled",
                    )
        finally:
            chromium.close()
    return shots


def take(page_html: str, views: Sequence[str], mode: str | bool, browser: str) -> tuple[dict[str, bytes], str | None]:
    """The views' screenshots under report.screenshots, and a note when auto did not take them (and why)."""
    if not wanted(mode, browser):
        reason = unavailable_reason(browser) if mode == "auto" else None
        return {}, f"screenshots skipped: {reason}" if reason else None
    from playwright.sync_api import Error as PlaywrightError

    try:
        return capture_views(page_html, views, browser), None
    except PlaywrightError as error:
        if mode is True:
            raise ConfigError(f"report.screenshots: the browser failed: {str(error).splitlines()[0]}") from error
        return {}, f"screenshots skipped: the browser failed ({str(error).splitlines()[0]})"
