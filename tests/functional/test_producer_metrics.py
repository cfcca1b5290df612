"""The producer's Prometheus endpoint (METRICS_PORT), scraped over real HTTP while it runs
against moto (behind a fault proxy) or the fake Finnhub server: the counts reconcile with what
landed on the stream and with what the proxy injected."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from producer.app import ProducerError, ProducerStats, run
from producer.settings import ProducerSettings
from producer.sources import Frame, SourceStats, SyntheticSource
from tests.support.authorizing_moto import free_port
from tests.support.deaggregated import by_kpl, trade_ids
from tests.support.fake_finnhub import FakeFinnhub
from tests.support.faults import FaultProxy
from tests.support.kinesis import create_stream, read_stream
from tests.support.progress import Progress
from tests.support.prometheus import samples
from tradestream import kpl
from tradestream.local.moto_server import MotoHandle

REPO = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token"
T0 = 1_700_000_000_000


class LiveSource:
    """The synthetic source's trades, then nothing until the producer is stopped, as a live
    source would: the producer (and its metrics endpoint) stays up to be scraped."""

    def __init__(self, inner: SyntheticSource) -> None:
        self.inner = inner

    @property
    def stats(self) -> SourceStats:
        return self.inner.stats

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        async for frame in self.inner:
            yield frame
        await asyncio.Event().wait()


async def scrape(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url, timeout=5)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def producer_settings(stream: str, trades: int, port: int) -> ProducerSettings:
    # Plain records, one per trade, whatever AGGREGATION's default: the tests count entries (the
    # aggregated test below turns it on).
    return ProducerSettings(
        aggregation=False,
        stream_name=stream,
        source="synthetic",
        max_trades=trades,
        synthetic_seed=3,
        max_put_attempts=30,
        put_backoff_base_seconds=0.01,
        put_backoff_max_seconds=0.05,
        metrics_port=port,
    )


async def produce_and_scrape(
    settings: ProducerSettings,
) -> tuple[dict[str, float], ProducerStats, ProducerStats]:
    """Run the producer until every trade is settled; (the scrape then, the stats then, final)."""
    assert settings.metrics_port
    source = LiveSource(SyntheticSource(settings.symbols, seed=3, max_trades=settings.max_trades))
    progress, stop = Progress(), asyncio.Event()
    producer = asyncio.create_task(
        run(settings, source=source, stop=stop, on_progress=progress.report)
    )
    try:
        await progress.until(
            lambda s: s.distinct == settings.max_trades and s.buffered == 0, within=20
        )
        scraped = await scrape(f"http://127.0.0.1:{settings.metrics_port}/metrics")
        assert progress.latest is not None
        then = progress.latest
    finally:
        stop.set()
        final = await asyncio.wait_for(producer, 20)
    return scraped, then, final


def calls_by_outcome(scraped: dict[str, float]) -> dict[str, float]:
    return {o: scraped[f'producer_put_records_calls_total{{outcome="{o}"}}'] for o in OUTCOMES}


async def test_scraped_counts_reconcile_with_the_stream_and_the_injected_faults(
    aws_env: str, moto: MotoHandle, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a producer with METRICS_PORT publishing 2,000 distinct trades through a proxy that
    # fails ~20% of PutRecords entries
    stream = f"metrics-{unique}"
    kinesis = create_stream(stream)
    settings = producer_settings(stream, 2000, free_port())
    with FaultProxy(moto.url, seed=8) as proxy:
        proxy.kinesis_put_failure_rate = 0.2
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        # WHEN every trade is published and the endpoint is scraped
        scraped, stats, final = await produce_and_scrape(settings)
    records = read_stream(kinesis, stream)
    ids = [json.loads(r["Data"])["id"] for r in records]
    # THEN the counters are what landed on the stream
    assert scraped["producer_trades_produced_total"] == len(set(ids)) == 2000
    assert scraped["producer_source_trades_total"] == stats.trades == len(ids)
    assert scraped["producer_records_published_total"] == len(records) == final.published
    assert scraped["producer_trades_failed_total"] == 0
    assert scraped["producer_buffer_trades"] == 0
    assert scraped["producer_buffer_capacity_trades"] == settings.buffer_max_records
    assert scraped["producer_source_connected"] == 1
    # AND the resends and the calls are exactly what the proxy injected and saw
    assert scraped["producer_entries_retried_total"] == proxy.injected["PutRecords:entries"] > 0
    calls = calls_by_outcome(scraped)
    assert calls["partial"] > 0
    assert calls["error"] == 0
    assert sum(calls.values()) == proxy.counts["PutRecords"] == stats.put_calls
    assert scraped["producer_put_records_duration_seconds_count"] == stats.put_calls
    assert scraped["producer_put_records_duration_seconds_sum"] > 0
    # AND the endpoint is gone once the producer stopped
    with pytest.raises(httpx.ConnectError):
        await scrape(f"http://127.0.0.1:{settings.metrics_port}/metrics")


async def test_calls_failing_as_a_whole_count_as_errors(
    aws_env: str, moto: MotoHandle, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a proxy answering the first 2 PutRecords calls with HTTP 500
    stream = f"metrics-err-{unique}"
    kinesis = create_stream(stream, shards=1)
    settings = producer_settings(stream, 300, free_port())
    with FaultProxy(moto.url) as proxy:
        proxy.fail_next("PutRecords", 2, status=500, code="InternalFailure")
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        # WHEN 300 trades are produced and the endpoint scraped
        scraped, stats, _ = await produce_and_scrape(settings)
    # THEN two calls are errors, the rest ok, and every entry of the failed calls was resent
    calls = calls_by_outcome(scraped)
    assert calls["error"] == proxy.injected["PutRecords:InternalFailure"] == 2
    assert calls["ok"] == stats.put_calls - 2 > 0
    assert scraped["producer_entries_retried_total"] == stats.retried > 0
    assert scraped["producer_records_published_total"] == len(read_stream(kinesis, stream))


async def test_with_aggregation_trades_and_kinesis_records_are_counted_apart(
    aws_env: str, moto: MotoHandle, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an aggregating producer (2 KiB aggregates) behind a proxy failing ~20% of entries
    stream = f"metrics-agg-{unique}"
    kinesis = create_stream(stream)
    settings = producer_settings(stream, 2000, free_port()).model_copy(
        update={"aggregation": True, "aggregation_max_bytes": 2048}
    )
    with FaultProxy(moto.url, seed=9) as proxy:
        proxy.kinesis_put_failure_rate = 0.2
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        # WHEN every trade is published and the endpoint is scraped
        scraped, _, final = await produce_and_scrape(settings)
    records = read_stream(kinesis, stream)
    # THEN Kinesis records are counted as they are in the stream, and trades as they are in them
    assert (
        scraped["producer_kinesis_records_put_total"] == len(records) == final.kinesis_records_put
    )
    assert scraped["producer_aggregates_put_total"] == sum(
        1 for r in records if kpl.is_aggregate(r["Data"])
    )
    assert scraped["producer_records_published_total"] == len(by_kpl(records)) == final.published
    assert scraped["producer_trades_per_kinesis_record"] == pytest.approx(
        final.published / len(records)
    )
    # AND the resent Kinesis records are the entries the proxy refused; the trades resent more
    injected = proxy.injected["PutRecords:entries"]
    assert scraped["producer_kinesis_records_retried_total"] == injected > 0
    assert scraped["producer_entries_retried_total"] == final.retried > injected


OUTCOMES = ("ok", "partial", "error")


async def test_source_connected_follows_the_finnhub_websocket(aws_env: str, unique: str) -> None:
    # GIVEN a producer on the fake Finnhub server, serving metrics
    stream = f"metrics-fh-{unique}"
    kinesis = create_stream(stream, shards=1)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    async with FakeFinnhub(token=TOKEN) as finnhub:
        settings = ProducerSettings(
            stream_name=stream,
            finnhub_api_key=SecretStr(TOKEN),
            finnhub_url=finnhub.url,
            symbols=("AAPL",),
            reconnect_backoff_base_seconds=0.05,
            reconnect_backoff_max_seconds=0.1,
            metrics_port=port,
        )
        progress, stop = Progress(), asyncio.Event()
        producer = asyncio.create_task(run(settings, stop=stop, on_progress=progress.report))
        await finnhub.wait_subscribed({"AAPL"})
        await finnhub.send_trades([{"s": "AAPL", "p": 1.5, "v": 10, "t": T0}])
        await progress.until(lambda s: s.published == 1, within=20)
        # WHEN it is scraped while connected, then while Finnhub refuses to take it back
        connected = await scrape(url)
        finnhub.reject_status = HTTPStatus.SERVICE_UNAVAILABLE
        await finnhub.drop()
        down = await _scrape_until(url, lambda s: s["producer_source_reconnects_total"] >= 2)
        finnhub.reject_status = None
        await finnhub.wait_subscribed({"AAPL"})
        back = await _scrape_until(url, lambda s: s["producer_source_connected"] == 1)
        stop.set()
        await asyncio.wait_for(producer, 10)
    # THEN the gauge is 1, 0 while disconnected, 1 again; the counts match the stream
    assert connected["producer_source_connected"] == 1
    assert down["producer_source_connected"] == 0
    assert back["producer_source_connected"] == 1
    assert connected["producer_trades_produced_total"] == 1
    assert connected["producer_records_published_total"] == len(read_stream(kinesis, stream))


async def _scrape_until(
    url: str, condition: Callable[[dict[str, float]], bool], within: float = 10
) -> dict[str, float]:
    deadline = time.monotonic() + within
    while True:
        scraped = await scrape(url)
        if condition(scraped) or time.monotonic() > deadline:
            return scraped
        await asyncio.sleep(0.05)


async def test_no_metrics_port_serves_nothing_and_a_taken_port_is_a_clear_error(
    aws_env: str, unique: str
) -> None:
    # GIVEN the default settings, and a port something else listens on
    assert ProducerSettings().metrics_port is None
    stream = f"metrics-taken-{unique}"
    create_stream(stream, shards=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = ProducerSettings(
            stream_name=stream, source="synthetic", max_trades=10, metrics_port=port
        )
        # WHEN the producer starts on it THEN it refuses, naming the setting, before producing
        with pytest.raises(ProducerError) as refused:
            await run(settings)
    assert refused.value.code == "MetricsPortUnavailable"
    assert "METRICS_PORT" in str(refused.value)
    assert (refused.value.stats.trades, refused.value.stats.stopped_by) == (0, "error")


@pytest.mark.slow
def test_the_entrypoint_serves_metrics_on_the_environment_s_port(aws_env: str, unique: str) -> None:
    # GIVEN `python -m producer` with METRICS_HOST / METRICS_PORT in its environment
    stream = f"metrics-main-{unique}"
    kinesis = create_stream(stream, shards=1)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SOURCE": "synthetic",
        "SYNTHETIC_RATE": "500",
        "STREAM_NAME": stream,
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "producer"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # WHEN it is scraped until it has published something, then stopped with SIGTERM
        scraped = _scrape_process(f"http://127.0.0.1:{port}/metrics", process)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # THEN it served the counters while running, and its final counts are the stream's
    final = json.loads(out.splitlines()[-1])
    assert process.returncode == 0
    assert 0 < scraped["producer_records_published_total"] <= final["published"]
    assert Counter(trade_ids(by_kpl(read_stream(kinesis, stream)))).total() == (final["published"])


def _scrape_process(url: str, process: subprocess.Popen[str]) -> dict[str, float]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            found = samples(httpx.get(url, timeout=2).text)
        except httpx.TransportError:
            found = {}
        if found.get("producer_records_published_total", 0) > 0:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no published records scraped (exit code {process.poll()})")
