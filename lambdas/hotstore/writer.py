"""Batched, retrying writes of items to one DynamoDB table with BatchWriteItem.

- One call per 25 items (the BatchWriteItem limit), never one per record.
- No two items with the same key in one call (DynamoDB refuses the whole call): items are deduped
  by (s, sk), the last one winning. Two records with the same key are the same trade replayed.
- Work goes in rounds: each round sends everything still unwritten, re-chunked; what comes back
  as ``UnprocessedItems`` (and only that) or sat in a call that failed transiently (throttling,
  5xx, connection) goes into the next round after one exponential backoff with full jitter. The
  backoff is per round, not per chunk, so a 500-record batch waits no longer than a 25-record one.
- A budget of rounds and an optional deadline bound the whole thing; what is left is returned,
  with the last error code per key, for the caller to report as batch item failures.

The client's own retries should be off (see ``handler.dynamodb_client``) so that this loop is the
single, explicit budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from lambdas.hotstore.items import Item, Key, key_of
from tradestream.retry import Backoff, error_code, is_transient

MAX_BATCH_ITEMS = 25
UNPROCESSED = "UnprocessedItems"


@dataclass
class WriteResult:
    written: set[Key] = field(default_factory=set)
    failed: dict[Key, str] = field(default_factory=dict)  # key -> last error code
    calls: int = 0
    rounds: int = 0


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
        *,
        max_attempts: int,
        backoff: Backoff,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.client = client
        self.table_name = table_name
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._sleep = sleep
        self._monotonic = monotonic

    def write(self, items: Iterable[Item], *, deadline: float | None = None) -> WriteResult:
        """Write the items; ``deadline`` (``monotonic`` clock) stops retries that would pass it."""
        pending = dedupe(items)
        result = WriteResult()
        last_error: dict[Key, str] = {}
        while pending and result.rounds < self.max_attempts:
            if result.rounds and not self._wait(result.rounds, deadline):
                break
            result.rounds += 1
            retry: dict[Key, Item] = {}
            for chunk in chunked(list(pending.items())):
                self._send(dict(chunk), retry, last_error, result)
            pending = retry
        result.failed.update({key: last_error[key] for key in pending})
        return result

    def _wait(self, retry: int, deadline: float | None) -> bool:
        delay = self.backoff.delay(retry)
        if deadline is not None and self._monotonic() + delay >= deadline:
            return False
        self._sleep(delay)
        return True

    def _send(
        self,
        chunk: dict[Key, Item],
        retry: dict[Key, Item],
        last_error: dict[Key, str],
        result: WriteResult,
    ) -> None:
        """One BatchWriteItem call; sorts the chunk's keys into written, retry or failed."""
        requests = [{"PutRequest": {"Item": item}} for item in chunk.values()]
        result.calls += 1
        try:
            response = self.client.batch_write_item(RequestItems={self.table_name: requests})
        except ParamValidationError:
            raise  # a bug in this module, not a condition to report per record
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc)
            if is_transient(exc):
                retry.update(chunk)
                last_error.update(dict.fromkeys(chunk, code))
            else:
                result.failed.update(dict.fromkeys(chunk, code))
            return
        unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
        held = {key_of(request["PutRequest"]["Item"]) for request in unprocessed}
        for key, item in chunk.items():
            if key in held:
                retry[key] = item
                last_error[key] = UNPROCESSED
            else:
                result.written.add(key)
