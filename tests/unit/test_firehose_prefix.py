"""Firehose's S3 key naming: prefix expressions, the semantic rules, object names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tradestream.cfn.template import NotEmulatedError
from tradestream.local.firehose.prefix import (
    Context,
    PrefixError,
    Prefixes,
    PrefixTemplate,
    format_timestamp,
    object_name,
    random_string,
)

TYPED = "e/!{firehose:error-output-type}/"
MOMENT = datetime(2018, 8, 27, 10, 30, 5, 123456, tzinfo=UTC)


def evaluate(text: str, **context: object) -> str:
    values = {"moment": MOMENT, "partition_keys": {}, **context}
    return PrefixTemplate.parse(text, "Prefix").evaluate(Context(**values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy/MM/dd/HH/", "2018/08/27/10/"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSS", "2018-08-27T10:30:05.123"),
        ("'year='yyyy'/month='MM", "year=2018/month=08"),
        ("yy M d H m s", "18 8 27 10 30 5"),
        ("MMM MMMM EEE EEEE DDD a hh", "Aug August Mon Monday 239 AM 10"),
        ("uuuu''yyyy", "2018'2018"),
    ],
)
def test_timestamp_patterns_follow_java_datetimeformatter(pattern: str, expected: str) -> None:
    # GIVEN a pattern WHEN evaluated at 2018-08-27 10:30:05.123 UTC THEN Java's output
    assert format_timestamp(pattern, MOMENT) == expected


@pytest.mark.parametrize(
    ("pattern", "error"),
    [("YYYY", NotEmulatedError), ("yyyy-ww", NotEmulatedError), ("'open", PrefixError),
     ("ddd", PrefixError)],
    ids=["week-year", "week-of-year", "unclosed-quote", "too-many-letters"],
)  # fmt: skip
def test_patterns_the_emulation_cannot_evaluate_are_refused(
    pattern: str, error: type[Exception]
) -> None:
    # GIVEN an unsupported pattern WHEN parsed THEN it is refused at once, not at delivery
    with pytest.raises(error):
        PrefixTemplate.parse(f"x/!{{timestamp:{pattern}}}/", "Prefix")


def test_every_expression_kind_evaluates_and_timestamps_share_one_instant() -> None:
    # GIVEN a prefix with partition keys, two timestamps and two random strings
    text = (
        "p/!{partitionKeyFromLambda:symbol}/!{timestamp:yyyy}/!{timestamp:HH}/"
        "!{firehose:random-string}-!{firehose:random-string}/"
    )

    # WHEN evaluated
    result = evaluate(text, partition_keys={"symbol": "AAPL"})

    # THEN keys and times are filled in, and each random string is new and 11 characters long
    match = re.fullmatch(r"p/AAPL/2018/10/(.{11})-(.{11})/", result)
    assert match is not None
    assert match.group(1) != match.group(2)
    assert len(random_string()) == 11


def test_the_error_output_type_evaluates_to_processing_failed() -> None:
    # GIVEN the brief's error prefix WHEN evaluated for a processing failure
    text = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
    result = evaluate(text, error_output_type="processing-failed")

    # THEN the type and the day appear
    assert result == "errors/processing-failed/2018/08/27/"


def test_a_prefix_without_timestamp_gets_the_default_one_appended() -> None:
    # GIVEN a literal prefix, and no prefix at all, without dynamic partitioning
    literal = Prefixes.parse("myPrefix/", None, dynamic_partitioning=False, has_lambda=False)
    empty = Prefixes.parse("", None, dynamic_partitioning=False, has_lambda=False)
    context = Context(MOMENT, {}, "processing-failed")

    # WHEN evaluated THEN YYYY/MM/dd/HH/ follows, and errors go to <prefix><type>/YYYY/MM/dd/HH/
    assert literal.data.evaluate(context) == "myPrefix/2018/08/27/10/"
    assert literal.error.evaluate(context) == "myPrefix/processing-failed/2018/08/27/10/"
    assert empty.data.evaluate(context) == "2018/08/27/10/"
    assert (literal.data.static_head, literal.error.static_head) == ("myPrefix/", "myPrefix/")


def test_a_prefix_with_a_timestamp_is_kept_as_written() -> None:
    # GIVEN a prefix with its own timestamp WHEN evaluated THEN nothing is appended
    prefixes = Prefixes.parse(
        "logs/!{timestamp:yyyy}/",
        "err/!{firehose:error-output-type}/",
        dynamic_partitioning=False,
        has_lambda=False,
    )
    assert prefixes.data.evaluate(Context(MOMENT, {})) == "logs/2018/"


def test_the_lake_prefixes_partition_by_the_lambdas_keys() -> None:
    # GIVEN the lake template's prefixes (dynamic partitioning, Lambda processor)
    prefixes = Prefixes.parse(
        "trades/symbol=!{partitionKeyFromLambda:symbol}/date=!{partitionKeyFromLambda:date}/",
        "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
        dynamic_partitioning=True,
        has_lambda=True,
    )

    # WHEN evaluated THEN no timestamp is appended and the keys are read in prefix order
    keys = {"symbol": "AAPL", "date": "2024-06-20"}
    assert prefixes.data.evaluate(Context(MOMENT, keys)) == "trades/symbol=AAPL/date=2024-06-20/"
    assert prefixes.data.partition_key_names == ("symbol", "date")
    assert (prefixes.data.static_head, prefixes.error.static_head) == ("trades/", "errors/")


@pytest.mark.parametrize(
    ("prefix", "error_prefix", "dynamic", "message"),
    [
        ("a/!{timestamp:yyyy}/", None, False, "can't be null"),
        ("a/!{firehose:error-output-type}/", "e/", False, "Prefix can't contain"),
        ("a/", "e/!{timestamp:yyyy}/", False, "must include"),
        ("a/!{partitionKeyFromLambda:k}/", "e/", False, "needs dynamic partitioning"),
        ("a/", "e/", True, "partition key expression"),
        ("a/!{partitionKeyFromLambda:k}/", None, True, "needs an ErrorOutputPrefix"),
        ("a/!{nope:x}/", "e/", False, "unknown namespace"),
        ("a/!{firehose:other}/", "e/", False, "not a firehose expression"),
        (
            "a/!{partitionKeyFromLambda:k}/",
            "e/!{firehose:error-output-type}/!{partitionKeyFromLambda:k}/",
            True,
            "can.t use",
        ),
        ("a/!{/", "e/", False, "can only start"),
        ("x" * 1025, "e/", False, "longer than 1024"),
    ],
)
def test_firehoses_prefix_rules_are_enforced(
    prefix: str, error_prefix: str | None, dynamic: bool, message: str
) -> None:
    # GIVEN prefixes Firehose would refuse WHEN parsed THEN they are refused, saying why
    with pytest.raises(PrefixError, match=message):
        Prefixes.parse(prefix, error_prefix, dynamic_partitioning=dynamic, has_lambda=True)


def test_jq_partitioning_is_not_emulated() -> None:
    # GIVEN partitionKeyFromQuery WHEN parsed THEN it is refused as not emulated
    with pytest.raises(NotEmulatedError, match="partitionKeyFromQuery"):
        PrefixTemplate.parse("a/!{partitionKeyFromQuery:k}/", "Prefix")


def test_object_names_follow_firehoses_format() -> None:
    # GIVEN a delivery time in Tokyo WHEN an object is named
    moment = datetime(2024, 6, 20, 9, 5, 7, tzinfo=ZoneInfo("Asia/Tokyo"))
    name = object_name("tradestream-lake", 1, moment, ".gz")

    # THEN <name>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid><extension>, in that time zone
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert re.fullmatch(rf"tradestream-lake-1-2024-06-20-09-05-07-{uuid}\.gz", name)
