"""The enrich function's batch logic over a stub SageMaker client (no network).

Every test checks that every input recordId is answered exactly once, in order.
"""

from __future__ import annotations

import base64
import io
import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from lambdas.enrich.firehose import InvalidEventError
from lambdas.enrich.handler import Enricher
from lambdas.enrich.settings import EnrichSettings
from tests.support.fake_sagemaker import prediction_for
from tradestream import retry
from tradestream.trade import RawTrade, Trade, stamp

EVENTS = Path(__file__).resolve().parents[1] / "events"
Action = Exception | Callable[[list[dict[str, Any]]], dict[str, Any]] | None


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} (stub)"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "InvokeEndpoint",
    )


class StubSageMaker:
    """Answers InvokeEndpoint from a script: an exception to raise, a function, or the model."""

    def __init__(self, *script: Action) -> None:
        self.script: deque[Action] = deque(script)
        self.calls: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        trades = json.loads(kwargs["Body"])
        action = self.script.popleft() if self.script else None
        if isinstance(action, Exception):
            raise action
        answer = (
            action(trades)
            if action
            else {"predictions": [prediction_for(t) for t in trades], "model_version": "stub-1"}
        )
        return {"Body": io.BytesIO(json.dumps(answer).encode())}

    def trades_sent(self) -> list[list[dict[str, Any]]]:
        return [json.loads(call["Body"]) for call in self.calls]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def enricher(stub: StubSageMaker, clock: Clock | None = None, **overrides: Any) -> Enricher:
    settings = EnrichSettings(endpoint_name="tradestream-model", **overrides)
    clock = clock or Clock()
    time = retry.Clock(sleep=clock.sleep, monotonic=clock.monotonic, rand=lambda: 1.0)
    return Enricher(settings, sagemaker=stub, clock=time)


def make_trades(count: int, symbol: str = "AAPL") -> list[Trade]:
    raws = [
        RawTrade(s=symbol, p=100 + i / 100, v=i + 1, t=1_718_900_000_000 + i) for i in range(count)
    ]
    return stamp(raws, received_ms=1_718_900_001_000)


def event_of(payloads: list[bytes]) -> dict[str, Any]:
    return {
        "invocationId": "inv-1",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/lake",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"r{i}",
                "approximateArrivalTimestamp": 1_718_900_001_000 + i,
                "data": base64.b64encode(p).decode(),
            }
            for i, p in enumerate(payloads)
        ],
    }


