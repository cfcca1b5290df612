"""Both consumers' entry points, as Lambda calls them, on records in the plain Finnhub trade shape
that other producers put (no ``id``, no ``rt``, sometimes extra fields): the hotstore writes them
to DynamoDB (moto server over real HTTP) and enrich predicts them (a SageMaker runtime endpoint
over real HTTP), with the edge's ids and the records' arrival times; redelivery adds nothing."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lambdas.enrich import handler as enrich
from lambdas.hotstore import handler as hotstore_handler
from tests.support.fake_sagemaker import MODEL_VERSION, FakeSageMaker, prediction_for
from tests.support.hotstore import Resources, context, dlq_bodies, items, sample, trades_event
from tradestream.local.lambda_runtime import LambdaContext
from tradestream.trade import parse_raw, stamp

EVENTS = Path(__file__).resolve().parents[1] / "events"
HOTSTORE_SAMPLE = "kinesis_hotstore_plain_finnhub.json"
ENRICH_SAMPLE = "firehose_enrich_plain_finnhub.json"
# The sample's trades: the edge's ids of its plain records (stamp([raw]), occurrence 0), and the
# ids the edge-style records carry or get. Record 5 puts record 0 again.
AAPL = "c12363aeb7b51ff5550fb59a31130bbb"
AAPL_EXTRA = "b501023e0911b11761db9b17cddcf763"
BTC = "172791a42de3417c5277f56ee34c582a"
MSFT = "a0281f014776492c1a3533e2995ba505"  # has id, no rt
AMZN = "0a8a5bd196d4af061ee5e95ffe021355"  # has rt, no id


def record_datas(event: dict[str, Any]) -> list[dict[str, Any]]:
    records = event.get("Records") or event["records"]
    return [
        json.loads(base64.b64decode(r["kinesis"]["data"] if "kinesis" in r else r["data"]))
        for r in records
    ]


# --- the hotstore -----------------------------------------------------------------------------


def test_plain_records_are_written_with_the_edges_ids_and_their_arrival_times(
    resources: Resources,
) -> None:
    # GIVEN the plain sample: 6 records, 5 distinct trades (the last puts the first again)
    event = sample(HOTSTORE_SAMPLE)

    # WHEN the Lambda entry point handles it
    response = hotstore_handler.handler(event, context())

    # THEN nothing is reported or dead-lettered and exactly the 5 trades are items
    assert response == {"batchItemFailures": []}
    assert dlq_bodies(resources) == []
    stored = items(resources)
    assert {item["id"] for item in stored.values()} == {AAPL, AAPL_EXTRA, BTC, MSFT, AMZN}
    assert len(stored) == 5
    # AND the first trade is stored as the edge would have had it, rt being the arrival of the
    # later put (last wins, as for any replay), the extra field left out
    item = stored["AAPL", f"1733300000000#{AAPL}"]
    item.pop("ingested_at")
    assert item == {
        "s": "AAPL",
        "sk": f"1733300000000#{AAPL}",
        "p": Decimal("187.5"),
        "v": Decimal("100.0"),
        "t": Decimal(1733300000000),
        "c": ["1"],
        "id": AAPL,
        "rt": Decimal(1733300000430),
        "expires_at": Decimal(1733300000 + 30 * 86400),
    }
    by_id = {item["id"]: item for item in stored.values()}
    assert by_id[AAPL_EXTRA]["rt"] == 1733300000413  # its arrival; its own ingested_at ignored
    assert by_id[BTC]["rt"] == 1733300000415
    assert "c" not in by_id[BTC]
    # AND a record with only one of id and rt keeps it and gets the other
    assert by_id[MSFT]["rt"] == 1733300000416
    assert by_id[AMZN]["rt"] == 1733300000401


def test_delivering_the_plain_records_again_creates_no_new_items(resources: Resources) -> None:
    # GIVEN the plain sample handled once
    event = sample(HOTSTORE_SAMPLE)
    hotstore_handler.handler(event, context())
    first = items(resources)

    # WHEN the same records are delivered again (a retry, a bisected batch, a replay)
    response = hotstore_handler.handler(copy.deepcopy(event), context())

    # THEN the items are the same ones, equal but for the write time they record
    second = items(resources)
    assert response == {"batchItemFailures": []}
    assert set(first) == set(second)
    assert len(second) == 5
    for key, item in first.items():
        again = dict(second[key])
        assert again.pop("ingested_at") >= item["ingested_at"]
        assert again == {k: v for k, v in item.items() if k != "ingested_at"}


def test_a_plain_record_and_the_edges_record_of_the_same_trade_are_one_item(
    resources: Resources,
) -> None:
    # GIVEN the same Finnhub trade from the edge (stamped there) and plain from another producer
    (plain_raw,) = record_datas(sample(HOTSTORE_SAMPLE))[:1]
    (edge_trade,) = stamp([parse_raw(plain_raw)], received_ms=1733300000401)
    event = trades_event([edge_trade])
    plain_record = copy.deepcopy(sample(HOTSTORE_SAMPLE)["Records"][0])
    event["Records"].append(plain_record)

    # WHEN both are handled in one batch
    response = hotstore_handler.handler(event, context())

    # THEN neither is poison, and they are one item, under the edge's id
    assert response == {"batchItemFailures": []}
    assert dlq_bodies(resources) == []
    (item,) = items(resources).values()
    assert item["id"] == edge_trade.id == AAPL
    assert item["rt"] == 1733300000412  # the later record's: the plain one, at its arrival


def test_plain_records_among_poison_leave_the_poison_in_the_dlq(resources: Resources) -> None:
    # GIVEN the poison sample's records followed by the plain sample's
    event = sample("kinesis_hotstore_poison.json")
    event["Records"] += sample(HOTSTORE_SAMPLE)["Records"]

    # WHEN handled
    response = hotstore_handler.handler(event, context())

    # THEN the 3 + 5 trades are written and exactly the 3 poison records are dead-lettered
    assert response == {"batchItemFailures": []}
    assert len(items(resources)) == 8
    reasons = sorted(body["reason"] for body in dlq_bodies(resources))
    assert reasons == ["InvalidJson", "InvalidTrade", "InvalidTrade"]


# --- enrich -----------------------------------------------------------------------------------


@pytest.fixture
def sagemaker(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSageMaker]:
    with FakeSageMaker() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fake.url)
        monkeypatch.setenv("ENDPOINT_NAME", "tradestream-model")
        enrich.reset()
        yield fake
    enrich.reset()


def enrich_context() -> LambdaContext:
    return LambdaContext(
        function_name="tradestream-enrich",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:tradestream-enrich",
        timeout_s=120,
    )


def invoke(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the handler as Lambda would; check every recordId is answered once, in order."""
    response = json.loads(json.dumps(enrich.handler(event, enrich_context())))
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    return list(response["records"])


