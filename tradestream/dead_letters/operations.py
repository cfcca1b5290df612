"""The two things ``tradestream dlq`` does, over clients built from the environment: list the
DLQ's messages without consuming them, and redrive them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tradestream import aws
from tradestream.dead_letters.messages import DlqMessage, Selection
from tradestream.dead_letters.queue import HeldMessages, queue_url
from tradestream.dead_letters.redrive import Progress, Redrive, RedriveSummary
from tradestream.dead_letters.settings import DeadLetterSettings
from tradestream.kinesis import BatchLimits
from tradestream.retry import SYSTEM_CLOCK, Backoff, Clock, RetryBudget


@dataclass(frozen=True)
class Clients:
    sqs: Any
    cloudformation: Any
    kinesis_reads: Any  # GetShardIterator / GetRecords, with the SDK's standard retries
    kinesis_puts: Any  # PutRecords: the redrive's budget counts every attempt, the SDK none

    @classmethod
    def from_environment(cls) -> Clients:
        return cls(
            sqs=aws.client("sqs"),
            cloudformation=aws.client("cloudformation"),
            kinesis_reads=aws.client("kinesis"),
            kinesis_puts=aws.client("kinesis", config=aws.NO_SDK_RETRIES),
        )


def held_messages(settings: DeadLetterSettings, clients: Clients) -> HeldMessages:
    return HeldMessages(
        clients.sqs,
        queue_url(settings, clients.sqs, clients.cloudformation),
        visibility_timeout_s=settings.dlq_visibility_timeout_seconds,
        wait_s=settings.dlq_receive_wait_seconds,
    )


def list_messages(
    settings: DeadLetterSettings, clients: Clients, selection: Selection
) -> Iterator[DlqMessage]:
    """Every selected message, in the order received; all of them are visible again once the
    iteration ends (or is closed)."""
    held = held_messages(settings, clients)
    try:
        for page in held.pages():
            yield from (message for message in page if selection.matches(message))
    finally:
        held.release()


def redrive(
    settings: DeadLetterSettings,
    clients: Clients,
    selection: Selection,
    *,
    dry_run: bool = False,
    progress: Progress = lambda line: None,
    clock: Clock = SYSTEM_CLOCK,
    limits: BatchLimits | None = None,
) -> RedriveSummary:
    budget = RetryBudget(
        settings.redrive_max_attempts,
        Backoff(
            settings.redrive_backoff_base_seconds,
            settings.redrive_backoff_max_seconds,
            clock.rand,
        ),
    )
    return Redrive(
        held=held_messages(settings, clients),
        kinesis_reads=clients.kinesis_reads,
        kinesis_puts=clients.kinesis_puts,
        stream_name=settings.stream_name,
        budget=budget,
        sleep=clock.sleep,
        progress=progress,
        limits=limits,
    ).run(selection, dry_run=dry_run)