def answers(event: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """The response's records, after checking every input recordId is answered once, in order."""
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    return list(response["records"])


def line(answer: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(answer["data"])
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    return dict(json.loads(data))


# --- the happy path ------------------------------------------------------------------------------


def test_the_sample_batch_is_enriched_with_one_endpoint_call() -> None:
    # GIVEN AWS's sample batch of three trades and a healthy endpoint
    event = json.loads((EVENTS / "firehose_enrich_batch.json").read_text())
    stub = StubSageMaker()

    # WHEN the batch is processed
    response = enricher(stub).process(event)

    # THEN one InvokeEndpoint carried the three raw trades, as a JSON array
    assert len(stub.calls) == 1
    call = stub.calls[0]
    assert (call["EndpointName"], call["ContentType"], call["Accept"]) == (
        "tradestream-model",
        "application/json",
        "application/json",
    )
    sent = stub.trades_sent()[0]
    originals = [json.loads(base64.b64decode(r["data"])) for r in event["records"]]
    assert sent == originals
    # AND every record is Ok: its trade, its own prediction, the model version
    for answer, original in zip(answers(event, response), originals, strict=True):
        assert answer["result"] == "Ok"
        enriched = line(answer)
        assert {k: enriched[k] for k in original} == original
        assert enriched["prediction"] == prediction_for(original)
        assert enriched["model_version"] == "stub-1"
        assert "prediction_error" not in enriched
    # AND partition keys name the symbol and the trade's UTC date
    keys = [a["metadata"]["partitionKeys"] for a in response["records"]]
    assert keys == [
        {"symbol": "AAPL", "date": "2024-06-20"},
        {"symbol": "AAPL", "date": "2024-06-20"},
        {"symbol": "BINANCE%3ABTCUSDT", "date": "2024-06-20"},
    ]


def test_malformed_records_fail_with_their_original_data_and_the_rest_is_enriched() -> None:
    # GIVEN a minimal event: one trade, one invalid trade, one record that is not JSON
    event = json.loads((EVENTS / "firehose_enrich_minimal.json").read_text())
    stub = StubSageMaker()

    # WHEN processed
    results = answers(event, enricher(stub).process(event))

    # THEN the trade is Ok and the two others are ProcessingFailed with their data unchanged
    assert [r["result"] for r in results] == ["Ok", "ProcessingFailed", "ProcessingFailed"]
    assert [r["data"] for r in results[1:]] == [r["data"] for r in event["records"][1:]]
    assert "metadata" not in results[1]
    assert "metadata" not in results[2]
    # AND only the valid trade went to the endpoint
    assert [len(batch) for batch in stub.trades_sent()] == [1]


def test_a_trade_repeated_in_the_batch_is_dropped_after_the_first() -> None:
    # GIVEN the same trade (same id) three times among two others
    a, b, c = make_trades(3)
    event = event_of([a.to_record(), b.to_record(), a.to_record(), c.to_record(), a.to_record()])
    stub = StubSageMaker()

    # WHEN processed
    results = answers(event, enricher(stub).process(event))

    # THEN the repeats are Dropped and the endpoint saw each trade once
    assert [r["result"] for r in results] == ["Ok", "Ok", "Dropped", "Ok", "Dropped"]
    assert [t["id"] for t in stub.trades_sent()[0]] == [a.id, b.id, c.id]


def test_duplicates_are_kept_when_dropping_is_off() -> None:
    # GIVEN the same trade twice and DROP_DUPLICATES off WHEN processed THEN both are Ok
    (a,) = make_trades(1)
    event = event_of([a.to_record(), a.to_record()])
    results = answers(event, enricher(StubSageMaker(), drop_duplicates=False).process(event))
    assert [r["result"] for r in results] == ["Ok", "Ok"]


def test_a_large_batch_is_split_into_chunks_with_predictions_kept_in_place() -> None:
    # GIVEN 300 trades and chunks of at most 4 KiB (about 30 trades)
    trades = make_trades(300)
    event = event_of([t.to_record() for t in trades])
    stub = StubSageMaker()

    # WHEN processed
    results = answers(event, enricher(stub, max_chunk_bytes=4096).process(event))

    # THEN each call stayed under the limit, together they carried each trade once, in order
    bodies = [call["Body"] for call in stub.calls]
    assert len(bodies) > 1
    assert all(len(body) <= 4096 for body in bodies)
    assert [t["id"] for batch in stub.trades_sent() for t in batch] == [t.id for t in trades]
    expected_calls = -(-sum(len(t.to_record()) + 1 for t in trades) // 4096)
    assert len(bodies) in (expected_calls, expected_calls + 1)
    # AND every trade got its own prediction
    for result, trade in zip(results, trades, strict=True):
        assert line(result)["prediction"] == prediction_for(json.loads(trade.to_record()))


# --- retries and failures ------------------------------------------------------------------------


def test_throttling_then_success_still_yields_predictions_after_backoff() -> None:
    # GIVEN an endpoint that throttles twice (400 and 429) then answers
    (trade,) = make_trades(1)
    event = event_of([trade.to_record()])
    stub = StubSageMaker(
        client_error("ThrottlingException", 400), client_error("ThrottlingException", 429)
    )
    clock = Clock()

    # WHEN processed
    results = answers(event, enricher(stub, clock).process(event))

    # THEN the third call succeeded and the trade has its prediction
    assert len(stub.calls) == 3
    assert line(results[0])["prediction"] == prediction_for(json.loads(trade.to_record()))
    # AND the waits grew exponentially (full jitter at its ceiling here): 0.1 s, 0.2 s
    assert clock.sleeps == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (client_error("ServiceUnavailable", 503), "ServiceUnavailable"),
        (client_error("InternalFailure", 500), "InternalFailure"),
        (client_error("ModelNotReadyException", 429), "ModelNotReadyException"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "EndpointConnectionError"),
    ],
    ids=["503", "500", "model-not-ready", "down"],
)
def test_transient_errors_past_the_budget_deliver_null_predictions_with_the_reason(
    error: Exception, code: str
) -> None:
    # GIVEN an endpoint failing every attempt
    trades = make_trades(2)
    event = event_of([t.to_record() for t in trades])
    stub = StubSageMaker(*[error] * 10)

    # WHEN processed with the default budget of 4 attempts
    results = answers(event, enricher(stub).process(event))

    # THEN 4 calls were made and both trades are delivered with a null prediction and the reason
    assert len(stub.calls) == 4
    for result, trade in zip(results, trades, strict=True):
        assert result["result"] == "Ok"
        enriched = line(result)
        assert enriched["id"] == trade.id
        assert enriched["prediction"] is None
        assert enriched["model_version"] is None
        assert enriched["prediction_error"] == f"{code} after 4 attempt(s)"
        assert result["metadata"]["partitionKeys"]["symbol"] == "AAPL"


def test_with_fail_mode_records_whose_inference_failed_are_processing_failed() -> None:
    # GIVEN ON_INFERENCE_FAILURE=fail and an endpoint that is down
    trades = make_trades(2)
    event = event_of([t.to_record() for t in trades])
    stub = StubSageMaker(*[client_error("ServiceUnavailable", 503)] * 10)

    # WHEN processed
    results = answers(event, enricher(stub, on_inference_failure="fail").process(event))

    # THEN both records fail with their original data
    assert [r["result"] for r in results] == ["ProcessingFailed"] * 2
    assert [r["data"] for r in results] == [r["data"] for r in event["records"]]


@pytest.mark.parametrize("code", ["ModelError", "ValidationError"])
def test_errors_that_cannot_pass_are_not_retried(code: str) -> None:
    # GIVEN the model raising (424) or the request refused (400)
    (trade,) = make_trades(1)
    event = event_of([trade.to_record()])
    stub = StubSageMaker(client_error(code, 424 if code == "ModelError" else 400))

    # WHEN processed THEN one call only, and the reason names the error
    results = answers(event, enricher(stub).process(event))
    assert len(stub.calls) == 1
    assert line(results[0])["prediction_error"].startswith(f"{code}: ")


def test_no_attempt_starts_that_could_outlast_the_function() -> None:
    # GIVEN 20 s left in the invocation: less than one attempt (22 s) plus the 3 s reserve
    (trade,) = make_trades(1)
    event = event_of([trade.to_record()])
    stub = StubSageMaker()

    # WHEN processed
    results = answers(event, enricher(stub).process(event, Context(remaining_ms=20_000)))

    # THEN the endpoint is not called and the trade is delivered with the reason
    assert stub.calls == []
    assert line(results[0])["prediction_error"] == "InvocationDeadline after 0 attempt(s)"


def test_retries_stop_when_the_next_one_could_outlast_the_function() -> None:
    # GIVEN 50 s left: room for two 22 s attempts, not three, and a throttling endpoint
    (trade,) = make_trades(1)
    event = event_of([trade.to_record()])
    stub = StubSageMaker(*[client_error("ThrottlingException", 400)] * 10)
    clock = Clock()

    def slow_throttle(**kwargs: Any) -> dict[str, Any]:
        clock.now += 22  # each attempt runs to its read timeout
        return StubSageMaker.invoke_endpoint(stub, **kwargs)

    stub.invoke_endpoint = slow_throttle  # type: ignore[method-assign]

    # WHEN processed
    results = answers(event, enricher(stub, clock).process(event, Context(remaining_ms=50_000)))

    # THEN it gave up after two attempts (a third could not end 3 s before the function does)
    assert len(stub.calls) == 2
    assert line(results[0])["prediction_error"] == "ThrottlingException; no time left to retry"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda trades: {"predictions": [1.0], "model_version": "v"}, "1 predictions for 2"),
        (lambda trades: {"predictions": [1.0, 2.0]}, "model_version"),
        (lambda trades: {"nothing": True}, "predictions"),
    ],
    ids=["wrong-count", "no-version", "no-predictions"],
)
def test_an_invalid_model_answer_is_an_inference_failure_not_a_misaligned_prediction(
    answer: Callable[[list[dict[str, Any]]], dict[str, Any]], reason: str
) -> None:
    # GIVEN a model that answers 2 trades wrongly
    event = event_of([t.to_record() for t in make_trades(2)])

    # WHEN processed THEN both trades carry a null prediction naming the problem
    results = answers(event, enricher(StubSageMaker(answer)).process(event))
    for result in results:
        enriched = line(result)
        assert enriched["prediction"] is None
        assert enriched["prediction_error"].startswith("InvalidModelResponse")
        assert reason in enriched["prediction_error"]


