"""What both functions publish as CloudWatch metrics: one invocation's figures, as ONE blob of
CloudWatch's Embedded Metric Format (EMF) on stdout, which Lambda's log stream turns into metrics.

Namespace ``tradestream``; dimensions ``service`` (the stage: ``hotstore``, ``enrich``) and
``function_name`` (the invocation's function, so two deployments in one account stay apart). A
function totals its figures over the invocation (``Figures``) and ``publish`` writes them once:
never a blob, nor a metric value, per record. Every figure is published, zeros included, so a
dashboard shows 0 rather than a gap; a figure that has no value for the batch (a latency with
nothing written) is left out.

The names are constants in each function's ``metrics`` module; alarms.yaml's dashboard charts
exactly those (tests/functional/test_dashboard.py holds them equal).

Powertools' ``EphemeralMetrics``, one per invocation, rather than a module-level ``Metrics``:
``Metrics`` keeps its metric set at class level, shared by every instance in the process, while the
local runtime runs both functions, and one invocation per shard, concurrently in one process; and
with ``POWERTOOLS_METRICS_DISABLED`` set, a flush keeps that set, which then grows by a value per
invocation until Powertools prints it anyway at 100 values. A discarded per-invocation provider
has neither problem. ``POWERTOOLS_METRICS_DISABLED=true`` (or ``POWERTOOLS_DEV=true``) keeps EMF off
stdout, as the embedded stack wants; the namespace is set here, so no environment is needed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

NAMESPACE = "tradestream"
FUNCTION_DIMENSION = "function_name"
COUNT = MetricUnit.Count
MILLISECONDS = MetricUnit.Milliseconds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: MetricUnit = COUNT


class Figures:
    """One invocation's figures, by metric; each metric is set once, to its batch total."""

    def __init__(self) -> None:
        self._values: dict[Metric, float] = {}

    def set(self, metric: Metric, value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"{metric.name}: {value} is not a finite number")
        self._values[metric] = value

    def __iter__(self) -> Iterator[tuple[Metric, float]]:
        return iter(self._values.items())

    def __len__(self) -> int:
        return len(self._values)

    def by_name(self) -> dict[str, float]:
        return {metric.name: value for metric, value in self._values.items()}


def publish(figures: Figures, *, service: str, context: Any = None) -> None:
    """Print ``figures`` as one EMF blob (nothing when metrics are disabled or there are none).

    Never raises: the invocation's work is done and its answer must still reach Lambda, so a
    metric that cannot be published is logged instead.
    """
    if not len(figures):
        return
    try:
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=service)
        function_name = getattr(context, "function_name", None)
        if isinstance(function_name, str) and function_name:
            metrics.add_dimension(name=FUNCTION_DIMENSION, value=function_name)
        for metric, value in figures:
            metrics.add_metric(name=metric.name, unit=metric.unit, value=value)
        metrics.flush_metrics(raise_on_empty_metrics=True)
    except Exception:
        log.exception("the invocation's metrics could not be published", extra={"service": service})
