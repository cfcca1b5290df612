"""Lambda entry point: a Kinesis batch of trades -> DynamoDB, poison records -> the DLQ.

Each Kinesis record is opened into its user records first (a KPL aggregate holds many, a plain
record is one: ``lambdas.hotstore.records``); every user record is a trade or poison on its own.
``handler`` answers ``{"batchItemFailures": [{"itemIdentifier": <sequenceNumber>}, ...]}`` (the
event source mapping has ReportBatchItemFailures on) listing only Kinesis records that may succeed
later: those with a user record whose write failed past the retry budget, or with a poison record
the DLQ could not take. An aggregate is reported by its own sequence number, the only one Lambda
knows, so the mapping redelivers it whole; its user records that were written are written again
under the same keys, which changes nothing (ids keep the table idempotent). Poison records the
DLQ took are successes (see ``lambdas.hotstore.dlq`` for why).

Settings and clients are built on the first invocation and reused by later ones (the Lambda
execution environment outlives an invocation); ``reset()`` forgets them, for tests and for the
local runtime's "cold start". ``Hotstore`` takes explicit settings and clients. Each invocation
publishes its figures as one EMF blob (``lambdas.hotstore.metrics``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Any, TypedDict

from aws_lambda_powertools import Logger
from botocore.config import Config

from lambdas.execution import PerEnvironment, invocation_deadline, lambda_handler
from lambdas.hotstore import metrics
from lambdas.hotstore.dlq import DeadLetter, DeadLetterQueue, DeadLetterResult
from lambdas.hotstore.items import Item, Key, key_of, to_item
from lambdas.hotstore.records import PoisonRecordError, RecordRef, decode_trade, user_records
from lambdas.hotstore.rounds import RetryRounds
from lambdas.hotstore.settings import HotstoreSettings
from lambdas.hotstore.writer import BatchWriter, WriteResult
from lambdas.metrics import Figures
from tradestream import aws
from tradestream.retry import SYSTEM_CLOCK, Backoff, Clock

# stderr: Lambda sends both streams to CloudWatch, and locally stdout carries only results (the
# ready line of `tradestream up`, the summary of `demo --json`, a `local invoke` response).
logger = Logger(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "hotstore",
    logger_handler=logging.StreamHandler(sys.stderr),
)


class BatchItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    batchItemFailures: list[BatchItemFailure]


# The writer and the DLQ sender own the retry budget, so the SDK does not retry (it would run
# the function into its timeout); short timeouts leave room for their rounds within it.
_CLIENT_CONFIG = aws.NO_SDK_RETRIES.merge(Config(connect_timeout=2, read_timeout=10))


def dynamodb_client() -> Any:
    return aws.client("dynamodb", config=_CLIENT_CONFIG)


def sqs_client() -> Any:
    return aws.client("sqs", config=_CLIENT_CONFIG)


class Hotstore:
    """The function's work for one batch, over explicit settings and clients."""

    def __init__(
        self,
        settings: HotstoreSettings,
        *,
        dynamodb: Any,
        sqs: Any,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self._clock_ms = clock.wall_ms
        self._monotonic = clock.monotonic
        backoff = Backoff(
            settings.write_backoff_base_seconds, settings.write_backoff_max_seconds, clock.rand
        )

        def rounds(max_attempts: int) -> RetryRounds:
            return RetryRounds(max_attempts=max_attempts, backoff=backoff, clock=clock)

        self.writer = BatchWriter(
            dynamodb, settings.table_name, rounds(settings.max_write_attempts), clock.wall_ms
        )
        self.dlq = DeadLetterQueue(
            sqs, settings.dlq_url, rounds(settings.max_dlq_attempts), clock_ms=clock.wall_ms
        )

    @classmethod
    def from_environment(cls) -> Hotstore:
        """Settings from the environment variables; clients from the standard AWS ones."""
        settings = HotstoreSettings()  # type: ignore[call-arg]  # required values from env
        return cls(settings, dynamodb=dynamodb_client(), sqs=sqs_client())

    def process(
        self, event: Mapping[str, Any], context: Any = None, figures: Figures | None = None
    ) -> BatchResponse:
        """Write the batch; ``figures``, when given, receives the batch's metrics."""
        deadline = invocation_deadline(
            context, self.settings.retry_reserve_seconds, self._monotonic
        )
        refs = [RecordRef.from_event_record(raw) for raw in event.get("Records", [])]
        items, records_by_key, letters = self._classify(refs)
        received = len(items) + len(letters)  # user records (a record poison whole is one)

        written = self.writer.write(items, deadline=deadline)
        dead = self.dlq.send(letters, extra=_origin(context), deadline=deadline)

        failed = {seq for key in written.failed for seq in records_by_key[key]}
        failed |= {letter.ref.sequence_number for letter, _ in dead.failed}
        # Event order, each sequence number once (Lambda checkpoints before the lowest anyway).
        identifiers = list(
            dict.fromkeys(r.sequence_number for r in refs if r.sequence_number in failed)
        )

        unwritten = sum(len(records_by_key[key]) for key in written.failed)
        self._log_outcomes(written.failed, unwritten, dead.sent, dead.failed)
        logger.info(
            "batch processed",
            extra={
                "received": received,
                "kinesis_records": len(refs),
                "written": sum(len(records_by_key[key]) for key in written.written),
                "items": len(written.written),
                "duplicates": len(items) - len(records_by_key),
                "poison": len(dead.sent),
                "failed": len(identifiers),
                "batch_write_calls": written.calls,
                "write_rounds": written.rounds,
                "dlq_calls": dead.calls,
            },
        )
        if figures is not None:
            _measure(figures, len(refs), items, written, dead, len(identifiers))
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in identifiers]}

    def _classify(
        self, refs: list[RecordRef]
    ) -> tuple[list[Item], dict[Key, list[str]], list[DeadLetter]]:
        """Items to write (with the sequence numbers of the Kinesis records behind each key, one
        per user record) and poison records as letters."""
        # Restamped by the writer with each call's time; the demo's latency is ingested_at - rt.
        ingested_at = self._clock_ms()
        items: list[Item] = []
        records_by_key: dict[Key, list[str]] = {}
        letters: list[DeadLetter] = []
        for ref in refs:
            try:
                users = user_records(ref)
            except PoisonRecordError as exc:
                letters.append(DeadLetter(ref, exc.code, exc.message))
                continue
            arrival_s = ref.approximate_arrival_timestamp
            for user in users:
                try:
                    trade = decode_trade(user, arrival_s=arrival_s)
                    item = to_item(
                        trade, ttl_days=self.settings.ttl_days, ingested_at_ms=ingested_at
                    )
                except PoisonRecordError as exc:
                    letters.append(DeadLetter(ref, exc.code, exc.message, user))
                    continue
                items.append(item)
                records_by_key.setdefault(key_of(item), []).append(ref.sequence_number)
        return items, records_by_key, letters

    def _log_outcomes(
        self,
        write_failures: Mapping[Key, str],
        unwritten_records: int,
        poison_kept: list[DeadLetter],
        dlq_failures: list[tuple[DeadLetter, str]],
    ) -> None:
        if write_failures:
            logger.warning(
                "items not written; their Kinesis records are reported for redelivery",
                extra={
                    "items": len(write_failures),
                    "records": unwritten_records,
                    "codes": dict(Counter(write_failures.values())),
                },
            )
        for letter in poison_kept:
            # The reason and where to find the record, never its data (the DLQ message has it).
            logger.warning(
                "poison record kept in the DLQ",
                extra={"reason": letter.reason, "error": letter.error, **_locator(letter)},
            )
        for letter, code in dlq_failures:
            logger.error(
                "poison record could not be sent to the DLQ; reported for redelivery",
                extra={"code": code, "reason": letter.reason, **_locator(letter)},
            )


