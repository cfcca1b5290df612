"""The live dashboard in a real headless Chromium, watching a running `tradestream up`.

What a user looks for: the page loads clean (no console error, no failed request), its charts
draw, the counts rise while trades flow (pushed by server-sent events, no reload), and the model's
predictions appear beside the prices."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

# The page's own count of the snapshots it rendered, and the figures it shows.
SNAPSHOTS = "() => window.tradestream.snapshots"
TILE = "(stage) => document.querySelector(`[data-stage='${stage}'] .count`)?.textContent ?? ''"
# A canvas has drawn when some pixel is not blank (uPlot paints lines on a transparent canvas).
CHART_DRAWN = """(symbol) => {
  const canvas = document.querySelector(`.chart[data-symbol='${symbol}'] canvas`);
  if (!canvas) return 0;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
  return painted;
}"""
PREDICTED_POINTS = """() => Object.fromEntries(Object.entries(window.tradestream.last?.charts ?? {})
  .map(([s, c]) => [s, c.predicted.filter(v => v !== null).length]))"""


def count(text: str) -> int:
    return int(text.replace(",", "") or 0)


@pytest.fixture
def page(browser: Any, running_up: dict[str, Any]) -> Iterator[tuple[Any, list[str]]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    problems: list[str] = []
    tab.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    # Offline: any request leaving the dashboard's own origin is a CDN the page must not need.
    origin = running_up["dashboard_url"]
    tab.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(origin) else route.abort(),
    )
    tab.goto(origin)
    yield tab, problems
    context.close()


def wait_for(tab: Any, predicate: str, arg: Any = None, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = tab.evaluate(predicate, arg)
        if value:
            return value
        tab.wait_for_timeout(250)
    raise AssertionError(f"timed out waiting for {predicate!r}")


def test_the_page_loads_without_errors_and_updates_itself(
    page: tuple[Any, list[str]], running_up: dict[str, Any]
) -> None:
    tab, problems = page
    # WHEN the page has had a few snapshots pushed to it
    wait_for(tab, "() => window.tradestream.snapshots >= 3")
    # THEN it shows live, and not one console error or failed request happened
    assert tab.text_content("#connection") == "live"
    assert problems == []
    # AND every stage of the pipeline has its tile
    for stage in ("producer", "stream", "hotstore", "lake", "predicted", "dlq", "lake_errors"):
        assert tab.query_selector(f"[data-stage='{stage}']") is not None, stage
    # AND the health list names the components, all up
    health = tab.eval_on_selector_all(
        "#health li", "els => els.map(e => [e.dataset.component, e.className])"
    )
    names = {name for name, _ in health}
    assert {"stream", "hot store", "dlq", "lake", "model", "mapping", "firehose"} <= names
    assert all(state == "up" for _, state in health), health


def test_counts_rise_while_trades_flow_without_a_reload(page: tuple[Any, list[str]]) -> None:
    tab, problems = page
    wait_for(tab, "() => window.tradestream.snapshots >= 1")
    first = count(wait_for(tab, TILE, "hotstore"))
    seen = tab.evaluate(SNAPSHOTS)
    # WHEN the synthetic producer runs on (no navigation; the hot store's exact count is read
    # at most 3 % of the time, so it may take a few seconds to move)
    deadline = time.monotonic() + 30
    while count(tab.evaluate(TILE, "hotstore")) <= first:
        assert time.monotonic() < deadline, "the hot-store count did not rise on the page"
        tab.wait_for_timeout(250)
    # THEN the count and the snapshot count went up, pushed to the same page
    assert tab.evaluate(SNAPSHOTS) > seen
    assert count(tab.evaluate(TILE, "stream")) >= count(tab.evaluate(TILE, "hotstore")) > 0
    assert problems == []


def test_charts_draw_and_a_prediction_appears(
    page: tuple[Any, list[str]], running_up: dict[str, Any]
) -> None:
    tab, problems = page
    # WHEN the lake has delivered enriched trades (every 2 s here)
    predicted = wait_for(
        tab,
        f"() => {{ const p = ({PREDICTED_POINTS})();"
        " return Object.values(p).some(n => n > 0) && p; }",
    )
    symbol = next(s for s, n in predicted.items() if n > 0)
    # THEN that symbol's chart has painted pixels (price and prediction lines)
    assert wait_for(tab, CHART_DRAWN, symbol) > 100
    # AND the predicted tile counts them, and the latest trades table lists trades
    assert count(tab.evaluate(TILE, "predicted")) > 0
    assert len(tab.query_selector_all("#latest tbody tr")) > 0
    # AND the page's figures are the server's (one snapshot, two readers)
    snapshot = httpx.get(f"{running_up['dashboard_url']}/api/snapshot", timeout=10).json()
    assert snapshot["stages"]["predicted"] > 0
    assert symbol in snapshot["charts"]
    assert problems == []
    # A screenshot for docs/ when asked for (DASHBOARD_SCREENSHOT=docs/dashboard.png).
    target = os.environ.get("DASHBOARD_SCREENSHOT")
    if target:
        wait_for(tab, "() => (window.tradestream.last?.model?.n ?? 0) > 0", timeout_s=30)
        tab.wait_for_timeout(1500)
        tab.screenshot(path=str(Path(target)), full_page=True)
