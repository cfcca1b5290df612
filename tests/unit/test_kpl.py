"""The KPL aggregated record format: what we write, aws-kinesis-agg reads; what it writes, we read;
and our own reading of records that are not aggregates, or are corrupt."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records

from tradestream import kpl
from tradestream.limits import KINESIS_MAX_RECORD_BYTES


def user_records(count: int, seed: int = 1) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    return [
        (
            rng.choice(["AAPL", "MSFT", "BINANCE:BTCUSDT", "ÄÖÜ"]),
            b'{"n":%d}' % i * rng.randint(1, 40),
        )
        for i in range(count)
    ]


def lambda_event(data: bytes, partition_key: str) -> dict[str, object]:
    """One record of a Kinesis event as Lambda delivers it (aws-kinesis-agg reads this shape)."""
    return {
        "eventSource": "aws:kinesis",
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1545084650.987,
        },
    }


def test_what_we_aggregate_aws_kinesis_agg_reads_back_in_order() -> None:
    # GIVEN 1,000 user records under four partition keys, packed by us
    records = user_records(1000)
    packed = kpl.Aggregate()
    for key, data in records:
        packed.add(key, data)
    data = packed.encode()
    # WHEN aws-kinesis-agg's deaggregator reads the Kinesis record
    out = deaggregate_records([lambda_event(data, packed.partition_key)])
    # THEN it finds every user record, with its own partition key, in order
    assert [
        (r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"])) for r in out
    ] == (records)
    assert [r["kinesis"]["subSequenceNumber"] for r in out] == list(range(1000))


def test_what_aws_kinesis_agg_aggregates_we_read_back_in_order() -> None:
    # GIVEN records aggregated by aws-kinesis-agg (several aggregates: it cuts at its own size)
    records = user_records(3000, seed=2)
    aggregator = RecordAggregator()
    aggregates = [a for key, data in records if (a := aggregator.add_user_record(key, data))]
    if last := aggregator.clear_and_get():
        aggregates.append(last)
    # WHEN we deaggregate each Kinesis record
    read: list[tuple[str, bytes]] = []
    for aggregate in aggregates:
        partition_key, _, data = aggregate.get_contents()
        users = kpl.deaggregate(data, partition_key)
        assert all(u.aggregated for u in users)
        assert [u.sub_sequence_number for u in users] == list(range(len(users)))
        read += [(u.partition_key, u.data) for u in users]
    # THEN every user record is back, in order
    assert read == records


def test_size_is_exactly_what_kinesis_counts() -> None:
    packed = kpl.Aggregate()
    for key, data in user_records(300, seed=3):
        before = packed.size
        grows = packed.added_size(key, data)
        packed.add(key, data)
        assert packed.size == before + grows
        # data plus the aggregate's partition key (its first user record's)
        assert packed.size == len(packed.encode()) + len(packed.partition_key.encode())


def test_fits_stops_before_the_record_limit() -> None:
    # GIVEN 10 KB user records added while they fit under 1 MiB
    packed = kpl.Aggregate()
    data = b"x" * 10_000
    while packed.fits("AAPL", data):
        packed.add("AAPL", data)
    # THEN the aggregate is within the limit and one more would not be
    assert packed.size <= KINESIS_MAX_RECORD_BYTES < packed.size + packed.added_size("AAPL", data)
    assert len(kpl.deaggregate(packed.encode(), "AAPL")) == packed.count == 104


def test_a_plain_record_is_its_own_single_user_record() -> None:
    users = kpl.deaggregate(b'{"s":"AAPL"}', "AAPL")
    assert users == [kpl.UserRecord("AAPL", b'{"s":"AAPL"}')]
    assert not users[0].aggregated


def test_the_magic_with_a_wrong_digest_is_a_plain_record() -> None:
    data = kpl.aggregate([("AAPL", b"one"), ("AAPL", b"two")])
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    assert kpl.deaggregate(tampered, "AAPL") == [kpl.UserRecord("AAPL", tampered)]


def test_a_valid_digest_over_a_broken_message_is_an_error() -> None:
    # GIVEN a message cut in the middle of a record, framed with a digest that matches it
    message = kpl.aggregate([("AAPL", b"one" * 20)])[4:-16][:-10]
    data = kpl.MAGIC + message + hashlib.md5(message, usedforsecurity=False).digest()
    # THEN reading it fails loudly, with the format's code
    with pytest.raises(kpl.AggregateFormatError) as caught:
        kpl.deaggregate(data, "AAPL")
    assert caught.value.code == "KplAggregateCorrupt"


def test_unknown_fields_are_skipped_as_protobuf_does() -> None:
    # GIVEN an aggregate with an explicit hash key table and a tag on its record (fields the
    # producer never writes), as the KPL can write them
    record = b"\x08\x00\x10\x00\x1a\x03abc" + b"\x22\x05\x0a\x01k\x12\x00"
    message = b"\x0a\x04AAPL" + b"\x12\x03123" + b"\x1a" + bytes([len(record)]) + record
    data = kpl.MAGIC + message + hashlib.md5(message, usedforsecurity=False).digest()
    # THEN the user record reads with its explicit hash key
    assert kpl.deaggregate(data, "AAPL") == [
        kpl.UserRecord("AAPL", b"abc", 0, explicit_hash_key="123", aggregated=True)
    ]


def test_count_user_records_without_deaggregating() -> None:
    packed = kpl.aggregate(user_records(123, seed=4))
    assert kpl.count_user_records(packed) == 123 == len(kpl.deaggregate(packed, "AAPL"))
    assert kpl.count_user_records(b'{"s":"AAPL"}') == 1
    # a corrupt aggregate is one (poison) record to its consumers
    message = packed[4:-16][:-10]
    corrupt = kpl.MAGIC + message + hashlib.md5(message, usedforsecurity=False).digest()
    assert kpl.count_user_records(corrupt) == 1
