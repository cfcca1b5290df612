"""The capacity planner's arithmetic against AWS's published limits and billing units, the
format's own sizes, the settings the templates deploy, and the worked example in docs/capacity.md.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tradestream.aggregation import AGGREGATION_DEFAULT, AGGREGATION_DEFAULT_MAX_BYTES
from tradestream.capacity.assumptions import DEPLOYED, MEASURED
from tradestream.capacity.load import Load, PlanInputError
from tradestream.capacity.model import plan
from tradestream.capacity.packing import pack
from tradestream.capacity.prices import US_EAST_1, UnknownRegionError, prices_for
from tradestream.capacity.render import as_dict, as_text
from tradestream.cfn.template import TEMPLATE_DIR, load_template
from tradestream.cli.plan import plan_command
from tradestream.kpl import Aggregate, deaggregate
from tradestream.synthetic import raw_frames
from tradestream.trade import Trade, stamp

MiB = 1024 * 1024
SECONDS_PER_MONTH = 730 * 3600
GB = 1024**3
DOCS = Path(__file__).resolve().parents[2] / "docs" / "capacity.md"


def scenarios(trades_per_second: int, **load: Any) -> tuple[Any, Any]:
    result = plan(Load(trades_per_second, **load), US_EAST_1)
    return result.without_aggregation, result.with_aggregation


def synthetic_trades(count: int) -> list[Trade]:
    frames = raw_frames(["AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT"], seed=3)
    trades = (t for frame in frames for t in stamp(frame, received_ms=1_796_634_702_683))
    return list(itertools.islice(trades, count))


# --- Kinesis: a shard's limits --------------------------------------------------------------------


@pytest.mark.parametrize(("trades", "shards"), [(1, 1), (1_000, 1), (1_001, 2), (4_000, 4)])
def test_without_aggregation_a_shard_takes_1000_trades_a_second(trades: int, shards: int) -> None:
    # GIVEN 150-byte trades, one Kinesis record each WHEN planned
    without, _ = scenarios(trades)
    # THEN the records limit (1,000/s per shard) sets the shards, however small the trades
    assert without.shards == shards
    assert without.kinesis.stream.trades_per_record == 1
    if shards > 1:
        assert without.kinesis.stream.binding_limit == "write records/s"


def test_without_aggregation_large_trades_hit_the_byte_limits() -> None:
    # GIVEN 1,000 trades/s of 2,000 bytes: 2,004,000 bytes/s with the 4-byte key
    without, _ = scenarios(1_000, avg_trade_bytes=2_000)
    # THEN 1 MiB/s of writes per shard asks for 2 shards, and both consumers reading it all
    # (2 x 2,004,000 bytes/s at 2 MiB/s per shard) for 2 as well
    by_limit = without.kinesis.stream.shards_by_limit
    assert by_limit["write records/s"] == 1
    assert by_limit["write bytes/s"] == math.ceil(2_004_000 / MiB) == 2
    assert by_limit["read bytes/s"] == math.ceil(2 * 2_004_000 / (2 * MiB)) == 2
    assert without.shards == 2


def test_an_aggregate_of_150_byte_trades_is_sized_from_the_kpl_format() -> None:
    # GIVEN the KPL format: magic 4 + MD5 16, the key table entry (tag 1, length 1, "AAPL" 4),
    # the aggregate's own partition key (4, counted by Kinesis); per trade: record tag 1, its
    # length as a varint 2 (155 > 127), key index tag 1 + index 1, data tag 1, length 2, data 150
    framing, per_trade = 4 + 16 + (1 + 1 + 4) + 4, 1 + 2 + 1 + 1 + 1 + 2 + 150
    # WHEN the planner packs a 51,200-byte (two PUT units) aggregate
    packed = pack(150, 4, 51_200)
    # THEN it holds as many trades as fit, and its size is what the producer's encoder writes
    assert packed.trades == (51_200 - framing) // per_trade == 323
    assert packed.record_bytes == framing + 323 * per_trade == 51_064
    real = Aggregate()
    for _ in range(323):
        real.add("AAPL", b"x" * 150)
    assert len(real.encode()) + len("AAPL") == packed.record_bytes
    assert len(deaggregate(real.encode(), "AAPL")) == 323


def test_with_aggregation_the_byte_limit_sets_the_shards() -> None:
    # GIVEN full aggregates of 323 trades in 51,064 bytes: a shard's 1 MiB/s holds
    # 1,048,576 / 51,064 x 323 = 6,632.8 trades/s
    capacity = math.floor(MiB / 51_064 * 323)
    assert capacity == 6_632
    # WHEN exactly that many, and one more, trades/s are planned
    _, at_capacity = scenarios(capacity)
    _, above = scenarios(capacity + 1)
    # THEN one shard takes the first (its aggregates fill before the 50 ms linger), the next
    # needs two, because of the byte limit: 20.5 records/s is nowhere near 1,000
    assert at_capacity.kinesis.stream.trades_per_record == 323
    assert at_capacity.shards == 1
    assert above.shards == 2
    assert above.kinesis.stream.binding_limit == "write bytes/s"
    # AND a shard takes over 5x the trades it takes without aggregation (the target)
    assert capacity >= 5 * 1_000


def test_below_the_target_an_aggregate_holds_what_one_linger_period_brings() -> None:
    # GIVEN 1,000 trades/s on one shard and the producer's 50 ms linger WHEN planned
    _, with_ = scenarios(1_000)
    stream = with_.kinesis.stream
    # THEN an aggregate holds 50 trades: 30 bytes of framing and 50 x 158, 20 records/s
    assert stream.trades_per_record == 1_000 * DEPLOYED.producer_linger_ms // 1000 == 50
    assert stream.record_bytes == 30 + 50 * 158
    assert stream.records_per_second == 20


@pytest.mark.parametrize(
    ("record_bytes", "units"),
    # AWS's examples: "a 5KB record contains one PUT Payload Unit, a 45KB record contains two
    # PUT Payload Units, and a 1MB record contains 40 PUT Payload Units"; and the boundary.
    [(5 * 1024, 1), (45 * 1024, 2), (1000 * 1024, 40), (25 * 1024, 1), (25 * 1024 + 1, 2)],
)
def test_put_payload_units_count_25_kb_chunks_per_record(record_bytes: int, units: int) -> None:
    # GIVEN one trade per record of that size (the trade plus a 4-byte key)
    without, _ = scenarios(10, avg_trade_bytes=record_bytes - 4)
    # THEN each record is that many PUT payload units
    assert without.kinesis.stream.put_payload_units_per_record == units
    assert without.kinesis.stream.put_payload_units_per_second == 10 * units


def test_an_aggregate_of_51_200_bytes_is_two_put_payload_units() -> None:
    # GIVEN the producer's (and the KPL's) default aggregate size, full (6,500 trades/s: 325
    # per 50 ms linger)
    assert AGGREGATION_DEFAULT_MAX_BYTES == 51_200
    _, with_ = scenarios(6_500)
    # THEN 51,064 bytes are 2 units (51,064 / 25,600 = 1.99), i.e. 2 units per 323 trades
    assert with_.kinesis.stream.record_bytes == 51_064
    assert with_.kinesis.stream.put_payload_units_per_record == 2


def test_aggregation_is_never_dearer_and_never_needs_more_shards() -> None:
    for trades, size in itertools.product((1, 50, 999, 2_500, 20_000, 300_000), (60, 150, 900)):
        without, with_ = scenarios(trades, avg_trade_bytes=size)
        assert with_.shards <= without.shards, (trades, size)
        assert with_.monthly_usd <= without.monthly_usd, (trades, size)


# --- consumers and sinks --------------------------------------------------------------------------


def test_the_mapping_parallelizes_up_to_10_batches_per_shard_then_asks_for_shards() -> None:
    per_invocation = MEASURED.hotstore_trades_per_second_per_invocation
    # GIVEN one shard of aggregates carrying 6,000 trades/s
    _, with_ = scenarios(6_000)
    # THEN the hotstore (2,152 trades/s per invocation, measured) needs 3 concurrent batches
    assert with_.shards == 1
    assert with_.mapping.parallelization_factor == math.ceil(6_000 / per_invocation) == 3
    assert with_.mapping.concurrency == 3
    # AND a load that would need more than 10 per shard gets shards instead
    trades = 300_000
    _, big = scenarios(trades)
    assert big.shards >= math.ceil(trades / (10 * per_invocation))
    assert big.mapping.parallelization_factor <= 10
    assert big.mapping.concurrency == big.shards * big.mapping.parallelization_factor


@pytest.mark.parametrize(("trade_bytes", "units"), [(150, 1), (1024 - 136, 1), (1024 - 135, 2)])
def test_dynamodb_writes_one_item_per_trade_at_one_unit_per_kb(
    trade_bytes: int, units: int
) -> None:
    # GIVEN items of the trade plus the hotstore's 136 bytes (sort key, TTL, ingest time)
    without, with_ = scenarios(2_000, avg_trade_bytes=trade_bytes)
    # THEN an item up to 1 KB is one write request unit, and one more byte is two
    assert without.dynamodb.write_units_per_item == units
    assert without.dynamodb.write_units_per_second == 2_000 * units
    # AND aggregation changes nothing there: the hotstore writes each trade
    assert with_.dynamodb == without.dynamodb


def test_the_hotstores_item_is_within_the_planners_size() -> None:
    # GIVEN the synthetic market's trades as the hotstore stores them
    from lambdas.hotstore.items import item_size, to_item

    for trade in synthetic_trades(2_000):
        item = to_item(trade, ttl_days=DEPLOYED.hotstore_ttl_days, ingested_at_ms=trade.rt)
        # THEN the planner's item size bounds the real one
        assert item_size(item) <= len(trade.to_record()) + MEASURED.dynamodb_item_extra_bytes


def test_the_enrich_functions_lake_line_is_within_the_planners_size() -> None:
    from lambdas.enrich.records import Prediction, lake_line

    for trade in synthetic_trades(2_000):
        line = lake_line(trade, Prediction(-9.296630593155907e-05, "ridge-52fb839de9c7"))
        assert len(line) <= len(trade.to_record()) + MEASURED.lake_line_extra_bytes


def test_firehose_bills_each_kinesis_record_in_5_kb_increments() -> None:
    # GIVEN 2,500 trades/s: 154-byte records, or aggregates of 125 trades (19,776 data bytes)
    without, with_ = scenarios(2_500)
    # THEN a trade record is billed as 5 KB, an aggregate as 4 x 5 KB for its 125 trades
    assert without.lake.firehose_billed_gb_per_month == pytest.approx(
        2_500 * 5_120 * SECONDS_PER_MONTH / GB
    )
    assert with_.lake.firehose_billed_gb_per_month == pytest.approx(
        20 * 4 * 5_120 * SECONDS_PER_MONTH / GB
    )


def test_the_lake_writes_an_object_per_symbol_per_buffer() -> None:
    # GIVEN 4 symbols, little data: every buffer is written at its 300 s interval
    without, _ = scenarios(100, symbols=4)
    assert without.lake.objects_per_month == pytest.approx(4 * SECONDS_PER_MONTH / 300)
    # AND a symbol with more than 64 MiB per 300 s fills its buffer first
    one_symbol = 300_000 * (150 + MEASURED.lake_line_extra_bytes)
    busy, _ = scenarios(300_000, symbols=1)
    assert busy.lake.objects_per_month == pytest.approx(one_symbol / (64 * MiB) * SECONDS_PER_MONTH)


# --- costs ----------------------------------------------------------------------------------------


def test_every_cost_is_its_quantity_times_its_unit_price_and_totals_add_up() -> None:
    without, with_ = scenarios(12_345, avg_trade_bytes=180, symbols=9)
    for scenario in (without, with_):
        assert scenario.monthly_usd == pytest.approx(sum(c.monthly_usd for c in scenario.costs))
        for cost in scenario.costs:
            assert cost.monthly_usd == pytest.approx(cost.quantity * cost.unit_usd)
            assert cost.quantity >= 0


def test_provisioned_kinesis_is_priced_per_shard_hour_and_put_unit() -> None:
    without, _ = scenarios(2_500)
    shard_hours, put_units = without.kinesis.provisioned
    assert shard_hours.monthly_usd == pytest.approx(3 * 730 * 0.015)
    assert put_units.monthly_usd == pytest.approx(2_500 * SECONDS_PER_MONTH / 1e6 * 0.014)


def test_on_demand_kinesis_is_the_alternative_and_the_cheaper_mode_is_chosen() -> None:
    # GIVEN a steady 2,500 trades/s: on-demand rounds each 154-byte record up to 1 KB, in once
    # and out once per consumer, plus $0.04 a stream-hour
    without, _ = scenarios(2_500)
    in_gb = 2_500 * 1024 * SECONDS_PER_MONTH / GB
    expected = 730 * 0.04 + in_gb * 0.08 + 2 * in_gb * 0.04
    assert without.kinesis.on_demand_usd == pytest.approx(expected)
    # THEN provisioned, far cheaper for a steady feed, is the mode chosen
    assert without.kinesis.mode == "PROVISIONED"
    assert without.kinesis.costs == without.kinesis.provisioned


def test_only_regions_with_prices_are_planned() -> None:
    assert prices_for("us-east-1") is US_EAST_1
    with pytest.raises(UnknownRegionError, match="knows us-east-1"):
        prices_for("eu-west-1")


def test_loads_that_cannot_be_sized_are_refused() -> None:
    with pytest.raises(PlanInputError):
        Load(0)
    with pytest.raises(PlanInputError):
        Load(10, avg_trade_bytes=MiB)
    with pytest.raises(PlanInputError):
        Load(10, aggregate_target_bytes=2 * MiB)


def test_a_trade_larger_than_the_aggregate_target_goes_alone() -> None:
    # GIVEN 60 KB trades and 51,200-byte aggregates WHEN planned
    without, with_ = scenarios(100, avg_trade_bytes=60_000)
    # THEN with aggregation each trade is its own record, as without
    assert with_.kinesis.stream.trades_per_record == 1
    assert with_.kinesis.stream.record_bytes == without.kinesis.stream.record_bytes == 60_004


# --- what the planner assumes is what is deployed -------------------------------------------------


def template(name: str) -> dict[str, Any]:
    return load_template(TEMPLATE_DIR / name)


def default(template_name: str, parameter: str) -> Any:
    return template(template_name)["Parameters"][parameter]["Default"]


def test_the_deployed_settings_are_the_templates_and_the_producers_defaults() -> None:
    from producer.settings import DEFAULT_SYMBOLS, ProducerSettings

    hotstore = template("hotstore.yaml")["Resources"]
    lake = template("lake.yaml")["Resources"]
    mapping = hotstore["StreamMapping"]["Properties"]
    assert mapping["ParallelizationFactor"] == DEPLOYED.mapping_parallelization_factor
    assert default("hotstore.yaml", "BatchSize") == DEPLOYED.mapping_batch_size
    assert (
        default("hotstore.yaml", "MaximumBatchingWindowInSeconds")
        == DEPLOYED.mapping_batching_window_seconds
    )
    assert hotstore["Function"]["Properties"]["MemorySize"] == DEPLOYED.hotstore_memory_mb
    assert default("hotstore.yaml", "TtlDays") == DEPLOYED.hotstore_ttl_days
    assert default("lake.yaml", "ProcessorBufferSizeInMBs") * MiB == DEPLOYED.processor_buffer_bytes
    assert (
        default("lake.yaml", "ProcessorBufferIntervalInSeconds")
        == DEPLOYED.processor_buffer_interval_seconds
    )
    assert default("lake.yaml", "BufferSizeInMBs") * MiB == DEPLOYED.s3_buffer_bytes
    assert default("lake.yaml", "BufferIntervalInSeconds") == DEPLOYED.s3_buffer_interval_seconds
    assert lake["EnrichFunction"]["Properties"]["MemorySize"] == DEPLOYED.enrich_memory_mb
    assert default("inference.yaml", "ServerlessMemoryInMB") == DEPLOYED.serverless_memory_mb
    assert (
        default("inference.yaml", "ServerlessMaxConcurrency") == DEPLOYED.serverless_max_concurrency
    )
    assert default("inference.yaml", "InstanceType") == DEPLOYED.realtime_instance_type
    assert DEPLOYED.realtime_instance_type in US_EAST_1.sagemaker_instance_hour
    shard_count = template("stream.yaml")["Parameters"]["ShardCount"]
    assert shard_count["MaxValue"] == DEPLOYED.max_template_shards
    assert ProducerSettings.model_fields["linger_ms"].default == DEPLOYED.producer_linger_ms
    assert len(DEFAULT_SYMBOLS) == DEPLOYED.default_symbols


def test_the_measured_figures_are_the_ones_the_benchmark_docs_report() -> None:
    # The planner's throughputs are the docs' measurements, to the digit: a rerun that changes
    # the docs must change the planner too.
    docs = DOCS.parent
    benchmarks = (docs / "benchmarks.md").read_text(encoding="utf-8")
    model = (docs / "bench-model.md").read_text(encoding="utf-8")
    hotstore = MEASURED.hotstore_trades_per_second_per_invocation
    assert f"| hotstore handler (BatchWriteItem) | 5,118 | 2.378 | {hotstore:,} |" in benchmarks
    enrich = MEASURED.enrich_records_per_second_per_invocation
    assert f"| enrich handler (one call per chunk) | 3,000 | 0.119 | {enrich:,} |" in benchmarks
    predictions = MEASURED.model_predictions_per_second_per_core
    p50_ms = MEASURED.model_seconds_per_prediction * 1000 * 1000
    assert f"| application/json | 1 | 300 | {predictions:,} | {p50_ms:.3f} |" in model


# --- output ---------------------------------------------------------------------------------------


def test_the_text_ends_with_the_deploy_command_line_of_the_plan() -> None:
    result = plan(Load(2_500), US_EAST_1, aggregated=True)
    last = as_text(result).splitlines()[-1]
    assert last == result.deploy.command
    assert last.startswith("tradestream deploy --target aws --region us-east-1 --shards ")
    # The mapping needs 2 batches per shard on 1 shard, and the template deploys 1: 2 shards.
    assert result.deploy.shards == 2
    assert any("ParallelizationFactor 2" in note for note in result.notes)


def test_the_deploy_line_is_for_what_the_producer_runs() -> None:
    # GIVEN 2,500 trades/s WHEN the producer does not aggregate
    unaggregated = plan(Load(2_500), US_EAST_1, aggregated=False)
    # THEN the deploy line asks for the 3 shards 2,500 plain records need
    assert unaggregated.deploy.command.endswith("--shards 3 --inference serverless")
    assert as_text(unaggregated).splitlines()[-2] == "Deploy it, for AGGREGATION=false:"
    # AND by default the plan follows the producer's own AGGREGATION default
    assert plan(Load(2_500), US_EAST_1).deploy.aggregated is AGGREGATION_DEFAULT


def test_a_plan_beyond_the_stream_templates_500_shards_deploys_on_demand() -> None:
    # GIVEN 2,000,000 trades/s: the hotstore alone needs ceil(2e6 / 2,152.1) = 930 shards at
    # the template's factor of 1
    result = plan(Load(2_000_000), US_EAST_1, aggregated=True)
    # THEN the deploy line asks for an on-demand stream, and says why
    assert result.deploy.shards == math.ceil(2_000_000 / 2_152.1) == 930
    assert result.deploy.command == (
        "tradestream deploy --target aws --region us-east-1 --stream-mode ON_DEMAND "
        f"--inference {result.deploy.inference}"
    )
    assert any("at most 500" in note for note in result.notes)


def test_json_holds_both_scenarios_with_their_shards_and_monthly_cost() -> None:
    runner = CliRunner()
    done = runner.invoke(plan_command, ["--trades-per-second", "2500", "--aggregation", "--json"])
    assert done.exit_code == 0, done.output
    answer = json.loads(done.output)
    expected = as_dict(plan(Load(2_500), US_EAST_1, aggregated=True))
    for name in ("without_aggregation", "with_aggregation"):
        assert answer[name]["shards"] == expected[name]["shards"]
        assert answer[name]["monthly_usd"] == expected[name]["monthly_usd"]
    assert (answer["without_aggregation"]["shards"], answer["with_aggregation"]["shards"]) == (3, 1)
    assert answer["deploy"]["for"] == "with_aggregation"
    assert answer["deploy"]["command"].endswith("--shards 2 --inference serverless")


def test_an_unknown_region_ends_the_command_with_the_known_ones() -> None:
    done = CliRunner().invoke(plan_command, ["--trades-per-second", "10", "--region", "xx-1"])
    assert done.exit_code == 1
    assert "no prices for region 'xx-1'" in done.output
    assert "us-east-1" in done.output
    assert "Traceback" not in done.output


# --- the worked example ---------------------------------------------------------------------------


def documented_output() -> str:
    """The command output docs/capacity.md shows for its worked example."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"```text\n(tradestream plan: .*?)\n```", text, re.DOTALL)
    assert match, "docs/capacity.md shows the worked example's output in a ```text block"
    return match.group(1)


