"""A stream's records read back as the user records they carry, two ways: by ``tradestream.kpl``
(our consumers' reader) and by aws-kinesis-agg's deaggregator (the field's), so a test shows
that what the producing side writes, both read alike."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from aws_kinesis_agg.deaggregator import deaggregate_records

from tradestream import kpl

UserRecords = list[tuple[str, bytes]]  # (partition key, data)


def by_kpl(records: Iterable[Mapping[str, Any]]) -> UserRecords:
    """GetRecords' records (``Data``, ``PartitionKey``) as user records, by tradestream.kpl."""
    return [
        (user.partition_key, user.data)
        for record in records
        for user in kpl.deaggregate(record["Data"], record["PartitionKey"])
    ]


def by_aws_kinesis_agg(records: Iterable[Mapping[str, Any]]) -> UserRecords:
    """The same, by aws-kinesis-agg, which reads records in the shape Lambda delivers them."""
    events = [
        {
            "eventSource": "aws:kinesis",
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "approximateArrivalTimestamp": 0.0,
                "partitionKey": record["PartitionKey"],
                "sequenceNumber": record["SequenceNumber"],
                "data": base64.b64encode(record["Data"]).decode(),
            },
        }
        for record in records
    ]
    return [
        (event["kinesis"]["partitionKey"], base64.b64decode(event["kinesis"]["data"]))
        for event in deaggregate_records(events)
    ]


def trade_ids(users: UserRecords) -> list[str]:
    return [json.loads(data)["id"] for _, data in users]


def stream_trades(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every trade on a stream, aggregated or not, as the JSON objects the records carry."""
    from tests.support.kinesis import read_stream

    return [json.loads(data) for _, data in by_kpl(read_stream(kinesis, stream))]
