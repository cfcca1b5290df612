"""The dashboard's feed and its event stream against moto over real HTTP: its counts are the
read-back module's, its charts and latest trades come from the table, and the collector reads the
pipeline only while a page is subscribed."""

from __future__ import annotations

import gzip
import json
import math
import time
from typing import Any

import httpx
import pytest

from dashboard import DashboardSettings, Feed, Probes, start_in_thread
from dashboard.feed import Budget
from lambdas.hotstore import handler as hotstore_handler
from tests.support.hotstore import Resources, context, distinct_trades, trades_event
from tradestream import aws, readback


@pytest.fixture
def lake(resources: Resources, unique: str) -> str:
    bucket = f"lake-{unique}"
    aws.client("s3").create_bucket(Bucket=bucket)
    return bucket


def put_lake(bucket: str, key: str, lines: list[dict[str, Any]], *, gzipped: bool) -> None:
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    aws.client("s3").put_object(
        Bucket=bucket, Key=key, Body=gzip.compress(body) if gzipped else body
    )


def settings_for(resources: Resources, bucket: str, **overrides: Any) -> DashboardSettings:
    return DashboardSettings(
        table_name=resources.table,
        dlq_url=resources.queue_url,
        bucket_name=bucket,
        **overrides,
    )


def test_a_collection_counts_what_the_readback_module_counts(
    resources: Resources, lake: str
) -> None:
    # GIVEN 400 trades written by the hotstore handler, 300 of them in the lake (100 predicted,
    # one object redelivered), one error envelope and one DLQ message
    trades = distinct_trades(400)
    hotstore_handler.handler(trades_event(trades), context())
    enriched = [
        {**t.model_dump(), "prediction": 0.001 if i < 100 else None}
        for i, t in enumerate(trades[:300])
    ]
    put_lake(lake, "trades/year=2024/a.json.gz", enriched[:200], gzipped=True)
    put_lake(lake, "trades/year=2024/b.json", enriched[200:], gzipped=False)
    put_lake(lake, "trades/year=2024/b-again.json", enriched[250:], gzipped=False)
    put_lake(lake, "errors/x.json", [{"errorCode": "Lambda.FunctionError"}], gzipped=False)
    resources.sqs.send_message(QueueUrl=resources.queue_url, MessageBody="{}")
    counters = {"producer": 420.0, "producer_published": 425.0, "ingest": 5.0}
    feed = Feed(settings_for(resources, lake), Probes(counters=lambda: dict(counters)))

    # WHEN the feed collects once
    snapshot = feed.collect()

    # THEN every sink count is the read-back module's own
    lake_counts = readback.count_lake(lake)
    stages = snapshot["stages"]
    assert stages["hotstore"] == readback.count_items(resources.table) == 400
    assert stages["lake"] == lake_counts.distinct_ids == 300
    assert stages["predicted"] == lake_counts.predicted == 100
    assert stages["lake_errors"] == lake_counts.errors == 1
    assert stages["dlq"] == 1
    # AND the stream holds what Kinesis acknowledged to both ways in
    assert stages["producer"] == 420
    assert stages["stream"] == 425 + 5
    # AND each symbol has a chart of its newest trades, aligned for uPlot
    assert set(snapshot["charts"]) == {t.s for t in trades}
    for chart in snapshot["charts"].values():
        assert len(chart["x"]) == len(chart["price"]) == len(chart["predicted"])
        assert chart["x"] == sorted(chart["x"])
    # AND predictions sit one horizon after their trades at p * exp(prediction)
    aapl = snapshot["charts"]["AAPL"]
    first_predicted = next(
        (x, v) for x, v in zip(aapl["x"], aapl["predicted"], strict=True) if v is not None
    )
    # (trades of one millisecond share a point: one of them is drawn)
    candidates = [
        t.p * math.exp(0.001)
        for t in trades[:100]
        if t.s == "AAPL" and (t.t + 250) / 1000 == first_predicted[0]
    ]
    assert any(first_predicted[1] == pytest.approx(c) for c in candidates)
    # AND the latest trades are the newest in the table, newest first
    arrivals = [t["ingested_at"] for t in snapshot["latest"]]
    assert arrivals == sorted(arrivals, reverse=True)
    assert len(snapshot["latest"]) == 12
    # AND the JSON goes to a browser as is
    json.dumps(snapshot, allow_nan=False)


