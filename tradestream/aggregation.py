"""User records packed into the Kinesis records of a PutRecords call: what the producer's
publisher and the ingest service's batcher share, with aggregation (AGGREGATION=true) and without.

With aggregation, the user records waiting for a call are packed into KPL aggregated records
(``tradestream.kpl``), as the Kinesis Producer Library does:

- **per shard**: records of one shard share an aggregate, which is put under its first user
  record's partition key, so Kinesis stores it on that same shard. The shard of a partition key
  is where the MD5 of the key, as a 128-bit integer, falls among the open shards' hash key ranges
  (ListShards). Packing per shard rather than per key matters when many keys share a shard: 50
  symbols on one shard make 50 aggregates a call packed per key, one packed per shard
  (docs/aggregation.md has the figures). A KCL consumer drops a user record whose key hashes
  outside the shard it reads, so a key is never packed with another shard's. The map is fetched
  before the first call and again when an answer puts a record on another shard than predicted
  (the stream was resharded); while ListShards is refused or fails, records are packed **per
  partition key**, which is always right, and ListShards is tried again later.
- **size**: an aggregate is closed at ``max_bytes`` (its Kinesis size: the encoded record plus the
  partition key), which is at most 1 MiB. A user record whose aggregate alone would exceed it goes
  as a plain record of its own; so does an aggregate that got only one user record (as the KPL
  sends it), which saves consumers the unpacking.
- **calls** hold at most 500 Kinesis records and 5 MiB, as without aggregation.

A Kinesis record keeps its bytes once packed: a refused one is sent again whole, as the same
record, and its user records settle together. Without aggregation every user record is a Kinesis
record of its own, so both modes settle and retry the same way.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from tradestream.kinesis import Backlog, BatchLimits, PendingRecord
from tradestream.kpl import Aggregate
from tradestream.limits import KINESIS_MAX_RECORD_BYTES, KiB
from tradestream.logs import get_logger
from tradestream.retry import error_code

logger = get_logger("aggregation")

# The default of AGGREGATION for the producer and the ingest service alike: on, since both
# consumers (the hotstore Lambda, the Firehose transformation) deaggregate, and a shard then takes
# ~7x the trades (docs/aggregation.md). Any other consumer of the stream must deaggregate too.
AGGREGATION_DEFAULT = True

# Kinesis bills writes in PUT payload units of 25 KB (counted as KiB, as the capacity planner
# does), each record rounded up. The default aggregate is two whole units, which wastes none of
# the last one, is the KPL's own AggregationMaxSize default (51,200), and puts ~350 trades of
# ~130 bytes in one record; bigger aggregates would not cut records much further (a call carries
# one per shard at low rates anyway) but make each consumer batch heavier.
PUT_PAYLOAD_UNIT_BYTES = 25 * KiB
AGGREGATION_DEFAULT_MAX_BYTES = 2 * PUT_PAYLOAD_UNIT_BYTES
# Below this an aggregate holds a handful of trades at most: no use, and likely a unit mistake.
AGGREGATION_MIN_MAX_BYTES = KiB
AGGREGATION_MAX_MAX_BYTES = KINESIS_MAX_RECORD_BYTES

HASH_KEY_SPACE = 2**128
# ListShards again after a failure this much later (a denied permission does not heal quickly);
# after a mispredicted shard no sooner than this (one answer may show several).
LIST_SHARDS_RETRY_SECONDS = 300.0
LIST_SHARDS_MIN_INTERVAL_SECONDS = 1.0
LIST_SHARDS_TIMEOUT_SECONDS = 10.0
# Partition keys whose shard is remembered; beyond it the memo starts again (keys are symbols,
# a few hundred at most, but the ingest service takes whatever its clients send).
SHARD_MEMO_MAX_KEYS = 10_000

U = TypeVar("U", bound=PendingRecord)


@dataclass(slots=True, eq=False)
class KinesisRecord(Generic[U]):
    """One entry of a PutRecords call and the user records it carries: an aggregate of them, or
    one of them as a plain record. ``shard`` is the shard it was packed for ("" when it was not
    packed for one); ``attempts`` and ``last_error`` are the entry's, shared by its user records."""

    data: bytes
    key: str
    size: int
    users: list[U]
    shard: str = ""
    attempts: int = 0
    last_error: str = ""

    @property
    def aggregated(self) -> bool:
        return len(self.users) > 1


class ListShardsClient(Protocol):
    async def list_shards(self, **kwargs: Any) -> dict[str, Any]: ...


