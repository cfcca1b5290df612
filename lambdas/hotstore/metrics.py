"""The hotstore function's CloudWatch metrics: namespace ``tradestream``, service ``hotstore``, one
EMF blob per invocation (``lambdas.metrics``); alarms.yaml's dashboard charts exactly these names.

Records are counted as user records (a KPL aggregate holds many, a plain record is one; a Kinesis
record poison as a whole, not base64 or a corrupt aggregate, counts as one) except where a name
says Kinesis. Per batch they reconcile: RecordsReceived = PoisonRecords + DuplicatesSkipped +
ItemsWritten + ItemsFailed, and PoisonRecords = DlqMessages + DlqFailures. KinesisRecordsReceived
counts the event's records, aggregates once each; RecordsReceived / KinesisRecordsReceived is the
batch's aggregation factor. BatchItemFailures counts the Kinesis sequence numbers reported for
redelivery (those holding a user record of ItemsFailed or of DlqFailures; an aggregate once).
"""

from __future__ import annotations

from lambdas.metrics import MILLISECONDS, Metric

SERVICE = "hotstore"

RECORDS_RECEIVED = Metric("RecordsReceived")  # user records
KINESIS_RECORDS_RECEIVED = Metric("KinesisRecordsReceived")  # the event's records
ITEMS_WRITTEN = Metric("ItemsWritten")  # distinct items (s, sk) written
DUPLICATES_SKIPPED = Metric("DuplicatesSkipped")  # records whose item another record carried
ITEMS_FAILED = Metric("ItemsFailed")  # items still unwritten when the retry budget ran out
POISON_RECORDS = Metric("PoisonRecords")
DLQ_MESSAGES = Metric("DlqMessages")  # poison records kept in the DLQ
DLQ_FAILURES = Metric("DlqFailures")  # poison records the DLQ did not take (reported)
BATCH_ITEM_FAILURES = Metric("BatchItemFailures")
BATCH_WRITE_CALLS = Metric("BatchWriteCalls")
# Items sent again after UnprocessedItems or a transient error (throttling, 5xx): DynamoDB
# pushing back, once per item and round.
WRITE_RETRIES = Metric("WriteRetries")
# Edge receive time (rt) -> the batch's write time (ingested_at), over the items written: the
# latency the demo summary reports, per batch. Absent when nothing was written.
END_TO_END_LATENCY_MAX = Metric("EndToEndLatencyMax", MILLISECONDS)
END_TO_END_LATENCY_AVG = Metric("EndToEndLatencyAvg", MILLISECONDS)

METRICS = (
    RECORDS_RECEIVED,
    KINESIS_RECORDS_RECEIVED,
    ITEMS_WRITTEN,
    DUPLICATES_SKIPPED,
    ITEMS_FAILED,
    POISON_RECORDS,
    DLQ_MESSAGES,
    DLQ_FAILURES,
    BATCH_ITEM_FAILURES,
    BATCH_WRITE_CALLS,
    WRITE_RETRIES,
    END_TO_END_LATENCY_MAX,
    END_TO_END_LATENCY_AVG,
)
