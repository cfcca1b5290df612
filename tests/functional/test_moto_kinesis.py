"""Concurrent PutRecords into one shard of the embedded Kinesis keep every record
(tradestream.local.moto_kinesis): moto alone gave racing calls the same sequence number."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.kinesis import create_stream, read_stream
from tradestream import aws
from tradestream.local.moto_server import MotoHandle


def test_concurrent_put_records_into_one_shard_lose_nothing(
    aws_env: str, moto: MotoHandle, unique: str
) -> None:
    # GIVEN a one-shard stream and 8 threads, each with its own client
    stream = f"concurrent-{unique}"
    create_stream(stream, shards=1)

    def put(worker: int) -> int:
        kinesis = aws.client("kinesis")
        accepted = 0
        for call in range(6):
            entries = [
                {"Data": f"{worker}-{call}-{n}".encode(), "PartitionKey": "AAPL"}
                for n in range(500)
            ]
            answer = kinesis.put_records(StreamName=stream, Records=entries)
            accepted += sum(1 for r in answer["Records"] if "ErrorCode" not in r)
        return accepted

    # WHEN they all put at once
    with ThreadPoolExecutor(8) as pool:
        accepted = sum(pool.map(put, range(8)))
    # THEN every accepted record is in the stream, once, under a sequence number of its own
    records = read_stream(aws.client("kinesis"), stream)
    assert accepted == 8 * 6 * 500
    assert len({r["SequenceNumber"] for r in records}) == len(records) == accepted
    assert {r["Data"] for r in records} == {
        f"{w}-{c}-{n}".encode() for w in range(8) for c in range(6) for n in range(500)
    }
