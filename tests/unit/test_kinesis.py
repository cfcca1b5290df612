"""PutRecords rules shared by the producer and the ingest service: record size, cutting waiting
records into calls within AWS's limits, and reading which entries an answer refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tradestream.kinesis import (
    AnswerMismatchError,
    Backlog,
    BatchLimits,
    put_records_entries,
    record_size,
    split_answer,
)
from tradestream.limits import KINESIS_MAX_RECORD_BYTES, MiB


@dataclass
class Rec:
    data: bytes
    key: str
    size: int = 0

    def __post_init__(self) -> None:
        self.size = record_size(self.data, self.key)


def recs(n: int, size: int = 10, key: str = "AAPL") -> list[Rec]:
    return [Rec(bytes([65 + i % 26]) * (size - len(key)), key) for i in range(n)]


def test_a_record_counts_its_data_and_its_partition_key_in_utf8_bytes() -> None:
    # GIVEN data and a partition key with a two-byte character WHEN sized
    # THEN both count, the key in bytes (Kinesis' accounting)
    assert record_size(b"12345", "AAPL") == 9
    assert record_size(b"", "É") == 2


def test_a_call_takes_at_most_500_records() -> None:
    # GIVEN 1,200 small records waiting
    backlog: Backlog[Rec] = Backlog()
    backlog.extend(recs(1200))
    # WHEN calls are cut with AWS's limits THEN 500, 500, 200, oldest first
    limits = BatchLimits()
    calls = [backlog.take(limits) for _ in range(3)]
    assert [len(c) for c in calls] == [500, 500, 200]
    assert (len(backlog), backlog.size) == (0, 0)


def test_a_call_never_exceeds_5_mib_counting_partition_keys() -> None:
    # GIVEN six records of exactly 1 MiB each, key included (five fill 5 MiB)
    backlog: Backlog[Rec] = Backlog()
    backlog.extend(recs(6, size=KINESIS_MAX_RECORD_BYTES))
    # WHEN a call is cut THEN it carries five and the sixth waits, still counted
    assert len(backlog.take(BatchLimits())) == 5
    assert (len(backlog), backlog.size) == (1, KINESIS_MAX_RECORD_BYTES)
    # AND the backlog is full only once its records fill a call
    assert not backlog.full(BatchLimits())
    backlog.extend(recs(4, size=KINESIS_MAX_RECORD_BYTES))
    assert backlog.full(BatchLimits())


def test_resends_go_first_and_new_records_top_the_call_up() -> None:
    # GIVEN two resends and five new records, with calls of at most 4
    resends, fresh = recs(2, key="R"), recs(5, key="N")
    backlog: Backlog[Rec] = Backlog()
    backlog.extend(fresh)
    # WHEN a call is cut after the resends THEN it holds them first, then the two oldest new ones
    call = backlog.take(BatchLimits(max_records=4), list(resends))
    assert call == [*resends, *fresh[:2]]
    # AND records pushed back to the front leave before the rest
    backlog.push_front(call[2:])
    assert backlog.take(BatchLimits(max_records=2)) == fresh[:2]
    assert backlog.clear() == fresh[2:]
    assert backlog.size == 0


@pytest.mark.parametrize(
    "limits",
    [{"max_records": 0}, {"max_records": 501}, {"max_bytes": MiB - 1}, {"max_bytes": 5 * MiB + 1}],
)
def test_limits_beyond_aws_or_too_small_for_one_record_are_refused(
    limits: dict[str, int],
) -> None:
    # GIVEN limits AWS would refuse or that no 1 MiB record fits WHEN built THEN refused
    with pytest.raises(ValueError):
        BatchLimits(**limits)


def test_the_call_carries_data_and_partition_keys() -> None:
    # GIVEN two records WHEN turned into PutRecords' Records THEN data and key each
    batch = recs(2)
    assert put_records_entries(batch) == [
        {"Data": batch[0].data, "PartitionKey": "AAPL"},
        {"Data": batch[1].data, "PartitionKey": "AAPL"},
    ]


def test_a_partial_failure_names_each_refused_entry_and_its_code() -> None:
    # GIVEN an answer refusing the 2nd and 4th of four entries (HTTP 200, per-entry ErrorCode)
    batch = recs(4)
    ok = {"SequenceNumber": "1", "ShardId": "shardId-0"}
    answer = {
        "FailedRecordCount": 2,
        "Records": [
            ok,
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"},
            ok,
            {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"},
        ],
    }
    # WHEN split THEN the accepted and the refused entries come back in order, with the codes
    accepted, refused = split_answer(batch, answer)
    assert list(accepted) == [batch[0], batch[2]]
    assert refused == [
        (batch[1], "ProvisionedThroughputExceededException"),
        (batch[3], "InternalFailure"),
    ]


def test_an_answer_without_a_failed_count_is_read_entry_by_entry() -> None:
    # GIVEN an answer that omits FailedRecordCount but refuses the first entry
    batch = recs(2)
    answer = {"Records": [{"ErrorCode": "InternalFailure"}, {"SequenceNumber": "2"}]}
    # WHEN split THEN the refusal is still found
    accepted, refused = split_answer(batch, answer)
    assert (list(accepted), refused) == ([batch[1]], [(batch[0], "InternalFailure")])


def test_an_answer_of_another_length_cannot_be_matched() -> None:
    # GIVEN three entries sent and two answered WHEN split THEN refused, naming both counts
    with pytest.raises(AnswerMismatchError, match="sent 3 records, answered 2"):
        split_answer(recs(3), {"FailedRecordCount": 0, "Records": [{}, {}]})
