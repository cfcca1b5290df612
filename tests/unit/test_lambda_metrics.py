"""Both Lambda entry points publish their invocation's figures as exactly ONE CloudWatch EMF blob
on stdout, in namespace tradestream, whose values reconcile with the batch and the answer.

The handlers run as Lambda calls them (``handler(event, context)``, settings from the
environment) over the fake clients of the routing and enrich tests: no network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambdas.enrich import handler as enrich_handler
from lambdas.enrich import metrics as enrich_metrics
from lambdas.enrich.handler import Enricher
from lambdas.enrich.settings import EnrichSettings
from lambdas.hotstore import handler as hotstore_handler
from lambdas.hotstore import metrics as hotstore_metrics
from lambdas.metrics import NAMESPACE, Figures, Metric, publish
from tests.support.hotstore import context, sample
from tests.unit.test_enrich_handler import Clock, StubSageMaker, client_error, event_of, make_trades
from tests.unit.test_hotstore_routing import QUEUE, TABLE, FakeDynamoDB, FakeSQS
from tradestream import retry
from tradestream.cfn.template import TEMPLATE_DIR, load_template

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture(autouse=True)
def _metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on Lambda: metrics enabled, and no Powertools variable naming a namespace or service.
    for name in (
        "POWERTOOLS_METRICS_DISABLED",
        "POWERTOOLS_DEV",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


def blobs(out: str) -> list[dict[str, Any]]:
    """Every stdout line, parsed, after checking each is an EMF blob (nothing else is printed)."""
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all("_aws" in line for line in lines), lines
    return lines


def the_blob(out: str, service: str) -> dict[str, Any]:
    """The one EMF blob of one invocation, after checking its envelope; its values by name."""
    (blob,) = blobs(out)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE == "tradestream"
    assert [sorted(d) for d in directive["Dimensions"]] == [["function_name", "service"]]
    assert blob["service"] == service
    assert blob["function_name"] == context().function_name
    declared = [m["Name"] for m in directive["Metrics"]]
    assert sorted(declared) == sorted(set(declared))
    # One value per metric: the batch's total, never one per record
    assert all(isinstance(blob[name], list) and len(blob[name]) == 1 for name in declared), blob
    return {name: blob[name][0] for name in declared}


def units(out: str) -> dict[str, str]:
    (blob,) = blobs(out)
    return {m["Name"]: m["Unit"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def declared(metrics: tuple[Metric, ...]) -> dict[str, str]:
    return {m.name: m.unit.value for m in metrics}


# --- hotstore ------------------------------------------------------------------------------------


@pytest.fixture
def hotstore(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Invoke, FakeDynamoDB, FakeSQS]]:
    """The hotstore entry point over fakes that tests may reconfigure before invoking."""
    dynamodb, sqs = FakeDynamoDB(), FakeSQS()
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("DLQ_URL", QUEUE)
    monkeypatch.setenv("MAX_WRITE_ATTEMPTS", "2")
    monkeypatch.setenv("WRITE_BACKOFF_BASE_SECONDS", "0.001")
    monkeypatch.setenv("WRITE_BACKOFF_MAX_SECONDS", "0.002")
    monkeypatch.setattr(hotstore_handler, "dynamodb_client", lambda: dynamodb)
    monkeypatch.setattr(hotstore_handler, "sqs_client", lambda: sqs)
    hotstore_handler.reset()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = dict(hotstore_handler.handler(event, context()))
        return answer

    yield invoke, dynamodb, sqs
    hotstore_handler.reset()


def test_hotstore_sample_batch_is_one_blob_of_every_metric_reconciling_with_the_batch(
    hotstore: tuple[Invoke, FakeDynamoDB, FakeSQS], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN AWS's sample Kinesis batch: 8 records, one a replay of the first
    invoke, dynamodb, _ = hotstore
    event = sample("kinesis_hotstore_batch.json")

    # WHEN the entry point handles it
    answer = invoke(event)

    # THEN stdout holds one EMF blob, declaring every hotstore metric with its unit
    out = capsys.readouterr().out
    values = the_blob(out, "hotstore")
    assert units(out) == declared(hotstore_metrics.METRICS)
    # AND the figures are the batch's
    assert values["RecordsReceived"] == len(event["Records"]) == 8
    assert values["ItemsWritten"] == len(dynamodb.items) == 7
    assert values["DuplicatesSkipped"] == 1
    assert values["BatchItemFailures"] == len(answer["batchItemFailures"]) == 0
    assert values["PoisonRecords"] == values["DlqMessages"] == values["DlqFailures"] == 0
    assert values["ItemsFailed"] == values["WriteRetries"] == 0
    assert values["BatchWriteCalls"] == dynamodb.calls == 1
    # AND the latency is the written items' ingested_at - rt: the demo summary's latency
    latencies = [int(i["ingested_at"]["N"]) - int(i["rt"]["N"]) for i in dynamodb.items]
    assert values["EndToEndLatencyMax"] == max(latencies)
    assert values["EndToEndLatencyAvg"] == pytest.approx(sum(latencies) / len(latencies))


def test_hotstore_poison_the_dlq_refuses_is_counted_and_reported(
    hotstore: tuple[Invoke, FakeDynamoDB, FakeSQS], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the poison sample (3 valid, 3 poison records) and a DLQ failing every entry
    invoke, _, sqs = hotstore
    sqs.fail = True
    event = sample("kinesis_hotstore_poison.json")

    # WHEN handled
    answer = invoke(event)

    # THEN the blob counts the poison the DLQ refused, reported exactly as the answer says
    values = the_blob(capsys.readouterr().out, "hotstore")
    assert values["RecordsReceived"] == len(event["Records"]) == 6
    assert values["PoisonRecords"] == values["DlqFailures"] == 3
    assert values["DlqMessages"] == 0
    assert values["BatchItemFailures"] == len(answer["batchItemFailures"]) == 3
    assert values["ItemsWritten"] == 3


def test_hotstore_unprocessed_items_are_retries_then_failures_that_reconcile(
    hotstore: tuple[Invoke, FakeDynamoDB, FakeSQS], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN DynamoDB never processing the AAPL items (2 attempts allowed)
    invoke, dynamodb, _ = hotstore
    dynamodb.hold_symbol = "AAPL"
    event = sample("kinesis_hotstore_batch.json")

    # WHEN the sample batch is handled
    answer = invoke(event)

    # THEN the held items were sent again once, then failed, and their records are reported
    values = the_blob(capsys.readouterr().out, "hotstore")
    held = {i["sk"]["S"] for i in dynamodb.items}
    assert values["ItemsFailed"] > 0
    assert values["WriteRetries"] == values["ItemsFailed"]  # one more round each
    assert values["BatchWriteCalls"] == dynamodb.calls == 2
    assert values["ItemsWritten"] == len(held)
    assert values["BatchItemFailures"] == len(answer["batchItemFailures"]) > 0
    # AND every record is accounted for once
    assert values["RecordsReceived"] == (
        values["PoisonRecords"]
        + values["DuplicatesSkipped"]
        + values["ItemsWritten"]
        + values["ItemsFailed"]
    )


def test_each_invocation_publishes_its_own_figures_only(
    hotstore: tuple[Invoke, FakeDynamoDB, FakeSQS], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two invocations in one execution environment, the second with the poison sample
    invoke, _, _ = hotstore
    invoke(sample("kinesis_hotstore_batch.json"))
    first = the_blob(capsys.readouterr().out, "hotstore")

    # WHEN the second runs
    invoke(sample("kinesis_hotstore_poison.json"))

    # THEN its blob carries its batch alone: nothing of the first is added or repeated
    second = the_blob(capsys.readouterr().out, "hotstore")
    assert (first["RecordsReceived"], second["RecordsReceived"]) == (8, 6)
    assert (first["PoisonRecords"], second["PoisonRecords"]) == (0, 3)


def test_with_metrics_disabled_nothing_reaches_stdout_however_many_invocations(
    hotstore: tuple[Invoke, FakeDynamoDB, FakeSQS],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN POWERTOOLS_METRICS_DISABLED, as the embedded stack runs the handlers
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    invoke, _, _ = hotstore

    # WHEN more invocations run than Powertools holds values of one metric (100) before it
    # prints them on its own
    for _ in range(120):
        invoke(sample("kinesis_hotstore_poison.json"))

    # THEN stdout stays empty
    assert capsys.readouterr().out == ""


# --- enrich --------------------------------------------------------------------------------------


@pytest.fixture
def enrich(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Invoke, StubSageMaker]]:
    stub = StubSageMaker()
    monkeypatch.setenv("ENDPOINT_NAME", "tradestream-model")
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0.001")
    monkeypatch.setenv("BACKOFF_MAX_SECONDS", "0.002")
    monkeypatch.setattr(enrich_handler, "sagemaker_client", lambda _settings: stub)
    enrich_handler.reset()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = dict(enrich_handler.handler(event, context()))
        return answer

    yield invoke, stub
    enrich_handler.reset()


def results(answer: dict[str, Any]) -> list[str]:
    return [r["result"] for r in answer["records"]]


def test_enrich_sample_batch_is_one_blob_of_every_metric_reconciling_with_the_answer(
    enrich: tuple[Invoke, StubSageMaker], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN AWS's sample Firehose transformation batch and a healthy endpoint
    invoke, stub = enrich
    event = sample("firehose_enrich_batch.json")

    # WHEN the entry point handles it
    answer = invoke(event)

    # THEN one EMF blob declares every enrich metric with its unit, and reconciles
    out = capsys.readouterr().out
    values = the_blob(out, "enrich")
    assert units(out) == declared(enrich_metrics.METRICS)
    assert values["RecordsReceived"] == len(event["records"]) == 3
    assert values["RecordsOk"] == results(answer).count("Ok") == 3
    assert values["RecordsDropped"] == values["ProcessingFailed"] == 0
    assert values["Predicted"] == 3
    assert values["InferenceFailures"] == values["InvalidRecords"] == 0
    assert values["UnanswerableRecords"] == 0
    assert values["EndpointCalls"] == len(stub.calls) == 1
    assert values["EndpointErrors"] == 0
    assert values["EndpointLatency"] >= 0


def test_enrich_minimal_sample_counts_what_failed_processing(
    enrich: tuple[Invoke, StubSageMaker], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the minimal sample: one trade, one invalid trade, one record that is not JSON
    invoke, _ = enrich
    event = sample("firehose_enrich_minimal.json")

    # WHEN handled
    answer = invoke(event)

    # THEN the two invalid records are ProcessingFailed, as the answer says
    values = the_blob(capsys.readouterr().out, "enrich")
    assert values["ProcessingFailed"] == results(answer).count("ProcessingFailed") == 2
    assert values["InvalidRecords"] == 2
    assert values["RecordsOk"] == values["Predicted"] == 1
    assert values["RecordsReceived"] == sum(
        values[name] for name in ("RecordsOk", "RecordsDropped", "ProcessingFailed")
    )


def test_enrich_a_throttled_attempt_is_an_endpoint_error_and_a_second_call(
    enrich: tuple[Invoke, StubSageMaker], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an endpoint throttling once, then answering
    invoke, stub = enrich
    stub.script.append(client_error("ThrottlingException", 400))

    # WHEN the sample batch is handled
    invoke(sample("firehose_enrich_batch.json"))

    # THEN two calls, one of them an error, and every trade predicted
    values = the_blob(capsys.readouterr().out, "enrich")
    assert values["EndpointCalls"] == len(stub.calls) == 2
    assert values["EndpointErrors"] == 1
    assert values["Predicted"] == 3


def test_enrich_an_endpoint_down_delivers_null_predictions_counted_as_inference_failures(
    enrich: tuple[Invoke, StubSageMaker], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an endpoint refusing every call for good (not retryable)
    invoke, stub = enrich
    stub.script.append(client_error("ValidationError", 400))

    # WHEN the sample batch is handled
    answer = invoke(sample("firehose_enrich_batch.json"))

    # THEN the records are Ok with null predictions (deliver_null), each an inference failure
    values = the_blob(capsys.readouterr().out, "enrich")
    assert values["RecordsOk"] == results(answer).count("Ok") == 3
    assert values["Predicted"] == 0
    assert values["InferenceFailures"] == 3
    assert values["EndpointCalls"] == values["EndpointErrors"] == 1


def test_enrich_endpoint_latency_is_the_mean_time_of_a_call() -> None:
    # GIVEN an endpoint taking 40 ms per call on the function's clock, one throttled call first
    clock = Clock()

    def slow(trades: list[dict[str, Any]]) -> dict[str, Any]:
        return {"predictions": [0.0] * len(trades), "model_version": "stub-1"}

    stub = StubSageMaker(client_error("ThrottlingException", 400), slow)
    original = stub.invoke_endpoint

    def timed(**kwargs: Any) -> dict[str, Any]:
        clock.now += 0.040
        return original(**kwargs)

    stub.invoke_endpoint = timed  # type: ignore[method-assign]
    time = retry.Clock(sleep=clock.sleep, monotonic=clock.monotonic, rand=lambda: 1.0)
    enricher = Enricher(EnrichSettings(endpoint_name="m"), sagemaker=stub, clock=time)
    figures = Figures()

    # WHEN a batch is enriched with a figures sink
    enricher.process(event_of([t.to_record() for t in make_trades(5)]), None, figures)

    # THEN the latency is 40 ms, the backoff sleep between the calls not counted
    values = figures.by_name()
    assert clock.sleeps
    assert values["EndpointCalls"] == 2
    assert values["EndpointLatency"] == pytest.approx(40.0)


def test_an_invocation_that_raises_publishes_nothing(
    enrich: tuple[Invoke, StubSageMaker], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an event that is no Firehose event WHEN handled THEN it raises and prints nothing
    invoke, _ = enrich
    with pytest.raises(ValueError, match="records"):
        invoke({"Records": []})
    assert capsys.readouterr().out == ""


# --- what both share ------------------------------------------------------------------------------


def test_the_namespace_is_the_codes_whatever_the_environment_says(
    hotstore: tuple[Invoke, FakeDynamoDB, FakeSQS],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN Powertools variables naming another namespace and service
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "elsewhere")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "someone")
    invoke, _, _ = hotstore

    # WHEN an invocation publishes THEN the dashboard's namespace and service are kept
    invoke(sample("kinesis_hotstore_batch.json"))
    the_blob(capsys.readouterr().out, "hotstore")


def test_a_metric_that_cannot_be_published_is_logged_not_raised(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a figure CloudWatch would refuse (an empty name)
    figures = Figures()
    figures.set(Metric(""), 1)

    # WHEN published THEN nothing is printed or raised, and the failure is logged
    publish(figures, service="hotstore", context=None)
    assert capsys.readouterr().out == ""
    assert "could not be published" in caplog.text


def test_figures_refuse_values_cloudwatch_cannot_take() -> None:
    with pytest.raises(ValueError, match="finite"):
        Figures().set(Metric("X"), float("nan"))


@pytest.mark.parametrize(
    ("template", "service"),
    [("hotstore.yaml", hotstore_metrics.SERVICE), ("lake.yaml", enrich_metrics.SERVICE)],
)
def test_the_templates_name_the_namespace_and_service_the_code_publishes(
    template: str, service: str
) -> None:
    # GIVEN a template's function WHEN its environment is read THEN Powertools' variables agree
    # with the code, so every Powertools utility on AWS names the same namespace and service
    resources = load_template(TEMPLATE_DIR / template)["Resources"]
    (function,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert variables["POWERTOOLS_SERVICE_NAME"] == service