def test_a_second_collection_reads_only_new_lake_objects_and_rates_follow(
    resources: Resources, lake: str
) -> None:
    trades = distinct_trades(100)
    lines = [{**t.model_dump(), "prediction": 0.0} for t in trades]
    put_lake(lake, "trades/one.json", lines[:50], gzipped=False)
    feed = Feed(settings_for(resources, lake, dashboard_interval_s=0.1))
    assert feed.collect()["stages"]["lake"] == 50
    # WHEN a new object lands and the feed goes on collecting (its lake reads are budgeted)
    put_lake(lake, "trades/two.json", lines[50:], gzipped=False)
    deadline = time.monotonic() + 20
    snapshot = feed.collect()
    while snapshot["stages"]["lake"] < 100:
        assert time.monotonic() < deadline, snapshot["stages"]
        time.sleep(0.1)
        snapshot = feed.collect()
    # THEN the count includes it exactly, and the lake's rate is positive
    assert snapshot["stages"]["lake"] == 100
    assert snapshot["rates"]["lake"] > 0


def test_a_costly_read_waits_in_proportion_to_what_it_cost() -> None:
    # GIVEN a budget of 5 % of the time
    budget = Budget(0.05)
    assert budget.due(100.0)
    # WHEN a read took 0.5 s
    budget.spent(100.0, 100.5, interval=1.0)
    # THEN the next may start 10 s after the first began, not before
    assert not budget.due(109.9)
    assert budget.due(110.0)
    # AND a cheap read is limited by the interval only
    budget.spent(110.0, 110.001, interval=1.0)
    assert budget.due(111.0)
    assert not budget.due(110.9)


def test_the_event_stream_pushes_snapshots_and_the_collector_stops_without_pages(
    resources: Resources, lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dashboard.feed.IDLE_STOP_S", 0.3)
    hotstore_handler.handler(trades_event(distinct_trades(40)), context())
    settings = settings_for(resources, lake, dashboard_interval_s=0.2)
    server = start_in_thread(settings, port=0)
    try:
        assert server.feed is not None
        # GIVEN no page: nothing is collected
        time.sleep(0.5)
        assert server.feed.ticks == 0
        # WHEN a client listens to /api/events
        events: list[tuple[str, dict[str, Any]]] = []
        with httpx.stream("GET", f"{server.url}/api/events", timeout=10) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            for raw in response.iter_lines():
                if raw:  # an event is its field lines up to a blank one
                    name, _, value = raw.partition(":")
                    fields[name] = value.strip()
                    continue
                if "data" in fields:
                    events.append((fields["id"], json.loads(fields["data"])))
                    assert fields["event"] == "snapshot"
                fields = {}
                if len(events) == 3:
                    break
        # THEN snapshots arrive one after another with rising ids, counting the table
        ids = [int(i) for i, _ in events]
        assert ids == sorted(ids)
        assert len(set(ids)) == 3
        assert all(data["stages"]["hotstore"] == 40 for _, data in events)
        # AND once the client has gone the collector stops
        deadline = time.monotonic() + 10
        while server.feed.subscribers or server.feed._thread is not None:
            assert time.monotonic() < deadline, "the collector kept running without a page"
            time.sleep(0.1)
        ticks = server.feed.ticks
        time.sleep(0.6)
        assert server.feed.ticks == ticks
        # AND /api/snapshot still answers, collecting on demand
        assert httpx.get(f"{server.url}/api/snapshot").json()["stages"]["hotstore"] == 40
        assert server.feed.ticks == ticks + 1
    finally:
        server.stop()
