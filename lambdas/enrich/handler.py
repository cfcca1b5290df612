"""Lambda entry point: a Firehose batch of trades -> the same trades with the model's predictions.

Every input ``recordId`` is answered exactly once, in input order:

- a trade, enriched: Ok, one NDJSON line, with ``metadata.partitionKeys`` {symbol, date} for the
  delivery stream's dynamic partitioning;
- a record that is not a valid trade: ProcessingFailed with its original data (Firehose writes it
  under the error prefix, wrapped in its error envelope);
- a trade whose id already appeared in the batch: Dropped (one inference and one lake line);
- inference that failed after its retries: Ok with ``prediction: null`` and ``prediction_error``
  (ON_INFERENCE_FAILURE=deliver_null, the default), or ProcessingFailed (=fail).

Trades go to the endpoint in chunks, ONE InvokeEndpoint per chunk. Settings and the client are
built on the first invocation and reused; ``reset()`` forgets them (tests, and the local
runtime's "cold start"). ``Enricher`` takes explicit settings and client. Each invocation
publishes its figures as one EMF blob (``lambdas.enrich.metrics``).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event import (
    KinesisFirehoseRecord,
)
from botocore.config import Config

from lambdas.enrich import metrics
from lambdas.enrich.chunks import chunk
from lambdas.enrich.firehose import (
    Answer,
    TransformationBatch,
    TransformationResponse,
    dropped,
    ok,
    processing_failed,
    read_batch,
    response,
)
from lambdas.enrich.inference import Endpoint
from lambdas.enrich.records import (
    Inference,
    InferenceFailure,
    decode_trade,
    lake_line,
    model_input,
    partition_keys,
)
from lambdas.enrich.settings import EnrichSettings
from lambdas.execution import PerEnvironment, invocation_deadline, lambda_handler
from lambdas.metrics import Figures
from tradestream import aws
from tradestream.retry import SYSTEM_CLOCK, Clock
from tradestream.trade import Trade, TradeError

# Named explicitly: the local runtime runs several functions in one process, where a shared
# POWERTOOLS_SERVICE_NAME would give every function's lines the same service.
# stderr: Lambda sends both streams to CloudWatch; locally stdout carries only results.
logger = Logger(service="enrich", logger_handler=logging.StreamHandler(sys.stderr))


def sagemaker_client(settings: EnrichSettings) -> Any:
    # The Endpoint owns the retry budget; SDK retries underneath would multiply it and could run
    # the function into its timeout. An attempt (connect + read) ends well before the function does.
    config = aws.NO_SDK_RETRIES.merge(
        Config(
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
        )
    )
    return aws.client("sagemaker-runtime", config=config)


class Enricher:
    """The function's work for one batch, over explicit settings and client."""

    def __init__(
        self,
        settings: EnrichSettings,
        *,
        sagemaker: Any,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self._monotonic = clock.monotonic
        self.endpoint = Endpoint(sagemaker, settings, clock)

    @classmethod
    def from_environment(cls) -> Enricher:
        """Settings from the environment variables; the client from the standard AWS ones."""
        settings = EnrichSettings()  # type: ignore[call-arg]  # required values from env
        return cls(settings, sagemaker=sagemaker_client(settings))

    def process(
        self, event: Mapping[str, Any], context: Any = None, figures: Figures | None = None
    ) -> TransformationResponse:
        """Enrich the batch; ``figures``, when given, receives the batch's metrics."""
        batch = read_batch(event)
        deadline = invocation_deadline(
            context, self.settings.retry_reserve_seconds, self._monotonic
        )
        answers: dict[str, Answer] = {}
        tally: Counter[str] = Counter()
        trades = self._decode(batch.records, answers, tally)

        items = [model_input(trade) for _, trade in trades]
        # A trade too large for any chunk can never be inferred (a huge condition list): it gets
        # an inference failure of its own instead of failing the whole batch.
        limit = self.settings.max_chunk_bytes - 2  # the array's brackets
        fitting = [i for i, item in enumerate(items) if len(item) <= limit]
        failures: Counter[str] = Counter()
        for index in (i for i, item in enumerate(items) if len(item) > limit):
            reason = f"PayloadTooLarge: {len(items[index])} bytes, over MAX_CHUNK_BYTES"
            failures[reason] += 1
            self._answer(*trades[index], InferenceFailure(reason), answers, tally)

        chunks = chunk([items[i] for i in fitting], self.settings.max_chunk_bytes)
        endpoint_seconds = 0.0
        for part in chunks:
            result = self.endpoint.predict(part.body, len(part.indexes), deadline=deadline)
            tally["endpoint_calls"] += result.calls
            tally["endpoint_errors"] += result.errors
            endpoint_seconds += result.call_seconds
            if result.failure is not None:
                failures[result.failure] += len(part.indexes)
            for index, inference in zip(part.indexes, result.inferences, strict=True):
                self._answer(*trades[fitting[index]], inference, answers, tally)

        self._log(batch, tally, failures, len(chunks))
        # Input order, each recordId once (Firehose never repeats one; if it did, one answer).
        order = dict.fromkeys(record.record_id for record in batch.records)
        answered = response(answers[record_id] for record_id in order)
        if figures is not None:
            _measure(figures, batch, answered, tally, endpoint_seconds)
        return answered

    def _answer(
        self,
        record: KinesisFirehoseRecord,
        trade: Trade,
        inference: Inference,
        answers: dict[str, Answer],
        tally: Counter[str],
    ) -> None:
        failed = isinstance(inference, InferenceFailure)
        if failed and self.settings.on_inference_failure == "fail":
            answers[record.record_id] = processing_failed(record)
            tally["inference_failed_records"] += 1
            return
        line = lake_line(trade, inference)
        answers[record.record_id] = ok(record, line, partition_keys(trade))
        tally["null_predictions" if failed else "predicted"] += 1

    def _decode(
        self,
        records: tuple[KinesisFirehoseRecord, ...],
        answers: dict[str, Answer],
        tally: Counter[str],
    ) -> list[tuple[KinesisFirehoseRecord, Trade]]:
        """Valid trades to enrich; invalid records and duplicates are answered right away."""
        trades: list[tuple[KinesisFirehoseRecord, Trade]] = []
        seen: set[str] = set()
        for record in records:
            if record.record_id in answers:
                continue  # a repeated recordId keeps its first answer
            try:
                trade = decode_trade(record)
            except TradeError as exc:
                answers[record.record_id] = processing_failed(record)
                tally["invalid"] += 1
                logger.warning(
                    "record is not a valid trade; answered ProcessingFailed",
                    extra={"record_id": record.record_id, "reason": str(exc)},
                )
                continue
            if self.settings.drop_duplicates and trade.id in seen:
                answers[record.record_id] = dropped(record)
                tally["duplicates"] += 1
                continue
            seen.add(trade.id)
            trades.append((record, trade))
            answers[record.record_id] = processing_failed(record)  # replaced once enriched
        return trades

    def _log(
        self, batch: TransformationBatch, tally: Counter[str], failures: Counter[str], chunks: int
    ) -> None:
        if batch.unanswerable:
            logger.error(
                "records without a recordId cannot be answered; Firehose will retry the batch",
                extra={"records": batch.unanswerable},
            )
        for reason, records in failures.items():
            logger.warning(
                "inference failed for a chunk",
                extra={
                    "reason": reason,
                    "records": records,
                    "on_inference_failure": self.settings.on_inference_failure,
                },
            )
        logger.info(
            "batch enriched",
            extra={
                "invocation_id": batch.event.get("invocationId"),
                "received": len(batch.records),
                "predicted": tally["predicted"],
                "null_predictions": tally["null_predictions"],
                "inference_failed_records": tally["inference_failed_records"],
                "invalid": tally["invalid"],
                "duplicates": tally["duplicates"],
                "chunks": chunks,
                "endpoint_calls": tally["endpoint_calls"],
            },
        )


def _measure(
    figures: Figures,
    batch: TransformationBatch,
    answered: TransformationResponse,
    tally: Counter[str],
    endpoint_seconds: float,
) -> None:
    """The batch's figures (``lambdas.enrich.metrics`` says how they reconcile)."""
    results = Counter(record["result"] for record in answered["records"])
    figures.set(metrics.RECORDS_RECEIVED, len(batch.records) + batch.unanswerable)
    figures.set(metrics.RECORDS_OK, results["Ok"])
    figures.set(metrics.RECORDS_DROPPED, results["Dropped"])
    figures.set(metrics.PROCESSING_FAILED, results["ProcessingFailed"])
    figures.set(metrics.INVALID_RECORDS, tally["invalid"])
    figures.set(metrics.UNANSWERABLE_RECORDS, batch.unanswerable)
    figures.set(metrics.PREDICTED, tally["predicted"])
    failed_inferences = tally["null_predictions"] + tally["inference_failed_records"]
    figures.set(metrics.INFERENCE_FAILURES, failed_inferences)
    figures.set(metrics.ENDPOINT_CALLS, tally["endpoint_calls"])
    figures.set(metrics.ENDPOINT_ERRORS, tally["endpoint_errors"])
    if tally["endpoint_calls"]:
        figures.set(metrics.ENDPOINT_LATENCY, endpoint_seconds * 1000 / tally["endpoint_calls"])


# -- the Lambda entry point: state reused across invocations ---------------------------------

_warm = PerEnvironment(Enricher.from_environment)
enricher = _warm.get  # the Enricher of this execution environment
reset = _warm.reset  # forget settings and client, as a new execution environment would
handler = lambda_handler(logger, enricher, service=metrics.SERVICE)
