"""A real headless Chromium (the system's: Debian's `chromium`), driven by Playwright, and a
`tradestream up` with the synthetic producer for it to watch. Without a Chromium on the machine
every browser test skips, saying so; `.ci/run` installs one, so in CI they run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Headless and quiet: no GPU, no sandbox (CI runs as root), no background network calls.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# until it is stopped, and asyncio.run() in any later test would refuse to start under it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "no Chromium found (apt-get install chromium, or set CHROMIUM_PATH): "
            "the browser tests need a real one"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def running_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`tradestream up --source synthetic` as a user starts it, its lake delivered every 2 s so
    predictions reach the page within seconds; the ready line as a dict."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env |= {"SYNTHETIC_RATE": "200", "DASHBOARD_PORT": "0", "LAKE_S3_INTERVAL_SECONDS": "2"}
    log = tmp_path_factory.mktemp("up") / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradestream.cli.main", "up", "--source", "synthetic"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"`tradestream up` ended before its ready line:\n{log.read_text()[-3000:]}"
        yield json.loads(line)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
