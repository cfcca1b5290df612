"""What the live dashboard costs the pipeline: the embedded demo's end-to-end trades/s with no
dashboard, with the dashboard served but no page open, and with a headless Chromium watching it,
in one run (each a fresh embedded stack, same seeded trades).

Run: ``python -m bench.dashboard [--trades 10000]``. Needs a Chromium (Debian's ``chromium``, or
CHROMIUM_PATH) for the third row. The dashboard reads the pipeline only while a page is open, so
the first two rows should match; the third shows the price of one page reading once a second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import report
from tradestream.cli.demo import DemoResult, run_demo
from tradestream.local.runtime import EmbeddedStack

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def watching_browser() -> Iterator[Callable[[EmbeddedStack], None]]:
    """An ``on_ready`` that opens the stack's dashboard in a headless Chromium, kept open until
    the demo ends. Playwright's sync API runs an event loop of its own, so it lives in a thread
    (the demo runs its producer with asyncio.run in this one)."""
    executable = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if executable is None:
        raise SystemExit("no chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    opened, done = threading.Event(), threading.Event()
    rendered: list[int] = []

    def watch(url: str) -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_function("() => window.tradestream.snapshots >= 1", timeout=30_000)
            opened.set()
            while not done.wait(0.5):
                page.wait_for_timeout(1)  # lets Playwright handle the page's events
            rendered.append(page.evaluate("() => window.tradestream.snapshots"))
            browser.close()

    threads: list[threading.Thread] = []

    def open_page(stack: EmbeddedStack) -> None:
        thread = threading.Thread(target=watch, args=(stack.extra["dashboard_url"],), daemon=True)
        thread.start()
        threads.append(thread)
        if not opened.wait(60):
            raise RuntimeError("the dashboard page did not render a snapshot within 60 s")

    try:
        yield open_page
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
        print(f"the page rendered {rendered[0] if rendered else 0} snapshots", file=sys.stderr)


def _row(name: str, result: DemoResult) -> dict[str, Any]:
    assert result.drained, f"{name}: the demo did not drain"
    assert result.hotstore_items == result.produced == result.lake_records, result
    return {
        "run": name,
        "trades": result.produced,
        "seconds": result.elapsed_s,
        "trades/s": result.trades_per_s,
        "latency p50 ms": result.latency_ms["p50"],
        "latency p99 ms": result.latency_ms["p99"],
    }


RUNS = {
    "none": "no dashboard",
    "served": "dashboard served, no page open",
    "watched": "dashboard open in Chromium",
}


def run_one(kind: str, n: int) -> DemoResult:
    if kind == "none":
        return run_demo(n, rate=0, timeout=900, dashboard=False)
    if kind == "served":
        return run_demo(n, rate=0, timeout=900)
    with watching_browser() as open_page:
        return run_demo(n, rate=0, timeout=900, on_ready=open_page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=10_000)
    parser.add_argument("--one", choices=sorted(RUNS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DASHBOARD_PORT"] = "0"
    n = args.trades
    if args.one:  # one run, in a process of its own: its result as the last stdout line
        print(json.dumps(run_one(args.one, n).to_json()))
        return
    # Each run in a fresh process: embedded stacks run one after another in one process get
    # slower (781 -> 443 trades/s over four runs here), which would bias whichever runs last.
    rows = []
    for kind, name in RUNS.items():
        done = subprocess.run(
            [sys.executable, "-m", "bench.dashboard", "--trades", str(n), "--one", kind],
            capture_output=True,
            text=True,
            check=True,
        )
        last = [line for line in done.stdout.splitlines() if line.startswith('{"produced"')][-1]
        rows.append(_row(name, DemoResult(**json.loads(last))))
    report(
        f"Dashboard cost: the embedded demo, {n:,} trades, as fast as it goes",
        rows,
        {
            "trades/s with a page open / without a dashboard": rows[2]["trades/s"]
            / rows[0]["trades/s"],
            "trades/s served without a page / without a dashboard": rows[1]["trades/s"]
            / rows[0]["trades/s"],
        },
    )


if __name__ == "__main__":
    main()