class ShardMap:
    """The open shards of a stream by hash key range, and the shard of a partition key."""

    __slots__ = ("_ids", "_starts")

    def __init__(self, ranges: Sequence[tuple[int, str]]) -> None:
        """``ranges``: (starting hash key, shard id) of each open shard."""
        if not ranges:
            raise ValueError("a stream has at least one open shard")
        ordered = sorted(ranges)
        self._starts = [start for start, _ in ordered]
        self._ids = [shard for _, shard in ordered]

    @classmethod
    def from_list_shards(cls, shards: Sequence[Mapping[str, Any]]) -> ShardMap:
        """From ListShards' ``Shards``: a closed shard (it has an ending sequence number, after a
        split or merge) takes no more records, so only open ones count."""
        return cls(
            [
                (int(shard["HashKeyRange"]["StartingHashKey"]), str(shard["ShardId"]))
                for shard in shards
                if "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})
            ]
        )

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def shard_ids(self) -> list[str]:
        return list(self._ids)

    def shard_of(self, partition_key: str) -> str:
        digest = hashlib.md5(partition_key.encode(), usedforsecurity=False).digest()
        index = bisect.bisect_right(self._starts, int.from_bytes(digest, "big")) - 1
        return self._ids[max(index, 0)]


async def list_shards(client: ListShardsClient, stream_name: str) -> ShardMap:
    """The stream's open shards, every page of ListShards read."""
    shards: list[dict[str, Any]] = []
    page = await client.list_shards(StreamName=stream_name)
    while True:
        shards += page.get("Shards") or []
        token = page.get("NextToken")
        if not token:
            break
        page = await client.list_shards(NextToken=token)
    return ShardMap.from_list_shards(shards)


