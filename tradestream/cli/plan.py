"""The `tradestream plan` command, for ``tradestream.cli.main`` to add:

    from tradestream.cli.plan import plan_command
    main.add_command(plan_command)

Core only (no extra, no AWS call). stdout carries the plan: text ending with the
`tradestream deploy` command line to use, or with ``--json`` one JSON object.
"""

from __future__ import annotations

import json

import click

from tradestream.aggregation import (
    AGGREGATION_DEFAULT,
    AGGREGATION_DEFAULT_MAX_BYTES,
    AGGREGATION_MAX_MAX_BYTES,
    AGGREGATION_MIN_MAX_BYTES,
)
from tradestream.capacity.load import DEFAULT_TRADE_BYTES, Load, PlanInputError
from tradestream.capacity.model import plan
from tradestream.capacity.prices import PRICES, UnknownRegionError, prices_for
from tradestream.capacity.render import as_dict, as_text

_REGION_HELP = f"Region whose prices to use; known: {', '.join(sorted(PRICES))}."


@click.command("plan")
@click.option(
    "--trades-per-second",
    type=click.IntRange(min=1),
    required=True,
    help="The steady load to plan for.",
)
@click.option(
    "--avg-trade-bytes",
    type=click.IntRange(min=2),
    default=DEFAULT_TRADE_BYTES,
    show_default=True,
    help="A trade record's JSON (the synthetic market's average is 125).",
)
@click.option(
    "--symbols",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Distinct symbols: the lake writes one object per symbol and buffer.",
)
@click.option(
    "--aggregate-bytes",
    type=click.IntRange(AGGREGATION_MIN_MAX_BYTES, AGGREGATION_MAX_MAX_BYTES),
    default=AGGREGATION_DEFAULT_MAX_BYTES,
    show_default=True,
    help="The producer's AGGREGATION_MAX_BYTES: a KPL aggregated record's size.",
)
@click.option(
    "--aggregation/--no-aggregation",
    default=AGGREGATION_DEFAULT,
    show_default=True,
    help="Which plan the deploy line is for: the producer's and ingest's AGGREGATION setting.",
)
@click.option("--region", default="us-east-1", show_default=True, help=_REGION_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def plan_command(
    trades_per_second: int,
    avg_trade_bytes: int,
    symbols: int,
    aggregate_bytes: int,
    aggregation: bool,
    region: str,
    as_json: bool,
) -> None:
    """What TRADES-PER-SECOND needs (shards, concurrency, write units, lake volume, inference)
    and costs a month, with and without aggregation, from the price table in the code."""
    try:
        load = Load(
            trades_per_second,
            avg_trade_bytes=avg_trade_bytes,
            symbols=symbols,
            aggregate_target_bytes=aggregate_bytes,
        )
        result = plan(load, prices_for(region), aggregated=aggregation)
    except (PlanInputError, UnknownRegionError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(as_dict(result), sort_keys=True) if as_json else as_text(result))
