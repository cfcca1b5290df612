"""Helpers shared by the benchmarks: timing, call counting and report formatting."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class CallCounter:
    """Counts AWS API calls made by a (boto3 or aiobotocore) client, via botocore's event hooks."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, client: Any) -> Any:
        def count(model: Any, **_: Any) -> None:
            self.calls[model.name] += 1

        client.meta.events.register("before-call.*.*", count)
        return client

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    timing: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield timing
    finally:
        timing["seconds"] = time.perf_counter() - started


def percentile(values: list[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def report(title: str, rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    """Print a Markdown table (for docs/) and a JSON line (for machines)."""
    print(f"\n### {title}\n")
    headers = list(rows[0])
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(_fmt(row[h]) for h in headers) + " |")
    for key, value in extra.items():
        print(f"\n- {key}: {_fmt(value)}")
    print("\n" + json.dumps({"benchmark": title, "rows": rows, **extra}))


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
