"""The Finnhub source against a real WebSocket server on loopback (tests/support/fake_finnhub)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from producer.sources.finnhub import FinnhubAuthError, FinnhubSource
from tests.support.fake_finnhub import FakeFinnhub
from tradestream.retry import Backoff
from tradestream.trade import Trade

TOKEN = "fh-T0ken+with/odd=chars"
SYMBOLS = ("AAPL", "MSFT", "BINANCE:BTCUSDT")
T0 = 1_700_000_000_000


def trade(symbol: str = "AAPL", t: int = T0, p: float = 10.0, v: float = 1) -> dict[str, Any]:
    return {"s": symbol, "p": p, "v": v, "t": t, "c": ["1"]}


class Consumer:
    """Iterates a source in a task, so a test can script the server and watch what comes out."""

    def __init__(self, source: FinnhubSource) -> None:
        self.source = source
        self.frames: asyncio.Queue[list[Trade]] = asyncio.Queue()
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for frame in self.source:
            self.frames.put_nowait(frame)

    async def next_frame(self, within: float = 5) -> list[Trade]:
        async with asyncio.timeout(within):
            return await self.frames.get()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.wait({self.task})


def finnhub_source(url: str, token: str = TOKEN, **kwargs: Any) -> FinnhubSource:
    options: dict[str, Any] = {
        "watchdog_seconds": 5,
        "backoff": Backoff(0.05, 0.2, random.Random(1)),
    }
    return FinnhubSource(url, SecretStr(token), SYMBOLS, **{**options, **kwargs})


async def drain(source: FinnhubSource) -> None:
    async for _ in source:
        pass


@pytest.fixture
async def finnhub() -> AsyncIterator[FakeFinnhub]:
    async with FakeFinnhub(token=TOKEN) as server:
        yield server


async def test_subscribes_per_symbol_streams_trades_and_unsubscribes_on_stop(
    finnhub: FakeFinnhub,
) -> None:
    # GIVEN a source connected to the fake server
    consumer = Consumer(finnhub_source(finnhub.url))
    await finnhub.wait_subscribed(set(SYMBOLS))
    # THEN it subscribed once to each configured symbol, in order
    assert finnhub.subscriptions == [("subscribe", s) for s in SYMBOLS]
    # WHEN a frame with two identical trades and another one arrives
    twin = trade("MSFT")
    await finnhub.send_trades([twin, twin, trade("AAPL", p=11.5)])
    frame = await consumer.next_frame()
    # THEN it comes out as one frame of three stamped trades, the twins with different ids
    assert [(t.s, t.p) for t in frame] == [("MSFT", 10.0), ("MSFT", 10.0), ("AAPL", 11.5)]
    assert len({t.id for t in frame}) == 3
    assert consumer.source.stats.trades == consumer.source.stats.distinct == 3
    # WHEN the consumer stops
    await consumer.stop()
    await finnhub.wait_received(2 * len(SYMBOLS))
    # THEN it unsubscribed from every symbol before leaving
    assert finnhub.subscriptions[len(SYMBOLS) :] == [("unsubscribe", s) for s in SYMBOLS]
    assert finnhub.connections == 1


async def test_pings_are_normal_and_keep_the_watchdog_quiet(finnhub: FakeFinnhub) -> None:
    # GIVEN a source with a 1 s watchdog
    consumer = Consumer(finnhub_source(finnhub.url, watchdog_seconds=1))
    await finnhub.wait_subscribed(set(SYMBOLS))
    # WHEN the server only pings, every 0.2 s for 2 s (two watchdog periods)
    for _ in range(10):
        await finnhub.ping()
        await asyncio.sleep(0.2)
    await finnhub.send_trades([trade()])
    await consumer.next_frame()
    # THEN every ping was counted, none produced a frame, and the connection never changed
    assert consumer.source.stats.pings == 10
    assert consumer.source.stats.frames == 1
    assert consumer.source.stats.watchdog_timeouts == 0
    assert finnhub.connections == 1
    await consumer.stop()


async def test_invalid_items_are_counted_and_logged_and_the_stream_goes_on(
    finnhub: FakeFinnhub, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a connected source
    consumer = Consumer(finnhub_source(finnhub.url))
    await finnhub.wait_subscribed(set(SYMBOLS))
    # WHEN a frame mixes a good trade with two bad ones, then junk messages arrive
    await finnhub.send_trades([trade(), {"s": "AAPL", "p": -1, "v": 1, "t": T0}, {"p": 3}])
    await finnhub.send("not json")
    await finnhub.send({"type": "trade", "data": "oops"})
    await finnhub.send({"type": "news", "data": []})
    await finnhub.send_trades([trade("MSFT")])
    # THEN the good trades come out and 4 invalid inputs were counted and logged
    assert [t.s for t in await consumer.next_frame()] == ["AAPL"]
    assert [t.s for t in await consumer.next_frame()] == ["MSFT"]
    assert consumer.source.stats.invalid == 4
    assert sum(r.message == "invalid Finnhub input" for r in caplog.records) == 4
    assert finnhub.connections == 1
    await consumer.stop()


async def test_an_ordinary_error_message_is_logged_and_the_stream_goes_on(
    finnhub: FakeFinnhub, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a connected source
    consumer = Consumer(finnhub_source(finnhub.url))
    await finnhub.wait_subscribed(set(SYMBOLS))
    # WHEN the server reports an error that is not about the key, then sends a trade
    await finnhub.error("Subscribing to too many symbols")
    await finnhub.send_trades([trade()])
    # THEN the trade still arrives on the same connection and the error was logged
    assert len(await consumer.next_frame()) == 1
    assert consumer.source.stats.errors == 1
    logged = [r.__dict__ for r in caplog.records if r.message == "Finnhub error message"]
    assert [r["server_message"] for r in logged] == ["Subscribing to too many symbols"]
    assert finnhub.connections == 1
    await consumer.stop()


async def test_an_error_about_the_key_is_fatal_and_not_retried(finnhub: FakeFinnhub) -> None:
    # GIVEN a connected source
    consumer = Consumer(finnhub_source(finnhub.url))
    await finnhub.wait_subscribed(set(SYMBOLS))
    # WHEN the server says the key is invalid
    await finnhub.error("Invalid API key")
    # THEN the source stops with FinnhubAuthError and does not reconnect
    with pytest.raises(FinnhubAuthError, match="check FINNHUB_API_KEY"):
        await asyncio.wait_for(consumer.task, 5)
    await asyncio.sleep(0.3)
    assert finnhub.connections == 1


async def test_a_refused_token_is_fatal_at_once(finnhub: FakeFinnhub) -> None:
    # GIVEN a source with the wrong token
    source = finnhub_source(finnhub.url, token="wrong-token")
    # WHEN it connects THEN the HTTP 401 handshake ends it, after one attempt
    with pytest.raises(FinnhubAuthError, match="HTTP 401"):
        await asyncio.wait_for(drain(source), 5)
    assert (finnhub.rejected, finnhub.connections) == (1, 0)


async def test_other_handshake_failures_are_retried_with_backoff(finnhub: FakeFinnhub) -> None:
    # GIVEN a server answering 503 to handshakes
    from http import HTTPStatus

    finnhub.reject_status = HTTPStatus.SERVICE_UNAVAILABLE
    consumer = Consumer(finnhub_source(finnhub.url))
    # WHEN it has refused three attempts, then recovers
    await finnhub.wait_rejected(3)
    finnhub.reject_status = None
    await finnhub.wait_subscribed(set(SYMBOLS))
    await finnhub.send_trades([trade()])
    # THEN the source got through and streams
    assert len(await consumer.next_frame()) == 1
    assert consumer.source.stats.reconnects >= 3
    assert consumer.source.stats.connections == 1
    await consumer.stop()


async def test_abrupt_disconnect_reconnects_resubscribes_and_streams_again(
    finnhub: FakeFinnhub,
) -> None:
    # GIVEN a source that received one trade
    consumer = Consumer(finnhub_source(finnhub.url))
    await finnhub.wait_subscribed(set(SYMBOLS))
    await finnhub.send_trades([trade(t=T0)])
    before = await consumer.next_frame()
    # WHEN the connection dies without a close frame
    await finnhub.drop()
    # THEN the source reconnects and subscribes again to every symbol
    await finnhub.wait_connections(2)
    await finnhub.wait_subscribed(set(SYMBOLS))
    assert finnhub.subscriptions == [("subscribe", s) for s in SYMBOLS] * 2
    # AND trades sent after the reconnect arrive
    await finnhub.send_trades([trade(t=T0 + 1)])
    after = await consumer.next_frame()
    assert [t.t for t in before + after] == [T0, T0 + 1]
    assert (consumer.source.stats.connections, consumer.source.stats.reconnects) == (2, 1)
    await consumer.stop()


async def test_silence_trips_the_watchdog_which_reconnects(finnhub: FakeFinnhub) -> None:
    # GIVEN a source with a 0.3 s watchdog on a live connection
    consumer = Consumer(finnhub_source(finnhub.url, watchdog_seconds=0.3))
    await finnhub.wait_subscribed(set(SYMBOLS))
    # WHEN the server goes silent (not even protocol pongs)
    finnhub.go_silent()
    # THEN the watchdog drops the connection and the source reconnects and resubscribes
    await finnhub.wait_connections(2, within=3)
    finnhub.speak_again()
    await finnhub.wait_received(2 * len(SYMBOLS))
    await finnhub.send_trades([trade()])
    assert len(await consumer.next_frame()) == 1
    assert consumer.source.stats.watchdog_timeouts >= 1
    assert finnhub.subscriptions.count(("subscribe", "AAPL")) == 2
    await consumer.stop()


async def test_max_trades_stops_the_source_which_unsubscribes(finnhub: FakeFinnhub) -> None:
    # GIVEN a source limited to 3 distinct trades
    consumer = Consumer(finnhub_source(finnhub.url, max_trades=3))
    await finnhub.wait_subscribed(set(SYMBOLS))
    # WHEN 2 trades, a duplicate of one, then 2 more arrive
    await finnhub.send_trades([trade(t=T0), trade(t=T0 + 1)])
    await finnhub.send_trades([trade(t=T0), trade(t=T0 + 2), trade(t=T0 + 3)])
    # THEN the source ends after the third distinct one, having unsubscribed
    await asyncio.wait_for(consumer.task, 5)
    frames = [consumer.frames.get_nowait() for _ in range(consumer.frames.qsize())]
    assert [t.t for f in frames for t in f] == [T0, T0 + 1, T0, T0 + 2]
    assert consumer.source.stats.distinct == 3
    await finnhub.wait_received(2 * len(SYMBOLS))
    assert finnhub.subscriptions[-len(SYMBOLS) :] == [("unsubscribe", s) for s in SYMBOLS]


async def test_the_token_never_reaches_logs_or_errors(
    finnhub: FakeFinnhub,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    # GIVEN everything logging at DEBUG, the WebSocket library included, and every record also
    # formatted as the producer's JSON handler writes it, when it is emitted (a record's extras
    # may be weak references to a connection that is gone by the end of the test)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("producer").setLevel(logging.DEBUG)
    json_lines: list[str] = []
    formatter = _json_formatter()
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: json_lines.append(formatter.format(record))  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    request.addfinalizer(lambda: logging.getLogger().removeHandler(handler))
    # WHEN a source connects, streams, reconnects after a drop, and finally has its key refused
    consumer = Consumer(finnhub_source(finnhub.url))
    await finnhub.wait_subscribed(set(SYMBOLS))
    await finnhub.send_trades([trade()])
    await consumer.next_frame()
    await finnhub.error(f"echo: {TOKEN}")
    await finnhub.drop()
    await finnhub.wait_connections(2)
    await finnhub.wait_subscribed(set(SYMBOLS))
    await finnhub.error("Invalid API key")
    with pytest.raises(FinnhubAuthError) as refused:
        await asyncio.wait_for(consumer.task, 5)
    refusal = await _refused_handshake(finnhub.url)
    # THEN the request lines were logged, with the token redacted
    assert "GET /?token=*** HTTP/1.1" in caplog.text
    # AND the token (raw or URL-encoded) is in no record (extras included), no JSON log line,
    # no output and no error
    assert any("Finnhub connection lost" in line for line in json_lines)
    out, err = capfd.readouterr()
    records = [repr(r.__dict__) for r in caplog.records]
    for text in (*records, *json_lines, out, err, str(refused.value), repr(refusal)):
        assert TOKEN not in text
        assert "fh-T0ken%2Bwith%2Fodd%3Dchars" not in text


def _json_formatter() -> logging.Formatter:
    """The formatter of the producer's JSON log handler."""
    formatter = logging.getLogger("producer").handlers[0].formatter
    assert formatter is not None
    return formatter


async def _refused_handshake(url: str) -> FinnhubAuthError:
    try:
        await asyncio.wait_for(drain(finnhub_source(url, token=TOKEN + "-revoked")), 5)
    except FinnhubAuthError as exc:
        return exc
    raise AssertionError("the handshake was not refused")
