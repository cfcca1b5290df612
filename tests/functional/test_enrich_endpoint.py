"""The enrich function's entry point against a SageMaker runtime endpoint over real HTTP.

The handler is loaded the way Lambda loads it (``lambdas.enrich.handler.handler``, settings and
an unmodified boto3 ``sagemaker-runtime`` client from the environment) and pointed at the fake
endpoint with ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``; faults are injected there.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.enrich import handler as enrich
from tests.support.fake_sagemaker import MODEL_VERSION, FakeSageMaker, prediction_for
from tradestream.local.lambda_runtime import LambdaContext
from tradestream.trade import RawTrade, Trade, stamp

EVENTS = Path(__file__).resolve().parents[1] / "events"
SIX_MB = 6 * 1024 * 1024


@pytest.fixture
def sagemaker(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSageMaker]:
    with FakeSageMaker() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fake.url)
        monkeypatch.setenv("ENDPOINT_NAME", "tradestream-model")
        monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0.01")
        monkeypatch.setenv("BACKOFF_MAX_SECONDS", "0.05")
        enrich.reset()
        yield fake
    enrich.reset()


def context() -> LambdaContext:
    return LambdaContext(
        function_name="tradestream-enrich",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:tradestream-enrich",
        timeout_s=120,
    )


def invoke(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the handler as Lambda would; check every recordId is answered once, in order."""
    response = json.loads(json.dumps(enrich.handler(event, context())))
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    return list(response["records"])


def line(answer: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(answer["data"])))


def event_of(trades: list[Trade]) -> dict[str, Any]:
    return {
        "invocationId": "inv",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/lake",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"{i:056d}000000000000",
                "approximateArrivalTimestamp": 1_718_900_000_163,
                "data": base64.b64encode(t.to_record()).decode(),
            }
            for i, t in enumerate(trades)
        ],
    }


def some_trades(count: int) -> list[Trade]:
    raws = [
        RawTrade(s="AAPL", p=100 + i / 100, v=i + 1, t=1_718_900_000_000 + i) for i in range(count)
    ]
    return stamp(raws, received_ms=1_718_900_001_000)


def test_the_sample_event_is_enriched_through_boto3_with_one_call(
    sagemaker: FakeSageMaker,
) -> None:
    # GIVEN AWS's sample batch WHEN the handler runs against the endpoint
    event = json.loads((EVENTS / "firehose_enrich_batch.json").read_text())
    results = invoke(event)

    # THEN one InvokeEndpoint, on the runtime path, with a JSON array of the three trades
    (call,) = sagemaker.invocations
    assert (call.endpoint, call.outcome, call.trades) == ("tradestream-model", "ok", 3)
    assert (call.content_type, call.accept) == ("application/json", "application/json")
    # AND every trade is Ok with the model's prediction and version
    for result, record in zip(results, event["records"], strict=True):
        trade = json.loads(base64.b64decode(record["data"]))
        assert result["result"] == "Ok"
        assert line(result)["prediction"] == prediction_for(trade)
        assert line(result)["model_version"] == MODEL_VERSION


@pytest.mark.parametrize("status", [400, 429])
def test_throttling_followed_by_success_still_yields_predictions(
    sagemaker: FakeSageMaker, status: int
) -> None:
    # GIVEN an endpoint that throttles twice, then answers
    sagemaker.throttle_next(2, status=status)
    trades = some_trades(3)

    # WHEN the handler runs
    results = invoke(event_of(trades))

    # THEN the third call succeeded and every trade has its own prediction
    assert sagemaker.outcomes() == ["ThrottlingException", "ThrottlingException", "ok"]
    for result, trade in zip(results, trades, strict=True):
        assert line(result)["prediction"] == prediction_for(json.loads(trade.to_record()))


def test_server_errors_are_retried(sagemaker: FakeSageMaker) -> None:
    # GIVEN a 503 then a 500 then an answer WHEN the handler runs THEN predictions arrive
    sagemaker.fail_next(1, status=503, code="ServiceUnavailable")
    sagemaker.fail_next(1, status=500, code="InternalFailure")
    results = invoke(event_of(some_trades(2)))
    assert sagemaker.outcomes() == ["ServiceUnavailable", "InternalFailure", "ok"]
    assert all(line(r)["prediction"] is not None for r in results)


@pytest.mark.parametrize("how", ["drops-connections", "not-listening"])
def test_with_the_endpoint_down_trades_get_null_prediction_and_the_reason(
    sagemaker: FakeSageMaker, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # GIVEN an endpoint that accepts and drops every connection, or nothing listening at all
    expected = "ConnectionClosedError after 4 attempt(s)"
    if how == "drops-connections":
        sagemaker.down = True
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:9")
        expected = "EndpointConnectionError after 4 attempt(s)"

    # WHEN the handler runs
    results = invoke(event_of(some_trades(2)))

    # THEN both trades are delivered Ok, with prediction null and why, after the 4-attempt budget
    for result in results:
        assert result["result"] == "Ok"
        assert line(result)["prediction"] is None
        assert line(result)["prediction_error"] == expected
    if how == "drops-connections":
        assert sagemaker.outcomes() == ["dropped"] * 4


def test_a_slow_endpoint_times_out_below_the_function_and_is_reported(
    sagemaker: FakeSageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a 0.3 s read timeout, 2 attempts, and an endpoint answering after 1 s
    monkeypatch.setenv("READ_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("MAX_INVOKE_ATTEMPTS", "2")
    sagemaker.delay_s = 1.0

    # WHEN the handler runs THEN the trade is delivered with the timeout as the reason
    (result,) = invoke(event_of(some_trades(1)))
    assert line(result)["prediction"] is None
    assert line(result)["prediction_error"] == "ReadTimeoutError after 2 attempt(s)"


def test_a_batch_near_the_6_mb_limit_is_split_into_several_invocations(
    sagemaker: FakeSageMaker,
) -> None:
    # GIVEN identical trades (each serialises to the same length L, ids differ by occurrence)
    raw = RawTrade(s="AAPL", p=187.25, v=100, t=1_718_900_000_123, c=("1", "12"))
    size = len(stamp([raw], received_ms=1_718_900_000_200)[0].to_record())
    # ... as many as make a Firehose request just under 6 MB
    per_record = len(
        json.dumps(event_of(stamp([raw], received_ms=1_718_900_000_200))["records"][0])
    )
    count = (SIX_MB - 1024) // (per_record + 2)
    trades = stamp([raw] * count, received_ms=1_718_900_000_200)
    event = event_of(trades)
    assert all(len(t.to_record()) == size for t in trades)
    assert 5_500_000 < len(json.dumps(event)) < SIX_MB

    # WHEN the handler runs with the default 1 MiB chunks
    results = invoke(event)

    # THEN the trades went in ceil(count / per_chunk) calls, each body at most 1 MiB
    per_chunk = (1024 * 1024 - 1) // (size + 1)  # "[" + n items + (n-1) commas + "]"
    assert sagemaker.calls == math.ceil(count / per_chunk)
    assert sagemaker.calls > 1
    assert all(i.body_bytes <= 1024 * 1024 and i.outcome == "ok" for i in sagemaker.invocations)
    assert sum(i.trades for i in sagemaker.invocations) == count
    # AND every record is Ok with its trade's prediction
    assert {r["result"] for r in results} == {"Ok"}
    assert [line(r)["id"] for r in results] == [t.id for t in trades]
