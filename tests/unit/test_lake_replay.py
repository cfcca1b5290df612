"""The lake replay's pure parts: times and the selection (trades and partition folders), lake
lines back to stream records, the recorded pace with its cap; and the command's refusals, which
happen before any AWS call."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from click.testing import CliRunner

from lambdas.enrich.records import InferenceFailure, Prediction, lake_line, partition_keys
from producer.lake_replay.objects import UnreadableObjectError, object_trades
from producer.lake_replay.selection import Selection, SelectionError, instant_ms
from producer.sources.pace import RecordedPace
from tests.unit.test_producer_replay import FakeTime
from tradestream.cli.replay import replay_command
from tradestream.trade import RawTrade, Trade, stamp

T0 = 1_704_205_800_000  # 2024-01-02T14:30:00Z


def trade(symbol: str = "AAPL", t: int = T0, c: tuple[str, ...] | None = ("1",)) -> Trade:
    return stamp([RawTrade(s=symbol, p=187.23, v=3.0, t=t, c=c)], received_ms=t + 9)[0]


# --- times and the selection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1704205800000", T0),
        ("2024-01-02T14:30:00Z", T0),
        ("2024-01-02t14:30:00.250z", T0 + 250),
        ("2024-01-02T15:30:00+01:00", T0),
        ("2024-01-02T14:30:00", T0),  # no offset: UTC, as Finnhub's times are
        ("2024-01-02", T0 - (14 * 60 + 30) * 60_000),
        (" 1704205800000 ", T0),
    ],
)
def test_times_are_epoch_ms_or_iso_8601(text: str, ms: int) -> None:
    assert instant_ms(text) == ms


@pytest.mark.parametrize("text", ["yesterday", "-5", "1.5e12", "2024-13-01", ""])
def test_other_times_are_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(SelectionError, match="epoch milliseconds"):
        instant_ms(text)


def test_the_window_is_inclusive_and_on_the_trade_time() -> None:
    # GIVEN a window from T0 to T0 + 10 ms on AAPL
    selection = Selection.parse(["AAPL"], str(T0), str(T0 + 10))
    # THEN both ends are in, a millisecond outside is out, and another symbol is out
    assert [selection.admits(trade(t=t)) for t in (T0 - 1, T0, T0 + 10, T0 + 11)] == [
        False,
        True,
        True,
        False,
    ]
    assert not selection.admits(trade("MSFT", T0 + 5))
    # AND an empty selection admits everything
    assert Selection().admits(trade("MSFT", T0 - 10**9))


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(SelectionError, match="swap them"):
        Selection.parse(from_="2024-01-03", to="2024-01-02")


def test_partition_folders_are_skipped_only_when_no_trade_in_them_can_match() -> None:
    # GIVEN BINANCE:BTCUSDT from 23:59 on Jan 2 to 00:00:00.000 on Jan 4 (UTC)
    selection = Selection.parse(["BINANCE:BTCUSDT"], "2024-01-02T23:59:00Z", "2024-01-04T00:00:00Z")
    # THEN its symbol folder is read (the listing decodes the percent-encoding first)
    assert selection.admits_partition("symbol", "BINANCE:BTCUSDT")
    assert not selection.admits_partition("symbol", "AAPL")
    # AND every day the window touches is read, even by one millisecond, the others skipped
    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    assert [selection.admits_partition("date", d) for d in days] == [
        False,
        True,
        True,
        True,
        False,
    ]
    # AND folders it cannot judge are read: other names, values the lake does not write
    assert selection.admits_partition("hour", "07")
    assert selection.admits_partition("date", "last-week")


def test_the_lakes_partition_of_a_trade_is_admitted_whenever_the_trade_is() -> None:
    # GIVEN trades around a day boundary and a window ending on it
    selection = Selection.parse(["BINANCE:BTCUSDT"], to="2024-01-03T00:00:00Z")
    boundary = instant_ms("2024-01-03T00:00:00Z")
    for t in (boundary - 1, boundary, boundary + 1):
        btc = trade("BINANCE:BTCUSDT", t, c=None)
        keys = partition_keys(btc)  # what the enrich function partitions it by
        # WHEN its partition folders are judged (values decoded, as the listing does)
        folders = selection.admits_partition("symbol", "BINANCE:BTCUSDT") and (
            selection.admits_partition("date", keys["date"])
        )
        # THEN a trade the selection admits is never in a skipped folder
        assert folders or not selection.admits(btc)
    assert keys["symbol"] == "BINANCE%3ABTCUSDT"


# --- lake lines back to stream records ---------------------------------------------------------


def lines(*trades_and_extra: Trade | bytes) -> bytes:
    out = b""
    for i, item in enumerate(trades_and_extra):
        if isinstance(item, bytes):
            out += item
        elif i % 2:
            out += lake_line(item, InferenceFailure("ThrottlingException after 4 attempts"))
        else:
            out += lake_line(item, Prediction(0.0012, "ridge-7"))
    return out


def test_a_lake_line_becomes_exactly_the_record_the_stream_carried() -> None:
    # GIVEN lines the enrich function wrote, with a prediction and with an inference failure
    originals = [trade(), trade("BINANCE:BTCUSDT", T0 + 1, c=None), trade(t=T0 + 2)]
    body = lines(*originals)
    assert b"prediction_error" in body
    # WHEN read back
    found = object_trades("k", body)
    # THEN each is its original stream record, byte for byte: id and rt kept, no inference fields
    assert [t.to_record() for t in found.trades] == [t.to_record() for t in originals]
    assert all(set(json.loads(t.to_record())) <= set(Trade.model_fields) for t in found.trades)
    assert (found.lines, found.invalid) == (3, [])


def test_gzip_is_read_by_its_magic_bytes_whatever_the_name() -> None:
    body = lines(trade(), trade(t=T0 + 5))
    assert object_trades("plain-name", gzip.compress(body)) == object_trades("x.gz", body)


def test_bad_lines_come_back_with_their_key_line_and_reason_and_blank_lines_are_no_lines() -> None:
    # GIVEN an object holding a good line, a blank one, garbage, a raw Finnhub trade (no id)
    # and an array
    body = lines(
        trade(),
        b"\n",
        b"{not json\n",
        b'{"s":"AAPL","p":1.0,"v":1,"t":1704205800000}\n',
        b"[1,2]\n",
    )
    # WHEN read
    found = object_trades("trades/symbol=AAPL/date=2024-01-02/o", body)
    # THEN the good line is a trade and every bad one is reported, numbered as in the object
    assert len(found.trades) == 1
    assert found.lines == 4
    assert [(bad.key, bad.line) for bad in found.invalid] == [
        ("trades/symbol=AAPL/date=2024-01-02/o", 3),
        ("trades/symbol=AAPL/date=2024-01-02/o", 4),
        ("trades/symbol=AAPL/date=2024-01-02/o", 5),
    ]
    assert "id: Field required" in found.invalid[1].reason
    assert "rt: Field required" in found.invalid[1].reason


def test_a_truncated_gzip_object_is_unreadable_not_empty() -> None:
    with pytest.raises(UnreadableObjectError, match="gzip"):
        object_trades("k.gz", gzip.compress(lines(trade()))[:-12])


# --- the recorded pace -----------------------------------------------------------------------


async def paced(times: list[int], **options: Any) -> FakeTime:
    clock = FakeTime()
    pace = RecordedPace(sleep=clock.sleep, monotonic=clock.monotonic, **options)
    for t in times:
        await pace.wait(t)
    return clock


async def test_recorded_gaps_are_slept_and_long_ones_capped() -> None:
    # GIVEN trade times 0.5 s apart, then an hour's silence, then 0.1 s
    times = [T0, T0 + 500, T0 + 3_600_500, T0 + 3_600_600]
    # WHEN paced with a 2 s cap, and without one
    capped = await paced(times, max_gap_s=2)
    uncapped = await paced(times)
    # THEN the hour took 2 s, the rest their recorded gaps
    assert capped.sleeps == pytest.approx([0.5, 2.0, 0.1])
    assert uncapped.sleeps == pytest.approx([0.5, 3600.0, 0.1])


async def test_times_behind_the_latest_go_at_once_and_a_slow_consumer_catches_up() -> None:
    clock = FakeTime()
    pace = RecordedPace(max_gap_s=5, sleep=clock.sleep, monotonic=clock.monotonic)
    await pace.wait(T0)
    await pace.wait(T0 + 1000)  # sleeps 1 s
    await pace.wait(T0 + 200)  # behind: at once
    clock.now += 3  # the consumer took 3 s
    await pace.wait(T0 + 2000)  # due 1 s after the last: long past
    await pace.wait(T0 + 4500)  # due 2.5 s later than that: 0.5 s from now
    assert clock.sleeps == pytest.approx([1.0, 0.5])


def test_a_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_gap_s"):
        RecordedPace(max_gap_s=0)


# --- the command refuses before any AWS call ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ([], {}, "--from-lake"),
        (["--from-lake", "--from", "soon"], {}, "epoch milliseconds"),
        (["--from-lake", "--from", "2024-01-03", "--to", "2024-01-02"], {}, "swap them"),
        (
            ["--from-lake"],
            {"DATA_PREFIX": "trades/symbol=!{partitionKeyFromLambda:symbol}/"},
            "DATA_PREFIX: Value error, must be a folder",
        ),
        (["--from-lake", "--bucket", "Not_A_Bucket"], {}, "BUCKET_NAME"),
        (["--from-lake", "--pace", "slow"], {}, "fast"),
    ],
)
def test_bad_options_and_settings_are_usage_errors(
    args: list[str], env: dict[str, str], says: str
) -> None:
    # An endpoint nothing listens on: were any AWS call made, it would fail differently.
    result = CliRunner().invoke(
        replay_command, args, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", **env}
    )
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert result.stdout == ""