def test_the_worked_example_in_the_docs_is_what_the_planner_prints() -> None:
    done = CliRunner().invoke(plan_command, ["--trades-per-second", "2500", "--aggregation"])
    assert done.exit_code == 0, done.output
    assert done.output.rstrip("\n") == documented_output()


def test_the_worked_examples_arithmetic() -> None:
    # The steps docs/capacity.md spells out, computed here by hand.
    without, with_ = scenarios(2_500)
    # Kinesis without aggregation: 2,500 records/s of 154 bytes: 3 shards (records limit)
    assert without.shards == math.ceil(2_500 / 1_000) == 3
    assert without.kinesis.provisioned_usd == pytest.approx(
        3 * 730 * 0.015 + 2_500 * SECONDS_PER_MONTH / 1e6 * 0.014
    )
    # with aggregation: 50 ms of one shard's trades (125) per aggregate, 30 + 125 x 158 bytes
    assert with_.kinesis.stream.trades_per_record == 125
    assert with_.kinesis.stream.record_bytes == 19_780
    assert with_.shards == 1
    assert with_.kinesis.provisioned_usd == pytest.approx(
        730 * 0.015 + 20 * 1 * SECONDS_PER_MONTH / 1e6 * 0.014
    )
    # DynamoDB: 286-byte items, 1 WRU each, 2,500 a second; 30 days kept, 386 bytes stored each
    assert with_.dynamodb.costs[0].monthly_usd == pytest.approx(
        2_500 * SECONDS_PER_MONTH / 1e6 * 0.625
    )
    stored_gb = 2_500 * 30 * 86_400 * (150 + 136 + 100) / GB
    assert with_.dynamodb.stored_gb == pytest.approx(stored_gb)
    # Firehose: 5 KB per trade record, against 4 x 5 KB per 125-trade aggregate
    assert without.lake.firehose_costs[0].monthly_usd == pytest.approx(
        2_500 * 5_120 * SECONDS_PER_MONTH / GB * 0.029
    )
    # the totals the docs print
    assert round(without.monthly_usd, 2) == 6_260.76
    assert round(with_.monthly_usd, 2) == 5_266.59


def test_a_symbol_above_one_shards_limit_is_called_out() -> None:
    # GIVEN 6,000 trades/s over the default 4 symbols: 1,500 per symbol, and a symbol's trades
    # all go to one shard (the symbol is the partition key)
    plain = plan(Load(6_000), US_EAST_1, aggregated=False)
    # THEN without aggregation the plan says no shard count takes 1,500 records/s of one key
    assert any("1,500 trades/s per symbol exceed one shard's 1,000" in n for n in plain.notes)
    # AND with aggregation 1,500 trades of ~150 bytes (~0.22 MiB/s) fit one shard: no such note
    aggregated = plan(Load(6_000), US_EAST_1, aggregated=True)
    assert not any("per symbol exceed one shard" in n for n in aggregated.notes)
    # AND at 4 x 8,000 trades/s a symbol passes a shard's 1 MiB/s even aggregated
    assert any(
        "MiB/s per symbol exceed one shard's 1 MiB/s" in n
        for n in plan(Load(32_000), US_EAST_1, aggregated=True).notes
    )
    # AND a load that spreads no symbol past a shard gets neither note
    assert not any("per symbol" in n and "shard" in n for n in plan(Load(2_500), US_EAST_1).notes)