def line(answer: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(answer["data"])))


def enrich_sample() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / ENRICH_SAMPLE).read_text())
    return event


def test_plain_records_are_predicted_with_the_edges_ids_and_their_arrival_times(
    sagemaker: FakeSageMaker,
) -> None:
    # GIVEN the plain sample as Firehose sends it WHEN the handler runs against the endpoint
    event = enrich_sample()
    results = invoke(event)

    # THEN one InvokeEndpoint for the 5 distinct trades; the re-put record is Dropped
    (call,) = sagemaker.invocations
    assert (call.outcome, call.trades) == ("ok", 5)
    assert [r["result"] for r in results] == ["Ok"] * 5 + ["Dropped"]
    # AND each lake line is the edge's record of the trade, predicted, arrival time as rt
    lines = [line(r) for r in results[:5]]
    assert [x["id"] for x in lines] == [AAPL, AAPL_EXTRA, BTC, MSFT, AMZN]
    arrivals = [r["approximateArrivalTimestamp"] for r in event["records"]]
    assert [x["rt"] for x in lines] == [*arrivals[:4], 1733300000401]
    for x in lines:
        assert x["prediction"] == prediction_for(x)
        assert x["model_version"] == MODEL_VERSION
    # AND the plain ones' lines are exactly what the edge would have written, extras left out
    for x, data, arrival in zip(lines[:3], record_datas(event)[:3], arrivals, strict=False):
        (edge_trade,) = stamp([parse_raw(data)], received_ms=arrival)
        trade_fields = {k: v for k, v in x.items() if k not in ("prediction", "model_version")}
        assert trade_fields == json.loads(edge_trade.to_record())
    # AND the partition keys are the trades' own
    assert results[2]["metadata"]["partitionKeys"] == {
        "symbol": "BINANCE%3ABTCUSDT",
        "date": "2024-12-04",
    }


def test_delivering_the_plain_records_again_gives_identical_lake_lines(
    sagemaker: FakeSageMaker,
) -> None:
    # GIVEN the plain sample enriched once
    first = invoke(enrich_sample())

    # WHEN Firehose delivers the same records again (a retried invocation)
    second = invoke(enrich_sample())

    # THEN every answer is the same: same results, same bytes, same partition keys
    assert second == first
    assert all(r["result"] != "ProcessingFailed" for r in second)


def test_the_hot_store_and_the_lake_agree_on_every_trade(
    resources: Resources, sagemaker: FakeSageMaker
) -> None:
    # GIVEN the same six records through both consumers
    hotstore_handler.handler(sample(HOTSTORE_SAMPLE), context())
    results = invoke(enrich_sample())

    # THEN each trade has the same id and rt in DynamoDB and in its lake line (but for the
    # re-put: the hot store keeps the later put's rt, the lake the first, Dropping the second)
    stored = {item["id"]: item for item in items(resources).values()}
    lake = {line(r)["id"]: line(r) for r in results if r["result"] == "Ok"}
    assert set(stored) == set(lake) == {AAPL, AAPL_EXTRA, BTC, MSFT, AMZN}
    assert {i: int(stored[i]["rt"]) for i in stored if i != AAPL} == {
        i: lake[i]["rt"] for i in lake if i != AAPL
    }