def _measure(
    figures: Figures,
    kinesis_records: int,
    items: list[Item],
    written: WriteResult,
    dead: DeadLetterResult,
    reported: int,
) -> None:
    """The batch's figures (``lambdas.hotstore.metrics`` says how they reconcile)."""
    last_by_key = {key_of(item): item for item in items}  # the item the writer sent per key
    figures.set(metrics.KINESIS_RECORDS_RECEIVED, kinesis_records)
    figures.set(metrics.RECORDS_RECEIVED, len(items) + len(dead.sent) + len(dead.failed))
    figures.set(metrics.ITEMS_WRITTEN, len(written.written))
    figures.set(metrics.DUPLICATES_SKIPPED, len(items) - len(last_by_key))
    figures.set(metrics.ITEMS_FAILED, len(written.failed))
    figures.set(metrics.POISON_RECORDS, len(dead.sent) + len(dead.failed))
    figures.set(metrics.DLQ_MESSAGES, len(dead.sent))
    figures.set(metrics.DLQ_FAILURES, len(dead.failed))
    figures.set(metrics.BATCH_ITEM_FAILURES, reported)
    figures.set(metrics.BATCH_WRITE_CALLS, written.calls)
    figures.set(metrics.WRITE_RETRIES, written.resent)
    latencies = [
        int(item["ingested_at"]["N"]) - int(item["rt"]["N"])
        for key, item in last_by_key.items()
        if key in written.written
    ]
    if latencies:
        figures.set(metrics.END_TO_END_LATENCY_MAX, max(latencies))
        figures.set(metrics.END_TO_END_LATENCY_AVG, sum(latencies) / len(latencies))


def _locator(letter: DeadLetter) -> dict[str, Any]:
    ref = letter.ref
    locator: dict[str, Any] = {"shard_id": ref.shard_id, "sequence_number": ref.sequence_number}
    if "subSequenceNumber" in letter.position:
        locator["sub_sequence_number"] = letter.position["subSequenceNumber"]
    return locator


def _origin(context: Any) -> dict[str, str]:
    """Which invocation kept a poison record, to find its log lines."""
    origin = {}
    for key, attribute in (("functionName", "function_name"), ("requestId", "aws_request_id")):
        value = getattr(context, attribute, None)
        if isinstance(value, str):
            origin[key] = value
    return origin


# -- the Lambda entry point: state reused across invocations ---------------------------------

_warm = PerEnvironment(Hotstore.from_environment)
hotstore = _warm.get  # the Hotstore of this execution environment
reset = _warm.reset  # forget settings and clients, as a new execution environment would
handler = lambda_handler(logger, hotstore, service=metrics.SERVICE)
