"""Batched, retrying writes of items to one DynamoDB table with BatchWriteItem.

- One call per 25 items (the BatchWriteItem limit), never one per record.
- No two items with the same key in one call (DynamoDB refuses the whole call): items are deduped
  by (s, sk), the last one winning. Two records with the same key are the same trade replayed.
- Work goes in rounds (``lambdas.hotstore.rounds``): each round sends everything still
  unwritten, re-chunked; what comes back as ``UnprocessedItems`` (and only that) or sat in a call
  that failed transiently goes into the next round, so a 500-record batch waits no longer than a
  25-record one. What is left at the end of the budget is returned, with the last error code per
  key, for the caller to report as batch item failures.

- Each item's ``ingested_at`` is stamped with the time of the call that carries it (when a clock
  is given): with KPL aggregates one invocation can hold thousands of trades, written over
  seconds, and a time taken once per invocation would report them all as written at its start.

The client's own retries should be off (see ``handler.dynamodb_client``) so that the rounds are
the single, explicit budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdas.hotstore.items import Item, Key, key_of
from lambdas.hotstore.rounds import CallOutcome, RetryRounds
from tradestream.limits import DYNAMODB_BATCH_WRITE_MAX_ITEMS

MAX_BATCH_ITEMS = DYNAMODB_BATCH_WRITE_MAX_ITEMS
UNPROCESSED = "UnprocessedItems"


@dataclass
class WriteResult:
    written: set[Key] = field(default_factory=set)
    failed: dict[Key, str] = field(default_factory=dict)  # key -> last error code
    calls: int = 0
    rounds: int = 0
    resent: int = 0  # items sent again after UnprocessedItems or a transient error, per round


def dedupe(items: Iterable[Item]) -> dict[Key, Item]:
    """Items by key, the last item of a key winning (its position stays the first one's)."""
    unique: dict[Key, Item] = {}
    for item in items:
        unique[key_of(item)] = item
    return unique


def chunked(entries: Sequence[Any], size: int = MAX_BATCH_ITEMS) -> Iterator[Sequence[Any]]:
    for start in range(0, len(entries), size):
        yield entries[start : start + size]


class BatchWriter:
    def __init__(
        self,
        client: Any,
        table_name: str,
        rounds: RetryRounds,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self._rounds = rounds
        self._clock_ms = clock_ms

    def write(self, items: Iterable[Item], *, deadline: float | None = None) -> WriteResult:
        """Write the items; ``deadline`` (``monotonic`` clock) stops retries that would pass it."""
        unique = dedupe(items)
        done = self._rounds.run(unique, chunked, self._call, deadline=deadline)
        written = set(unique).difference(done.failed)
        return WriteResult(
            written, done.failed, calls=done.calls, rounds=done.rounds, resent=done.resent
        )

    def _call(self, chunk: dict[Key, Item]) -> CallOutcome[Key]:
        """One BatchWriteItem call; what DynamoDB left unprocessed is retried."""
        if self._clock_ms is not None:
            written_at = {"N": str(self._clock_ms())}
            for item in chunk.values():
                item["ingested_at"] = written_at
        requests = [{"PutRequest": {"Item": item}} for item in chunk.values()]
        response = self.client.batch_write_item(RequestItems={self.table_name: requests})
        unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
        return CallOutcome(
            retry={key_of(request["PutRequest"]["Item"]): UNPROCESSED for request in unprocessed}
        )
