"""When the emulated delivery stream's buffers are due (pure state, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from tradestream import kpl
from tradestream.local.firehose.events import SourceRecord, from_get_records
from tradestream.local.firehose.state import (
    DestinationBuffers,
    FirehoseShard,
    ObjectBuffer,
    ProcessorBuffer,
)

MIB = 1024 * 1024


def record(n: int, size: int, sequence: str | None = None) -> SourceRecord:
    raw = {
        "SequenceNumber": sequence or str(1000 + n),
        "PartitionKey": "k",
        "Data": b"x" * size,
        "ApproximateArrivalTimestamp": datetime(2024, 6, 20, tzinfo=UTC),
    }
    (read,) = from_get_records("shardId-000000000000", raw)
    return read


def test_the_processor_buffer_is_due_at_its_size_at_its_interval_or_when_forced() -> None:
    # GIVEN 3 records of 100 bytes buffered at t=10
    buffer = ProcessorBuffer()
    buffer.add([record(i, 100) for i in range(3)], now=10.0)

    # THEN with a 1,000-byte buffer and a 5 s interval it is not due at t=14 ...
    assert not buffer.due(14.0, 1000, 5, force=False)
    assert buffer.wait_s(14.0, 5) == 1.0
    # ... is due at t=15, at once with a 300-byte buffer, and whenever forced
    assert buffer.due(15.0, 1000, 5, force=False)
    assert buffer.due(10.0, 300, 5, force=False)
    assert buffer.due(10.0, 1000, 5, force=True)
    # AND an empty buffer is never due
    assert not ProcessorBuffer().due(99.0, 1, 0, force=True)


def test_a_batch_takes_up_to_the_buffer_size_and_the_rest_waits() -> None:
    # GIVEN 10 records of 100 bytes WHEN a 350-byte batch is taken at t=20
    buffer = ProcessorBuffer()
    buffer.add([record(i, 100) for i in range(10)], now=10.0)
    batch = buffer.take(350, now=20.0)

    # THEN the first 3 go (4 would pass 350), in order, and the rest's window restarts
    assert [r.sequence_number for r in batch] == ["1000", "1001", "1002"]
    assert (len(buffer.records), buffer.size, buffer.opened_at) == (7, 700, 20.0)
    # AND a record larger than the buffer size still goes, alone
    big = ProcessorBuffer()
    big.add([record(0, 5000), record(1, 10)], now=0.0)
    assert [r.sequence_number for r in big.take(350, now=1.0)] == ["1000"]


def test_a_batch_is_capped_by_the_6_mb_request_even_under_the_buffer_size() -> None:
    # GIVEN 6 records of 1 MiB (1.33 MiB each in base64) and a 10 MiB buffer size
    buffer = ProcessorBuffer()
    buffer.add([record(i, MIB) for i in range(6)], now=0.0)

    # THEN the buffer is due (the request is full) and a batch takes only 4
    assert buffer.due(0.0, 10 * MIB, 60, force=False)
    assert len(buffer.take(10 * MIB, now=0.0)) == 4


def test_destination_buffers_are_kept_per_partition_and_due_by_size_or_interval() -> None:
    # GIVEN data for two partitions, opened at t=0 and t=5
    buffers = DestinationBuffers()
    aapl = (("symbol", "AAPL"),)
    msft = (("symbol", "MSFT"),)
    buffers.add(aapl, b"a" * 60, arrival_ms=2000, now=0.0, source=("shardId-000000000000", "1"))
    buffers.add(aapl, b"b" * 50, arrival_ms=1000, now=1.0, source=("shardId-000000000000", "2"))
    buffers.add(msft, b"c" * 10, arrival_ms=3000, now=5.0, source=("shardId-000000000000", "3"))

    # WHEN taken with a 100-byte size at t=6 and a 10 s interval
    due = buffers.take_due(6.0, 100, 10, force=False)

    # THEN only AAPL (110 bytes) is due; its object keeps the oldest arrival for its timestamp
    assert [key for key, _ in due] == [aapl]
    (_, object_buffer), *_ = due
    assert (object_buffer.records, object_buffer.size, object_buffer.oldest_arrival_ms) == (
        2,
        110,
        1000,
    )
    assert b"".join(object_buffer.chunks) == b"a" * 60 + b"b" * 50
    # AND MSFT waits until t=15 for its interval
    assert buffers.wait_s(6.0, 10) == 9.0
    assert buffers.take_due(14.9, 100, 10, force=False) == []
    assert [key for key, _ in buffers.take_due(15.0, 100, 10, force=False)] == [msft]
    assert buffers.wait_s(15.0, 10) is None


def test_an_object_that_could_not_be_written_is_put_back_ahead_of_newer_data() -> None:
    # GIVEN an object taken for writing while newer data arrived for the same partition
    buffers = DestinationBuffers()
    key = (("symbol", "AAPL"),)
    buffers.add(key, b"old\n", arrival_ms=1, now=0.0, source=("shardId-000000000000", "4"))
    ((_, taken),) = buffers.take_due(0.0, 1, 10, force=True)
    buffers.add(key, b"new\n", arrival_ms=2, now=1.0, source=("shardId-000000000000", "5"))

    # WHEN it is put back
    buffers.put_back(key, taken)

    # THEN one buffer holds both, the old data first
    merged = buffers.buffers[key]
    assert isinstance(merged, ObjectBuffer)
    assert (b"".join(merged.chunks), merged.records) == (b"old\nnew\n", 2)
    assert merged.sources == [("shardId-000000000000", "4"), ("shardId-000000000000", "5")]


def _read(shard: FirehoseShard, *sequence_numbers: str) -> None:
    shard.read(record(int(n), 10, sequence=n) for n in sequence_numbers)


def test_the_checkpoint_is_the_last_record_of_the_done_prefix() -> None:
    # GIVEN five records read from one shard, spread over partitions written at different times
    shard = FirehoseShard("shardId-000000000000")
    _read(shard, "1", "2", "3", "4", "5")

    # WHEN a later partition's object is written first, the checkpoint does not move past 1..2
    assert shard.finish(["3", "5"]) is None
    assert shard.checkpoint is None

    # THEN once the records before them are done, it moves over every done one in read order
    assert shard.finish(["1", "2"]) == "3"
    assert shard.finish(["4"]) == "5"
    assert (shard.checkpoint, list(shard.unfinished), shard.pending) == ("5", [], {})


def test_records_of_a_replaced_cursor_do_not_move_the_checkpoint() -> None:
    # GIVEN a cursor that read 7 and 8 (a new owner of the shard's lease resumed after 6)
    shard = FirehoseShard("shardId-000000000000", checkpoint="6")
    _read(shard, "7", "8")

    # WHEN records an earlier cursor buffered (5, 6) reach S3, and then 8
    assert shard.finish(["5", "6", "8"]) is None

    # THEN the checkpoint waits for 7, and nothing unknown is remembered
    assert (shard.checkpoint, set(shard.pending)) == ("6", {"7", "8"})


def test_an_aggregate_is_done_only_when_every_one_of_its_user_records_is() -> None:
    # GIVEN an aggregate "1" of three user records, then plain records "2" and "3"
    shard = FirehoseShard("shardId-000000000000")
    aggregate = kpl.aggregate([("AAPL", b"a"), ("MSFT", b"m"), ("AAPL", b"b")])
    raw = {
        "SequenceNumber": "1",
        "PartitionKey": "AAPL",
        "Data": aggregate,
        "ApproximateArrivalTimestamp": datetime(2024, 6, 20, tzinfo=UTC),
    }
    users = from_get_records("shardId-000000000000", raw)
    assert len(users) == 3
    shard.read(users)
    _read(shard, "2", "3")

    # WHEN the plain ones and two of the aggregate's (AAPL's partition) reach S3
    # THEN the checkpoint stays before the aggregate, waiting for its MSFT record
    assert shard.finish(["2", "1", "1", "3"]) is None
    assert (shard.checkpoint, shard.pending) == (None, {"1": 1, "2": 0, "3": 0})

    # AND once that one is in S3 too, it moves over the aggregate and past the rest
    assert shard.finish(["1"]) == "3"
    assert (shard.checkpoint, list(shard.unfinished), shard.pending) == ("3", [], {})
