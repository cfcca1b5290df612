"""A scriptable stand-in for Finnhub's trade WebSocket, served for real on loopback.

    async with FakeFinnhub(token="secret") as finnhub:
        source = FinnhubSource(finnhub.url, SecretStr("secret"), ["AAPL"])
        ...
        await finnhub.wait_subscribed({"AAPL"})
        await finnhub.send_trades([{"s": "AAPL", "p": 1.5, "v": 10, "t": 1_700_000_000_000}])
        await finnhub.ping()
        await finnhub.error("Subscribing to too many symbols")
        await finnhub.drop()            # abrupt: TCP closed without a close frame
        finnhub.go_silent()             # keep connections open, send and answer nothing

It checks ``?token=`` (a wrong one gets HTTP 401, like a refused key), records every subscribe and
unsubscribe message in order (``subscriptions``), and counts connections. Messages are sent to
every open connection. It logs nothing: its WebSocket library would log the token in request
lines, and tests assert the producer never does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

# The fake server logs its request lines, token included; they are not the producer's logs and must
# stay out of the tests that look for the token. A Logger made directly is in no registry, so
# logging.config.dictConfig (uvicorn calls it with disable_existing_loggers=False, which re-enables
# every registered logger) never turns it back on.
_QUIET = logging.Logger("tests.fake_finnhub")
_QUIET.propagate = False
_QUIET.disabled = True


class FakeFinnhub:
    def __init__(self, token: str = "test-token", *, host: str = "127.0.0.1") -> None:
        self.token = token
        self.host = host
        self.subscriptions: list[tuple[str, str]] = []  # ("subscribe" | "unsubscribe", symbol)
        self.received: list[Any] = []  # every message clients sent, decoded
        self.connections = 0  # accepted (right token)
        self.rejected = 0  # refused handshakes
        self.reject_status: HTTPStatus | None = None  # refuse every handshake with this status
        self.silent = False
        self._open: set[ServerConnection] = set()
        self._active: dict[ServerConnection, set[str]] = {}
        self._changed = asyncio.Condition()
        self._server: Server | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> FakeFinnhub:
        self._server = await serve(
            self._handle,
            self.host,
            0,
            process_request=self._check_token,
            logger=_QUIET,
            # Protocol pings are the client's business; the fake must not close idle clients.
            ping_interval=None,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self.silent = False
        for ws in list(self._open):
            ws.transport.resume_reading()
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeFinnhub as an async context manager"
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://{self.host}:{port}"

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def active_symbols(self) -> set[str]:
        """Symbols subscribed on the open connections."""
        return set().union(*self._active.values()) if self._active else set()

    # -- scripting ---------------------------------------------------------------------------

    async def send(self, message: dict[str, Any] | str) -> int:
        """Send one message (a dict is JSON-encoded) to every open connection; returns how many."""
        if self.silent:
            return 0
        text = message if isinstance(message, str) else json.dumps(message)
        sent = 0
        for ws in list(self._open):
            try:
                await ws.send(text)
                sent += 1
            except ConnectionClosed:
                pass
        return sent

    async def send_trades(self, trades: list[dict[str, Any]]) -> int:
        return await self.send({"type": "trade", "data": trades})

    async def ping(self) -> int:
        return await self.send({"type": "ping"})

    async def error(self, msg: str) -> int:
        return await self.send({"type": "error", "msg": msg})

    async def drop(self) -> None:
        """Abort every open connection: no close frame, as when a network path dies."""
        for ws in list(self._open):
            ws.transport.abort()
        await self._wait_for(lambda: not self._open)

    async def close(self, code: int = 1000) -> None:
        """Close every open connection cleanly (with a close frame)."""
        for ws in list(self._open):
            await ws.close(code)
        await self._wait_for(lambda: not self._open)

    def go_silent(self) -> None:
        """Stop sending, and stop reading too so not even protocol pongs go back: a dead peer."""
        self.silent = True
        for ws in list(self._open):
            ws.transport.pause_reading()

    def speak_again(self) -> None:
        self.silent = False
        for ws in list(self._open):
            ws.transport.resume_reading()

    # -- waiting -----------------------------------------------------------------------------

    async def wait_connections(self, count: int, within: float = 5) -> None:
        """Wait until ``count`` connections have been accepted in total."""
        await self._wait_for(lambda: self.connections >= count, within)

    async def wait_subscribed(self, symbols: set[str], within: float = 5) -> None:
        """Wait until an open connection is subscribed to all ``symbols``."""
        await self._wait_for(lambda: any(symbols <= s for s in self._active.values()), within)

    async def wait_rejected(self, count: int, within: float = 5) -> None:
        """Wait until ``count`` handshakes have been refused in total."""
        await self._wait_for(lambda: self.rejected >= count, within)

    async def wait_received(self, count: int, within: float = 5) -> None:
        """Wait until clients have sent ``count`` messages in total."""
        await self._wait_for(lambda: len(self.received) >= count, within)

    async def _wait_for(self, predicate: Any, within: float = 5) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- server side -------------------------------------------------------------------------

    async def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        status = self.reject_status
        if status is None and token != self.token:
            status = HTTPStatus.UNAUTHORIZED
        if status is None:
            return None
        self.rejected += 1
        await self._notify()
        return connection.respond(status, f"{status.phrase}\n")

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self._open.add(ws)
        self._active[ws] = set()
        await self._notify()
        try:
            async for text in ws:
                message = json.loads(text)
                self.received.append(message)
                kind, symbol = message.get("type"), message.get("symbol")
                if kind in ("subscribe", "unsubscribe") and isinstance(symbol, str):
                    self.subscriptions.append((kind, symbol))
                    active = self._active[ws]
                    active.add(symbol) if kind == "subscribe" else active.discard(symbol)
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            self._open.discard(ws)
            self._active.pop(ws, None)
            await self._notify()