class ShardRouter:
    """The group a user record is packed in: its shard while the shard map is known, its
    partition key otherwise (no ``client``, or ListShards refused or failed)."""

    def __init__(
        self,
        client: ListShardsClient | None,
        stream_name: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream_name = stream_name
        self.shards: ShardMap | None = None
        self._client = client
        self._clock = clock
        self._memo: dict[str, str] = {}
        self._due_at: float | None = 0.0 if client is not None else None
        self._stale = False

    @property
    def by_shard(self) -> bool:
        return self.shards is not None

    def group(self, partition_key: str) -> str:
        shard = self._memo.get(partition_key)
        if shard is None:
            if self.shards is None:
                return partition_key
            if len(self._memo) >= SHARD_MEMO_MAX_KEYS:
                self._memo.clear()
            shard = self._memo[partition_key] = self.shards.shard_of(partition_key)
        return shard

    async def refresh_if_due(self) -> None:
        """ListShards now if the map is missing, stale or was never fetched, and it is time."""
        due = self._due_at
        if due is None or self._clock() < due:
            return
        assert self._client is not None
        try:
            async with asyncio.timeout(LIST_SHARDS_TIMEOUT_SECONDS):
                shards = await list_shards(self._client, self.stream_name)
        except Exception as exc:  # any failure: packing per key is always right
            self._set(None)
            self._due_at = self._clock() + LIST_SHARDS_RETRY_SECONDS
            logger.warning(
                "ListShards failed; aggregating per partition key until it answers",
                extra={
                    "stream": self.stream_name,
                    "code": error_code(exc),
                    "retry_in_s": LIST_SHARDS_RETRY_SECONDS,
                },
            )
            return
        self._set(shards)
        self._due_at = None
        logger.info(
            "aggregating per shard", extra={"stream": self.stream_name, "shards": len(shards)}
        )

    def check(self, records: Sequence[KinesisRecord[Any]], results: Sequence[Any]) -> None:
        """Compare the shards Kinesis put ``records`` on (PutRecords' answer, in order) with the
        shards they were packed for: a difference means the stream's shards changed."""
        if self.shards is None or self._stale:
            return
        for record, result in zip(records, results, strict=False):
            put_on = result.get("ShardId")
            if record.shard and put_on and put_on != record.shard:
                self._stale = True
                self._due_at = self._clock() + LIST_SHARDS_MIN_INTERVAL_SECONDS
                logger.info(
                    "a record went to another shard than predicted; reading the shards again",
                    extra={"predicted": record.shard, "put_on": put_on},
                )
                return

    def _set(self, shards: ShardMap | None) -> None:
        self.shards = shards
        self._memo.clear()
        self._stale = False


@dataclass(slots=True)
class _Open(Generic[U]):
    """An aggregate being filled, the Kinesis record it becomes, and that record's users."""

    aggregate: Aggregate
    record: KinesisRecord[U]
    users: list[U]


class Packer(Generic[U]):
    """Cuts the user records waiting in a backlog into the Kinesis records of one call.

    ``max_bytes`` None: no aggregation, every user record is a Kinesis record of its own.
    Otherwise aggregates of at most ``max_bytes``, grouped by ``router`` (per partition key when
    None).
    """

    def __init__(self, max_bytes: int | None = None, router: ShardRouter | None = None) -> None:
        if max_bytes is not None and not (
            AGGREGATION_MIN_MAX_BYTES <= max_bytes <= AGGREGATION_MAX_MAX_BYTES
        ):
            raise ValueError(
                f"an aggregate's size must be {AGGREGATION_MIN_MAX_BYTES}.."
                f"{AGGREGATION_MAX_MAX_BYTES} bytes (1 MiB, Kinesis' record limit)"
            )
        self.max_bytes = max_bytes
        self.router = router if router is not None else ShardRouter(None, "")

    @property
    def aggregating(self) -> bool:
        return self.max_bytes is not None

    def ready(self, backlog: Backlog[U], limits: BatchLimits) -> bool:
        """Whether the waiting user records fill a call: no reason to wait for more. Aggregated,
        ~30,000 trades fill 5 MiB, so it is the bytes that tell."""
        if self.max_bytes is None:
            return backlog.full(limits)
        return backlog.size >= limits.max_bytes

    async def prepare(self) -> None:
        """Before packing: the shard map, if it is due (a no-op without aggregation)."""
        if self.max_bytes is not None:
            await self.router.refresh_if_due()

    def answered(self, records: Sequence[KinesisRecord[U]], response: Mapping[str, Any]) -> None:
        """PutRecords' answer to ``records``, so a resharded stream is noticed."""
        if self.max_bytes is not None:
            self.router.check(records, response.get("Records") or ())

    def pack(
        self,
        backlog: Backlog[U],
        limits: BatchLimits,
        batch: list[KinesisRecord[U]] | None = None,
        keep: Callable[[U], bool] | None = None,
    ) -> tuple[list[KinesisRecord[U]], list[U]]:
        """The oldest user records as Kinesis records that fit one call after those already in
        ``batch`` (resends, appended to), and the user records ``keep`` refused (removed from the
        backlog, not sent: the caller settles them)."""
        batch = [] if batch is None else batch
        if self.max_bytes is None:
            return self._plain(backlog, limits, batch, keep)
        return self._aggregated(backlog, limits, batch, keep, self.max_bytes)

    @staticmethod
    def _plain(
        backlog: Backlog[U],
        limits: BatchLimits,
        batch: list[KinesisRecord[U]],
        keep: Callable[[U], bool] | None,
    ) -> tuple[list[KinesisRecord[U]], list[U]]:
        size = sum(r.size for r in batch)
        dropped: list[U] = []
        taken = 0
        entries, max_records, max_bytes = backlog.entries, limits.max_records, limits.max_bytes
        while (
            len(batch) < max_records and (user := _first_kept(backlog, keep, dropped)) is not None
        ):
            if batch and size + user.size > max_bytes:
                break
            entries.popleft()
            batch.append(KinesisRecord(user.data, user.key, user.size, [user]))
            size += user.size
            taken += user.size
        backlog.size -= taken
        return batch, dropped

    def _aggregated(
        self,
        backlog: Backlog[U],
        limits: BatchLimits,
        batch: list[KinesisRecord[U]],
        keep: Callable[[U], bool] | None,
        target: int,
    ) -> tuple[list[KinesisRecord[U]], list[U]]:
        count, size = len(batch), sum(r.size for r in batch)
        max_records, max_bytes = limits.max_records, limits.max_bytes
        group = self.router.group
        predicted = self.router.by_shard
        filling: dict[str, _Open[U]] = {}
        opened: list[_Open[U]] = []
        dropped: list[U] = []
        taken = 0
        entries = backlog.entries
        while (user := _first_kept(backlog, keep, dropped)) is not None:
            key, data = user.key, user.data
            shard = group(key)
            current = filling.get(shard)
            if current is not None:
                aggregate = current.aggregate
                grows = aggregate.added_size(key, data)
                if aggregate.size + grows <= target:
                    if size + grows > max_bytes:
                        break
                    aggregate.add(key, data)
                    current.users.append(user)
                    size += grows
                    taken += user.size
                    entries.popleft()
                    continue
            # A Kinesis record of its own for this user record: a new aggregate, or plain.
            if count >= max_records:
                break
            aggregate = Aggregate()
            alone = aggregate.size + aggregate.added_size(key, data)
            record = KinesisRecord(data, key, user.size, [user], shard if predicted else "")
            if alone > target:
                if count and size + user.size > max_bytes:
                    break
                size += user.size
            else:
                if size + alone > max_bytes:
                    break
                aggregate.add(key, data)
                current = filling[shard] = _Open(aggregate, record, record.users)
                opened.append(current)
                size += alone
            batch.append(record)
            count += 1
            taken += user.size
            entries.popleft()
        backlog.size -= taken
        for packed in opened:
            if packed.aggregate.count > 1:
                packed.record.data = packed.aggregate.encode()
                packed.record.size = packed.aggregate.size
            # else: the one user record went plain, as the record was made
        return batch, dropped


def _first_kept(
    backlog: Backlog[U], keep: Callable[[U], bool] | None, dropped: list[U]
) -> U | None:
    """The oldest waiting user record ``keep`` wants, left in place; those before it it does not
    want are removed into ``dropped``."""
    entries = backlog.entries
    if keep is not None:
        while entries and not keep(entries[0]):
            user = entries.popleft()
            backlog.size -= user.size
            dropped.append(user)
    return entries[0] if entries else None
