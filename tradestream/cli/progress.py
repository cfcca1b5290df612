"""What `tradestream demo` shows while it runs and when it ends, drawn by rich.

Progress goes to stderr: on a terminal a live table (stage, count, rate over the last few
seconds) redrawn about four times a second; anywhere else (a CI log, a pipe) one plain line every
few seconds, with no escape codes, so a log stays readable and greppable. The summary goes to
stdout as a table of human labels; piped, rich prints it without styles.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

log = logging.getLogger(__name__)

Snapshot = Callable[[], Mapping[str, int | float]]

TERMINAL_INTERVAL_S = 0.25
LOG_INTERVAL_S = 5.0
RATE_WINDOW_S = 5.0
SUMMARY_TITLE = "tradestream demo: summary"
MISSING = "\N{EN DASH}"  # "-" would read as a negative number or a bullet

# The summary's keys (DemoResult.to_json()) as a reader says them: (label, unit).
SUMMARY_LABELS: dict[str, tuple[str, str]] = {
    "produced": ("produced", ""),
    "published_records": ("published records", ""),
    "hotstore_items": ("hot-store items", ""),
    "dlq": ("DLQ", ""),
    "lake_records": ("lake records", ""),
    "predicted": ("predicted", ""),
    "lake_errors": ("lake errors", ""),
    "latency_ms": ("latency", "ms"),
    "drained": ("drained", ""),
    "elapsed_s": ("elapsed", "s"),
    "trades_per_s": ("trades/s", ""),
}
UNIT_SUFFIXES = (("_per_s", "/s"), ("_ms", "ms"), ("_s", "s"))


class RateWindow:
    """Per-key rates over the last ``window`` seconds of samples, not since the start: a stage
    that stalls shows 0/s within a window instead of a slowly sinking average."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self._window = window
        self._samples: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, now: float, counts: Mapping[str, float]) -> dict[str, float | None]:
        """Record a sample; the rate of each key (None until there are two samples of it)."""
        self._samples.append((now, dict(counts)))
        # Keep the newest sample that is at least a window old, as the baseline.
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()
        since, first = self._samples[0]
        span = now - since
        return {
            key: (value - first[key]) / span if span > 0 and key in first else None
            for key, value in counts.items()
        }


def format_number(value: Any) -> str:
    """Thousands separated, at most two decimals, yes/no, and a dash for nothing."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            return str(value)
        text = f"{float(value):,.2f}"
        return text.rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(format_number(v) for v in value) or MISSING
    return str(value)


def _label(key: str) -> tuple[str, str]:
    if key in SUMMARY_LABELS:
        return SUMMARY_LABELS[key]
    for suffix, unit in UNIT_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            name = key.removesuffix(suffix).replace("_", " ")
            return (f"{name}/s", "") if unit == "/s" else (name, unit)
    return key.replace("_", " "), ""


def _with_unit(label: str, unit: str) -> str:
    return f"{label} ({unit})" if unit else label


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows; a nested mapping becomes one row per entry ("latency p50 (ms)")."""
    rows: list[tuple[str, str]] = []
    for key, value in summary.items():
        label, unit = _label(key)
        if isinstance(value, Mapping):
            if not value:
                rows.append((_with_unit(label, unit), MISSING))
            for sub_key, sub_value in value.items():
                for sub_label, text in summary_rows({sub_key: sub_value}):
                    rows.append((_with_unit(f"{label} {sub_label}", unit), text))
        else:
            rows.append((_with_unit(label, unit), format_number(value)))
    return rows


def print_summary(
    summary: Mapping[str, Any], *, console: Console | None = None, title: str = SUMMARY_TITLE
) -> None:
    """The demo's summary as a table on stdout (or ``console``)."""
    # No box and no header: piped, it reads as plain "label  value" lines.
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=None,
        show_header=False,
        pad_edge=False,
        padding=(0, 2),
    )
    table.add_column("label", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for label, text in summary_rows(summary):
        table.add_row(label, text)
    (console or Console()).print(table)


def _progress_table(counts: Mapping[str, float], rates: Mapping[str, float | None]) -> Table:
    table = Table(box=box.SIMPLE, title="tradestream demo", title_justify="left")
    table.add_column("stage", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column(f"rate (/s, last {RATE_WINDOW_S:g} s)", justify="right", no_wrap=True)
    for key, value in counts.items():
        rate = rates.get(key)
        table.add_row(
            key.replace("_", " "), format_number(value), MISSING if rate is None else f"{rate:,.0f}"
        )
    return table


def _progress_line(
    elapsed: float, counts: Mapping[str, float], rates: Mapping[str, float | None]
) -> str:
    parts = []
    for key, value in counts.items():
        rate = rates.get(key)
        per_s = f" ({rate:,.0f}/s)" if rate is not None else ""
        parts.append(f"{key.replace('_', ' ')} {format_number(value)}{per_s}")
    return f"tradestream demo: {elapsed:,.0f}s " + " | ".join(parts)


class _Progress:
    """The polling thread's state: the last good sample and the rates, drawn one of two ways."""

    def __init__(self, snapshot: Snapshot, console: Console, live: Live | None) -> None:
        self._snapshot = snapshot
        self._console = console
        self._live = live
        self._rates = RateWindow()
        self._started = time.monotonic()
        self._last: tuple[Mapping[str, float], Mapping[str, float | None]] | None = None

    def sample(self) -> bool:
        """Take one snapshot; False (and the previous one kept) when it failed."""
        try:
            counts = dict(self._snapshot())
            rates = self._rates.add(time.monotonic(), counts)
        except Exception:  # a failed read costs one tick, never the progress display
            log.debug("progress snapshot failed; skipping this tick", exc_info=True)
            return False
        self._last = (counts, rates)
        return True

    def draw(self) -> None:
        if self._last is None:
            return
        counts, rates = self._last
        if self._live is not None:
            self._live.update(_progress_table(counts, rates), refresh=True)
        else:
            line = _progress_line(time.monotonic() - self._started, counts, rates)
            self._console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def tick(self) -> None:
        if self.sample():
            self.draw()


@contextmanager
def live_progress(
    snapshot: Snapshot,
    *,
    console: Console | None = None,
    interval: float | None = None,
) -> Iterator[None]:
    """Show ``snapshot()``'s counts while the block runs, and once more when it ends.

    A terminal gets a live table every ``interval`` s (0.25 by default); anything else a plain
    line every ``interval`` s (5 by default). ``snapshot`` is called from a thread of its own; when
    it raises, that tick is skipped. Defaults to stderr, so stdout keeps carrying results only.
    """
    console = console or Console(stderr=True)
    terminal = console.is_terminal and not console.is_dumb_terminal
    if interval is None:
        interval = TERMINAL_INTERVAL_S if terminal else LOG_INTERVAL_S
    live = (
        Live(console=console, auto_refresh=False, redirect_stdout=False, transient=False)
        if terminal
        else None
    )
    progress = _Progress(snapshot, console, live)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            progress.tick()

    progress.sample()  # the baseline for the first rates
    thread = threading.Thread(target=loop, name="demo-progress", daemon=True)
    if live is not None:
        live.start()
        progress.draw()
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        progress.sample()  # the final counts; if that read fails, the last good one stands
        progress.draw()
        if live is not None:
            live.stop()
