"""Counters and gauges out of a Prometheus text exposition, summed over their labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample_totals(text: str) -> dict[str, float]:
    """Sample name -> value summed over labels (``ingest_trades_accepted_total`` -> 1234.0)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return totals


def labelled(text: str, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """One sample's values by the given labels, e.g. the iterator age by (stage, shard)."""
    values: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                values[tuple(sample.labels.get(label, "") for label in labels)] = sample.value
    return values


def fetch(client: httpx.Client, url: str) -> str:
    response = client.get(url, timeout=2.0)
    response.raise_for_status()
    return response.text
