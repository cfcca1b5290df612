"""The enrich function's CloudWatch metrics: namespace ``tradestream``, service ``enrich``, one EMF
blob per invocation (``lambdas.metrics``); alarms.yaml's dashboard charts exactly these names.

Per batch they reconcile: RecordsReceived = RecordsOk + RecordsDropped + ProcessingFailed +
UnanswerableRecords (Firehose never repeats a recordId); RecordsOk = Predicted + the Ok records
whose inference failed (delivered with ``prediction: null``); InvalidRecords and the failed
inferences under ON_INFERENCE_FAILURE=fail are the ProcessingFailed.
"""

from __future__ import annotations

from lambdas.metrics import MILLISECONDS, Metric

SERVICE = "enrich"

RECORDS_RECEIVED = Metric("RecordsReceived")
RECORDS_OK = Metric("RecordsOk")
RECORDS_DROPPED = Metric("RecordsDropped")  # a trade repeated in the batch
PROCESSING_FAILED = Metric("ProcessingFailed")  # to the lake's error prefix
INVALID_RECORDS = Metric("InvalidRecords")  # not a trade
# Without a recordId: Firehose fails the whole batch (Lambda.MissingRecordId) and retries it.
UNANSWERABLE_RECORDS = Metric("UnanswerableRecords")
PREDICTED = Metric("Predicted")
INFERENCE_FAILURES = Metric("InferenceFailures")  # trades whose inference failed, either mode
ENDPOINT_CALLS = Metric("EndpointCalls")  # InvokeEndpoint attempts
ENDPOINT_ERRORS = Metric("EndpointErrors")  # attempts that failed or answered invalidly
# Mean time of one InvokeEndpoint attempt, as the function saw it (network included; SageMaker's
# ModelLatency is the container's share). Absent when no call was made.
ENDPOINT_LATENCY = Metric("EndpointLatency", MILLISECONDS)

METRICS = (
    RECORDS_RECEIVED,
    RECORDS_OK,
    RECORDS_DROPPED,
    PROCESSING_FAILED,
    INVALID_RECORDS,
    UNANSWERABLE_RECORDS,
    PREDICTED,
    INFERENCE_FAILURES,
    ENDPOINT_CALLS,
    ENDPOINT_ERRORS,
    ENDPOINT_LATENCY,
)
