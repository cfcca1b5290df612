"""The whole producer with the Finnhub source: fake Finnhub -> producer -> moto Kinesis."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from pydantic import SecretStr

from producer.app import run
from producer.settings import ProducerSettings
from tests.support.deaggregated import by_kpl, trade_ids
from tests.support.fake_finnhub import FakeFinnhub
from tests.support.kinesis import create_stream, read_stream
from tests.support.progress import Progress

TOKEN = "e2e-token"
T0 = 1_700_000_000_000


def trade(symbol: str, t: int, p: float = 10.0) -> dict[str, Any]:
    return {"s": symbol, "p": p, "v": 1, "t": t, "c": ["1"]}


async def test_finnhub_trades_reach_the_stream_and_stop_unsubscribes(
    aws_env: str, unique: str
) -> None:
    # GIVEN a stream and the producer running against the fake Finnhub server
    stream = f"finnhub-{unique}"
    kinesis = create_stream(stream, shards=1)
    async with FakeFinnhub(token=TOKEN) as finnhub:
        settings = ProducerSettings(
            stream_name=stream,
            finnhub_api_key=SecretStr(TOKEN),
            finnhub_url=finnhub.url,
            symbols=("AAPL", "BINANCE:BTCUSDT"),
            reconnect_backoff_base_seconds=0.05,
            reconnect_backoff_max_seconds=0.1,
        )
        assert settings.source == "finnhub"
        progress = Progress()
        stop = asyncio.Event()
        producer = asyncio.create_task(run(settings, stop=stop, on_progress=progress.report))
        await finnhub.wait_subscribed({"AAPL", "BINANCE:BTCUSDT"})
        # WHEN frames arrive, one of them re-sending an earlier trade, with a drop in between
        await finnhub.send_trades([trade("AAPL", T0), trade("AAPL", T0)])
        await finnhub.send_trades([trade("BINANCE:BTCUSDT", T0 + 1, 65_000.5)])
        # (an abrupt drop discards what is still in flight, so let those frames land first)
        await progress.until(lambda stats: stats.received == 3)
        await finnhub.drop()
        await finnhub.wait_subscribed({"AAPL", "BINANCE:BTCUSDT"})
        await finnhub.send_trades([trade("AAPL", T0), trade("AAPL", T0 + 2)])
        await progress.until(lambda stats: stats.published == 5)
        # AND the producer is asked to stop
        stop.set()
        stats = await asyncio.wait_for(producer, 10)
        await finnhub.wait_received(6)  # 2 subscribes, 2 again after the drop, 2 unsubscribes
    # THEN all 5 records are in the stream: 4 distinct ids, the re-sent one twice
    ids = Counter(trade_ids(by_kpl(read_stream(kinesis, stream))))
    assert sum(ids.values()) == stats.published == 5
    assert len(ids) == stats.distinct == 4
    assert sorted(ids.values()) == [1, 1, 1, 2]
    # AND the source resubscribed after the drop and unsubscribed when stopped
    assert finnhub.subscriptions == [
        ("subscribe", "AAPL"),
        ("subscribe", "BINANCE:BTCUSDT"),
        ("subscribe", "AAPL"),
        ("subscribe", "BINANCE:BTCUSDT"),
        ("unsubscribe", "AAPL"),
        ("unsubscribe", "BINANCE:BTCUSDT"),
    ]
    assert (stats.stopped_by, stats.failed) == ("stop", 0)
