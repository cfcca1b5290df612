"""Leases and durable checkpoints of the emulated Kinesis consumers, kept in a DynamoDB table the
way the Kinesis Client Library keeps its leases.

One item per consumer and shard, keyed ``leaseKey`` = ``<consumer>/<shard id>``:

- ``leaseOwner`` and ``expiresAtMs``: who works the shard, and until when unless renewed;
- ``leaseCounter``: bumped by every take, renewal and checkpoint (as KCL's, for whoever inspects
  the table; ownership is decided by the conditions below, not by watching it);
- ``checkpoint``: the last sequence number done (handled by the function, or in S3);
- ``startedAtMs``: when the consumer first took the shard with no checkpoint. A consumer starting
  at LATEST that is restarted before its first checkpoint resumes AT_TIMESTAMP from it, so its
  start position stays where it was first taken, as an AWS mapping's stays where it was created.

Every write is conditional on ownership, so two runtimes against one stream never both work a
shard: a lease is taken only when it is free, expired or already the taker's; a renewal or a
checkpoint by an owner that lost it fails, and that owner stops reading the shard. Expiry is a
wall-clock time, so processes sharing a table need clocks within a fraction of the lease
duration of each other (one machine, or NTP-synchronised hosts); KCL watches the counter instead.

A graceful stop releases the leases, so a restarted runtime resumes at once; a killed one's
leases expire after ``duration_s`` (10 s, KCL's default failover time) and are taken then.

``MemoryLeases`` is the same protocol without a table: everything is granted, nothing survives
the process (emulations built without a table, as in most tests).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tradestream import aws

log = logging.getLogger(__name__)

DEFAULT_LEASE_DURATION_S = 10.0


@dataclass(frozen=True)
class Lease:
    """A lease just taken: where to resume the shard."""

    shard_id: str
    checkpoint: str | None
    started_at_ms: int  # when the shard was first taken with no checkpoint
    fresh: bool  # no earlier holder started it: the consumer's own starting position applies

    def iterator_args(self, initial: dict[str, Any]) -> dict[str, Any]:
        """GetShardIterator arguments resuming this lease; ``initial`` for a fresh one."""
        if self.checkpoint is not None:
            return {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": self.checkpoint,
            }
        if not self.fresh and initial.get("ShardIteratorType") == "LATEST":
            return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": self.started_at_ms / 1000}
        return initial


class Leases(Protocol):
    owner: str
    duration_s: float

    def take(self, shard_id: str) -> Lease | None:
        """The shard's lease if it is free, expired or ours; None if someone else holds it."""

    def renew(self, shard_ids: Iterable[str]) -> set[str]:
        """Extend the leases held; the shards among them that are no longer ours."""

    def checkpoint(self, shard_id: str, sequence_number: str) -> bool:
        """Record the shard done up to ``sequence_number``; False if the lease is lost."""

    def release(self, shard_ids: Iterable[str]) -> None:
        """Give the leases up (a graceful stop), so the next runtime takes them at once."""


