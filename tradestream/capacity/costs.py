"""A priced line, and the two lines every Lambda function costs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tradestream.capacity.prices import SECONDS_PER_MONTH, Prices


@dataclass(frozen=True)
class Cost:
    """One priced line: ``quantity`` units a month at ``unit_usd`` each."""

    component: str
    item: str
    quantity: float
    unit: str
    unit_usd: float

    @property
    def monthly_usd(self) -> float:
        return self.quantity * self.unit_usd


def total(costs: Iterable[Cost]) -> float:
    return sum(cost.monthly_usd for cost in costs)


def lambda_costs(
    function: str,
    invocations_per_second: float,
    busy_seconds_per_second: float,
    memory_mb: int,
    prices: Prices,
) -> tuple[Cost, ...]:
    requests = invocations_per_second * SECONDS_PER_MONTH
    gb_seconds = busy_seconds_per_second * SECONDS_PER_MONTH * memory_mb / 1024
    return (
        Cost(
            function,
            "Lambda requests",
            requests / 1e6,
            "million requests",
            prices.lambda_requests_per_million,
        ),
        Cost(
            function,
            f"Lambda duration ({memory_mb} MB)",
            gb_seconds,
            "GB-second",
            prices.lambda_gb_second,
        ),
    )