def test_a_trade_too_large_for_any_chunk_fails_alone_and_the_rest_is_predicted() -> None:
    # GIVEN a trade with 200 condition codes (over a 1 KiB chunk) between two normal ones
    small = make_trades(2)
    (huge,) = stamp([RawTrade(s="AAPL", p=1, v=1, t=1_718_900_000_000, c=("12",) * 200)])
    event = event_of([small[0].to_record(), huge.to_record(), small[1].to_record()])
    stub = StubSageMaker()

    # WHEN processed with 1 KiB chunks
    results = answers(event, enricher(stub, max_chunk_bytes=1024).process(event))

    # THEN the two normal trades went to the endpoint and have predictions
    assert [t["id"] for batch in stub.trades_sent() for t in batch] == [t.id for t in small]
    assert line(results[0])["prediction"] is not None
    assert line(results[2])["prediction"] is not None
    # AND the huge one is delivered with a null prediction saying why
    assert line(results[1])["prediction"] is None
    assert line(results[1])["prediction_error"].startswith("PayloadTooLarge: ")


def test_a_batch_without_trades_calls_nothing_and_answers_everything() -> None:
    # GIVEN only malformed records WHEN processed THEN no call, all ProcessingFailed
    event = event_of([b"x", b"{}"])
    stub = StubSageMaker()
    results = answers(event, enricher(stub).process(event))
    assert stub.calls == []
    assert [r["result"] for r in results] == ["ProcessingFailed"] * 2


def test_an_event_that_is_not_a_firehose_event_is_a_function_error() -> None:
    # GIVEN a Kinesis event sent by mistake WHEN processed THEN it raises (Firehose retries)
    with pytest.raises(InvalidEventError):
        enricher(StubSageMaker()).process({"Records": []})
