"""A plan as text for a person (ending with the deploy command line) or as one JSON object."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tradestream.capacity.costs import Cost
from tradestream.capacity.model import Plan, Scenario
from tradestream.capacity.prices import PRICES_READ_ON, SOURCES

COMPONENTS = ("kinesis", "hotstore", "dynamodb", "firehose", "enrich", "s3", "sagemaker")


def by_component(scenario: Scenario) -> dict[str, float]:
    totals = dict.fromkeys(COMPONENTS, 0.0)
    for cost in scenario.costs:
        totals[cost.component] += cost.monthly_usd
    return totals


# --- JSON -----------------------------------------------------------------------------------------


def as_dict(plan: Plan) -> dict[str, Any]:
    load = plan.load
    return {
        "load": {
            "trades_per_second": load.trades_per_second,
            "avg_trade_bytes": load.avg_trade_bytes,
            "symbols": load.symbols,
            "partition_key_bytes": load.partition_key_bytes,
            "aggregate_target_bytes": load.aggregate_target_bytes,
        },
        "region": plan.prices.region,
        "prices_read_on": PRICES_READ_ON,
        "price_sources": SOURCES,
        "without_aggregation": _scenario(plan.without_aggregation),
        "with_aggregation": _scenario(plan.with_aggregation),
        "deploy": {
            "for": plan.deploy.scenario,
            "stream_mode": plan.deploy.stream_mode,
            "shards": plan.deploy.shards,
            "inference": plan.deploy.inference,
            "command": plan.deploy.command,
        },
        "notes": list(plan.notes),
    }


def _scenario(s: Scenario) -> dict[str, Any]:
    stream, lake, inference = s.kinesis.stream, s.lake, s.inference
    return {
        "shards": s.shards,
        "monthly_usd": _usd(s.monthly_usd),
        "monthly_usd_by_component": {k: _usd(v) for k, v in by_component(s).items()},
        "kinesis": {
            "stream_mode": s.kinesis.mode,
            "trades_per_record": stream.trades_per_record,
            "record_bytes": stream.record_bytes,
            "records_per_second": _number(stream.records_per_second),
            "bytes_per_second": _number(stream.bytes_per_second),
            "shards_by_limit": stream.shards_by_limit,
            "binding_limit": stream.binding_limit,
            "put_payload_units_per_second": _number(stream.put_payload_units_per_second),
            "provisioned_usd": _usd(s.kinesis.provisioned_usd),
            "on_demand_usd": _usd(s.kinesis.on_demand_usd),
        },
        "mapping": {
            "parallelization_factor": s.mapping.parallelization_factor,
            "lambda_concurrency": s.mapping.concurrency,
            "invocations_per_second": _number(s.mapping.invocations_per_second),
        },
        "dynamodb": {
            "write_units_per_item": s.dynamodb.write_units_per_item,
            "write_units_per_second": s.dynamodb.write_units_per_second,
            "stored_gb": _number(s.dynamodb.stored_gb),
            "provisioned_write_capacity_units": s.dynamodb.provisioned_write_capacity_units,
            "provisioned_usd": _usd(s.dynamodb.provisioned_usd),
        },
        "firehose": {
            "billed_gb_per_month": _number(lake.firehose_billed_gb_per_month),
            "lake_gb_per_month": _number(lake.lake_gb_per_month),
            "objects_per_month": _number(lake.objects_per_month),
        },
        "enrich": {
            "invocations_per_second": _number(lake.enrich_invocations_per_second),
            "concurrency": lake.enrich_concurrency,
        },
        "s3": {
            "stored_gb_per_month": _number(lake.stored_gb_per_month),
            "put_requests_per_month": _number(lake.objects_per_month),
        },
        "sagemaker": {
            "mode": inference.mode,
            "invocations_per_second": _number(inference.invocations_per_second),
            "predictions_per_second": inference.predictions_per_second,
            "serverless_concurrency": _number(inference.serverless_concurrency),
            "realtime_instances": inference.realtime_instances,
            "realtime_instance_type": inference.realtime_instance_type,
            "serverless_usd": _usd(inference.serverless_usd),
            "realtime_usd": _usd(inference.realtime_usd),
        },
        "costs": [_cost(c) for c in s.costs],
    }


def _cost(cost: Cost) -> dict[str, Any]:
    return {
        "component": cost.component,
        "item": cost.item,
        "quantity": _number(cost.quantity),
        "unit": cost.unit,
        "unit_usd": cost.unit_usd,
        "monthly_usd": _usd(cost.monthly_usd),
    }


def _usd(value: float) -> float:
    return round(value, 2)


def _number(value: Any) -> float:
    return round(float(value), 4)


# --- text -----------------------------------------------------------------------------------------

Row = tuple[str, Callable[[Scenario], str]]
_TITLES = {"without_aggregation": "without aggregation", "with_aggregation": "with aggregation"}


def as_text(plan: Plan) -> str:
    load = plan.load
    without, with_ = plan.without_aggregation, plan.with_aggregation
    lines = [
        f"tradestream plan: {load.trades_per_second:,} trades/s of {load.avg_trade_bytes} bytes, "
        f"{load.symbols} symbol(s), {plan.prices.region} list prices read {PRICES_READ_ON}",
        "",
        _header("", "without aggregation", "with aggregation"),
    ]
    for section, rows in _SECTIONS:
        lines.append(section)
        lines.extend(_row(f"  {name}", value(without), value(with_)) for name, value in rows)
    lines += ["", _header("Monthly cost, USD", "without aggregation", "with aggregation")]
    totals = by_component(without), by_component(with_)
    for component in COMPONENTS:
        label = f"  {component}{_mode(with_, component)}"
        lines.append(_row(label, _money(totals[0][component]), _money(totals[1][component])))
    lines.append(_row("  total", _money(without.monthly_usd), _money(with_.monthly_usd)))
    chosen = with_ if plan.deploy.aggregated else without
    lines += ["", f"Made of ({_TITLES[plan.deploy.scenario]}): quantity a month x unit price"]
    lines.extend(_itemised(chosen.costs))
    if plan.notes:
        lines += ["", "Notes:"]
        lines.extend(f"  - {note}" for note in plan.notes)
    setting = "true" if plan.deploy.aggregated else "false"
    lines += ["", f"Deploy it, for AGGREGATION={setting}:", plan.deploy.command]
    return "\n".join(lines)


def _mode(scenario: Scenario, component: str) -> str:
    if component == "kinesis":
        return f" ({scenario.kinesis.mode.lower().replace('_', '-')})"
    if component == "sagemaker":
        return f" ({scenario.inference.mode})"
    if component == "dynamodb":
        return " (on-demand)"
    return ""


def _itemised(costs: Iterable[Cost]) -> list[str]:
    return [
        f"  {c.component:<10}{c.item:<42}{c.quantity:>16,.2f} {c.unit:<17}"
        f"x {_price(c.unit_usd):<13}= {c.monthly_usd:>11,.2f}"
        for c in costs
    ]


def _header(first: str, left: str, right: str) -> str:
    return f"{first:<44}{left:>22}{right:>22}"


def _row(name: str, left: str, right: str) -> str:
    return f"{name:<44}{left:>22}{right:>22}"


def _price(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".")


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _int(value: Any) -> str:
    return f"{float(value):,.0f}"


def _dec(value: Any) -> str:
    return f"{float(value):,.2f}"


_SECTIONS: tuple[tuple[str, tuple[Row, ...]], ...] = (
    (
        "Kinesis",
        (
            ("trades per Kinesis record", lambda s: _int(s.kinesis.stream.trades_per_record)),
            ("record bytes (data + key)", lambda s: _int(s.kinesis.stream.record_bytes)),
            ("records/s", lambda s: _dec(s.kinesis.stream.records_per_second)),
            ("shards", lambda s: str(s.shards)),
            ("binding limit", lambda s: s.kinesis.stream.binding_limit),
            ("PUT payload units/s", lambda s: _dec(s.kinesis.stream.put_payload_units_per_second)),
            ("on-demand instead, USD/month", lambda s: _money(s.kinesis.on_demand_usd)),
        ),
    ),
    (
        "Event source mapping -> hotstore",
        (
            ("parallelization factor", lambda s: str(s.mapping.parallelization_factor)),
            ("Lambda concurrency (shards x factor)", lambda s: str(s.mapping.concurrency)),
            ("invocations/s", lambda s: _dec(s.mapping.invocations_per_second)),
        ),
    ),
    (
        "DynamoDB (on-demand, one item per trade)",
        (
            ("write units per item", lambda s: str(s.dynamodb.write_units_per_item)),
            ("write units/s", lambda s: _int(s.dynamodb.write_units_per_second)),
            ("stored GB (TTL)", lambda s: _dec(s.dynamodb.stored_gb)),
            (
                "provisioned instead: WCU",
                lambda s: _int(s.dynamodb.provisioned_write_capacity_units),
            ),
            ("provisioned instead: USD/month", lambda s: _money(s.dynamodb.provisioned_usd)),
        ),
    ),
    (
        "Firehose -> enrich -> S3",
        (
            ("Firehose billed GB/month", lambda s: _dec(s.lake.firehose_billed_gb_per_month)),
            ("lake GB/month (NDJSON)", lambda s: _dec(s.lake.lake_gb_per_month)),
            ("S3 growth GB/month (gzip)", lambda s: _dec(s.lake.stored_gb_per_month)),
            ("S3 objects/month", lambda s: _int(s.lake.objects_per_month)),
            ("enrich invocations/s", lambda s: _dec(s.lake.enrich_invocations_per_second)),
            ("enrich concurrency", lambda s: str(s.lake.enrich_concurrency)),
        ),
    ),
    (
        "SageMaker",
        (
            ("InvokeEndpoint calls/s", lambda s: _dec(s.inference.invocations_per_second)),
            ("predictions/s", lambda s: _int(s.inference.predictions_per_second)),
            ("serverless concurrency", lambda s: _dec(s.inference.serverless_concurrency)),
            (
                "real-time instances",
                lambda s: f"{s.inference.realtime_instances} {s.inference.realtime_instance_type}",
            ),
            ("serverless, USD/month", lambda s: _money(s.inference.serverless_usd)),
            ("real-time, USD/month", lambda s: _money(s.inference.realtime_usd)),
        ),
    ),
)
