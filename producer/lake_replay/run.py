"""Backfill from the lake: its selected trades back on the stream through the producer's own
lifecycle and publisher (``producer.app.run``: batching, partial-failure resends, backpressure, the
bounded shutdown), so a new or emptied sink fills again while the idempotent ones stay unchanged.

Where the lake and the stream are comes from the variables every service reads: ``BUCKET_NAME``
and ``DATA_PREFIX`` (the folder the delivery stream's Prefix starts with, ``trades/``) here,
``STREAM_NAME`` and the publisher's tuning (``BATCH_MAX_RECORDS``, ``LINGER_MS``,
``BUFFER_MAX_RECORDS``, ``MAX_PUT_ATTEMPTS``, ``SHUTDOWN_DEADLINE_SECONDS``...) through
``ProducerSettings``, the endpoint and credentials through botocore (``AWS_ENDPOINT_URL``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.app import ProducerError, ProducerStats, run
from producer.lake_replay.selection import Selection
from producer.lake_replay.source import DEFAULT_MAX_GAP_S, LakeSource, LakeStats, Pace
from producer.settings import ProducerSettings
from tradestream import aws


class LakeReplaySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    bucket_name: str = Field(
        default="tradestream-lake", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    )
    data_prefix: str = "trades/"
    replay_max_gap_seconds: float = Field(default=DEFAULT_MAX_GAP_S, gt=0, le=86_400)

    @field_validator("data_prefix")
    @classmethod
    def _a_folder(cls, value: str) -> str:
        if not re.fullmatch(r"[^/*?\[\]{}!][^*?\[\]{}!]*/", value):
            raise ValueError(
                "must be a folder: the delivery stream's Prefix up to its first expression "
                "(trades/ for trades/symbol=!{partitionKeyFromLambda:symbol}/...)"
            )
        return value


def publisher_settings(**overrides: Any) -> ProducerSettings:
    """The producer's settings from the environment, for its publisher and lifecycle only."""
    # The source is the lake, not SOURCE's: naming one here keeps SOURCE=replay (without its
    # REPLAY_FILE) or SOURCE=finnhub (without its key) in a shared environment from failing.
    return ProducerSettings(source="synthetic", **overrides)


@dataclass(frozen=True)
class LakeReplaySummary:
    bucket: str
    prefix: str
    stream: str
    selection: dict[str, Any]
    pace: Pace
    max_gap_s: float | None
    objects_listed: int
    objects_read: int
    lines_read: int
    trades_put: int  # trades handed to the publisher (after filter and duplicates)
    published: int  # acknowledged by Kinesis
    failed: int  # given up on by the publisher, each logged with its record
    dropped_by_policy: int
    buffered: int
    retried: int
    put_calls: int
    skipped_by_filter: int
    duplicates: int
    invalid_lines: int
    invalid_by_object: dict[str, int]
    invalid_examples: list[dict[str, Any]]
    unreadable_objects: dict[str, str]
    list_calls: int
    partitions_pruned: int
    elapsed_s: float
    stopped_by: str

    @property
    def complete(self) -> bool:
        """Every line the selection holds is on the stream (or was a duplicate or filtered)."""
        return (
            self.stopped_by == "source_end"
            and self.published == self.trades_put
            and not (self.invalid_lines or self.unreadable_objects or self.dropped_by_policy)
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}


class LakeReplayError(Exception):
    """The replay stopped on an error no retry heals; ``summary`` holds the counts so far."""

    def __init__(self, message: str, code: str, summary: LakeReplaySummary) -> None:
        super().__init__(message)
        self.code = code
        self.summary = summary


async def replay_from_lake(
    selection: Selection,
    *,
    pace: Pace = "fast",
    lake: LakeReplaySettings | None = None,
    producer: ProducerSettings | None = None,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[LakeReplaySummary], None] | None = None,
    s3: Any | None = None,
    kinesis: Any | None = None,
) -> LakeReplaySummary:
    """Put the selected trades of the lake on the stream; return the counts once flushed.

    ``stop`` ends it early (with the producer's bounded flush); ``on_progress`` hears the counts
    about every 0.25 s and once at the end. Raises ``LakeReplayError`` when the lake cannot be
    listed or the stream refuses the puts for good.
    """
    lake = lake or LakeReplaySettings()
    producer = producer or publisher_settings()
    async with contextlib.AsyncExitStack() as clients:
        if s3 is None:
            s3 = await clients.enter_async_context(aws.aio_client("s3"))
        source = LakeSource(
            s3,
            lake.bucket_name,
            lake.data_prefix,
            selection,
            pace=pace,
            max_gap_s=lake.replay_max_gap_seconds,
        )

        def summary(stats: ProducerStats) -> LakeReplaySummary:
            return _summary(lake, producer, selection, pace, stats, source.stats)

        progress = None if on_progress is None else (lambda s: on_progress(summary(s)))
        try:
            stats = await run(
                producer, source=source, stop=stop, on_progress=progress, kinesis=kinesis
            )
        except ProducerError as exc:
            raise LakeReplayError(str(exc), exc.code, summary(exc.stats)) from exc
    return summary(stats)


def _summary(
    lake: LakeReplaySettings,
    producer: ProducerSettings,
    selection: Selection,
    pace: Pace,
    stats: ProducerStats,
    read: LakeStats,
) -> LakeReplaySummary:
    return LakeReplaySummary(
        bucket=lake.bucket_name,
        prefix=lake.data_prefix,
        stream=producer.stream_name,
        selection=selection.to_json(),
        pace=pace,
        max_gap_s=lake.replay_max_gap_seconds if pace == "recorded" else None,
        lines_read=read.lines,
        trades_put=stats.received,
        invalid_lines=read.invalid,
        invalid_by_object=dict(read.invalid_by_object),
        invalid_examples=list(read.invalid_examples),
        unreadable_objects=dict(read.unreadable_objects),
        **{name: getattr(read, name) for name in _LAKE_COUNTS},
        **{name: getattr(stats, name) for name in _PRODUCER_COUNTS},
    )


# Counts the summary takes under their own names.
_LAKE_COUNTS = (
    "objects_listed",
    "objects_read",
    "skipped_by_filter",
    "duplicates",
    "list_calls",
    "partitions_pruned",
)
_PRODUCER_COUNTS = (
    "published",
    "failed",
    "dropped_by_policy",
    "buffered",
    "retried",
    "put_calls",
    "elapsed_s",
    "stopped_by",
)