def new_owner() -> str:
    """Unique per consumer instance; host and pid say where it ran."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class MemoryLeases:
    """Everything granted, checkpoints in memory: the emulation alone, as before leases."""

    def __init__(self, owner: str | None = None) -> None:
        self.owner = owner or new_owner()
        self.duration_s = float("inf")
        self.checkpoints: dict[str, str] = {}
        self._started: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, shard_id: str) -> Lease | None:
        with self._lock:
            fresh = shard_id not in self._started
            started = self._started.setdefault(shard_id, time.time_ns() // 1_000_000)
            return Lease(shard_id, self.checkpoints.get(shard_id), started, fresh)

    def renew(self, shard_ids: Iterable[str]) -> set[str]:
        return set()

    def checkpoint(self, shard_id: str, sequence_number: str) -> bool:
        with self._lock:
            self.checkpoints[shard_id] = sequence_number
        return True

    def release(self, shard_ids: Iterable[str]) -> None:
        return None


class DynamoDBLeases:
    """The leases of one consumer (e.g. ``mapping/<function>/<stream>``) in ``table_name``."""

    def __init__(
        self,
        *,
        table_name: str,
        consumer: str,
        owner: str | None = None,
        duration_s: float = DEFAULT_LEASE_DURATION_S,
        dynamodb: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if duration_s <= 0:
            raise ValueError("duration_s must be positive")
        self.table_name = table_name
        self.consumer = consumer
        self.owner = owner or new_owner()
        self.duration_s = duration_s
        self._dynamodb = dynamodb if dynamodb is not None else aws.client("dynamodb")
        self._clock = clock
        self._expires: dict[str, int] = {}  # our own view of when each held lease runs out
        self._lock = threading.Lock()

    def key(self, shard_id: str) -> str:
        return f"{self.consumer}/{shard_id}"

    def take(self, shard_id: str) -> Lease | None:
        now = self._now_ms()
        expires = now + self._duration_ms
        try:
            item = self._dynamodb.update_item(
                TableName=self.table_name,
                Key={"leaseKey": {"S": self.key(shard_id)}},
                UpdateExpression=(
                    "SET leaseOwner = :me, expiresAtMs = :expires, "
                    "leaseCounter = if_not_exists(leaseCounter, :zero) + :one, "
                    "startedAtMs = if_not_exists(startedAtMs, :now)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(leaseOwner) OR leaseOwner = :me OR expiresAtMs < :now"
                ),
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":expires": {"N": str(expires)},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":now": {"N": str(now)},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise
        with self._lock:
            self._expires[shard_id] = expires
        started = int(item["startedAtMs"]["N"])
        checkpoint = item.get("checkpoint", {}).get("S")
        return Lease(shard_id, checkpoint, started, fresh=checkpoint is None and started == now)

    def renew(self, shard_ids: Iterable[str]) -> set[str]:
        lost = set()
        for shard_id in shard_ids:
            if not self._extend(shard_id, "SET expiresAtMs = :expires", {}):
                lost.add(shard_id)
        return lost

    def checkpoint(self, shard_id: str, sequence_number: str) -> bool:
        return self._extend(
            shard_id,
            "SET expiresAtMs = :expires, #checkpoint = :sequence",
            {":sequence": {"S": sequence_number}},
        )

    def release(self, shard_ids: Iterable[str]) -> None:
        for shard_id in shard_ids:
            try:
                self._dynamodb.update_item(
                    TableName=self.table_name,
                    Key={"leaseKey": {"S": self.key(shard_id)}},
                    UpdateExpression="REMOVE leaseOwner SET expiresAtMs = :zero",
                    ConditionExpression="leaseOwner = :me",
                    ExpressionAttributeValues={":me": {"S": self.owner}, ":zero": {"N": "0"}},
                )
            except (ClientError, BotoCoreError) as exc:
                if not _condition_failed(exc):
                    # It expires by itself; the next runtime just waits for that.
                    log.warning("releasing the lease of %s failed: %s", shard_id, exc)
            with self._lock:
                self._expires.pop(shard_id, None)

    def _extend(self, shard_id: str, update: str, values: dict[str, Any]) -> bool:
        """One conditional write that also renews; False once the lease is not ours.

        A write that fails for another reason (throttling, the network) keeps the lease while
        our own view says it has not expired: the next renewal or checkpoint tries again.
        """
        expires = self._now_ms() + self._duration_ms
        names = {"#checkpoint": "checkpoint"} if "#checkpoint" in update else {}
        try:
            self._dynamodb.update_item(
                TableName=self.table_name,
                Key={"leaseKey": {"S": self.key(shard_id)}},
                UpdateExpression=update + ", leaseCounter = leaseCounter + :one",
                ConditionExpression="leaseOwner = :me",
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":expires": {"N": str(expires)},
                    ":one": {"N": "1"},
                    **values,
                },
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except (ClientError, BotoCoreError) as exc:
            if _condition_failed(exc):
                with self._lock:
                    self._expires.pop(shard_id, None)
                return False
            log.warning("renewing the lease of %s failed (%s); retrying", shard_id, exc)
            with self._lock:
                return self._expires.get(shard_id, 0) > self._now_ms()
        with self._lock:
            self._expires[shard_id] = expires
        return True

    @property
    def _duration_ms(self) -> int:
        return round(self.duration_s * 1000)

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)


def _condition_failed(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code: str = exc.response.get("Error", {}).get("Code", "")
    return code == "ConditionalCheckFailedException"
