"""Finnhub's trade WebSocket (``wss://ws.finnhub.io?token=...``) as a source of frames.

After every (re)connect it sends ``{"type": "subscribe", "symbol": S}`` for each configured symbol;
when the consumer stops (or MAX_TRADES is reached) it sends the matching ``unsubscribe`` messages
before closing. Messages:

- ``trade``: each item is validated with ``parse_raw``; invalid items are counted
  (``stats.invalid``) and logged, the valid rest of the frame goes on;
- ``ping``: normal (Finnhub sends them while the market is closed); counted, resets the watchdog;
- ``error`` (``{"type": "error", "msg": "..."}``): logged and counted. It is fatal only when the
  message is about the API key (see ``AUTH_HINTS``): reconnecting with a refused key cannot succeed
  and hammering the server with it risks a ban. Anything else (e.g. "Subscribing to too many
  symbols") is logged and the stream goes on.

A handshake refused with HTTP 401/403 is fatal for the same reason (``FinnhubAuthError``); any
other failure (refused or reset connection, other HTTP status, abrupt disconnect, a watchdog
timeout when nothing at all arrives for ``watchdog_seconds``) closes the connection and
reconnects after an exponential backoff with full jitter, then resubscribes. The backoff resets as
soon as a message arrives on a new connection.

The API key travels in the URL, so it is redacted from everything this module logs, from the
WebSocket library's logs (``_Redactor``) and from exception messages; errors raised from here never
chain the library's exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote_plus, urlencode

from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from producer.sources.base import DistinctLimit, Frame, SourceStats
from tradestream.logs import get_logger
from tradestream.retry import Backoff
from tradestream.trade import RawTrade, TradeError, now_ms, parse_raw, stamp

logger = get_logger("producer")

# Words in an error message that mean the key itself is refused (case-insensitive).
AUTH_HINTS = (
    "api key",
    "apikey",
    "token",
    "unauthori",
    "forbidden",
    "authenticat",
    "access denied",
)
FATAL_STATUSES = {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}
REDACTED = "***"
# Unsubscribing is a courtesy on the way out; it must not hold up the shutdown deadline.
GOODBYE_TIMEOUT_SECONDS = 2.0


class FinnhubError(Exception):
    """The Finnhub source cannot go on; ``code`` says why, the message what to do."""

    code = "FinnhubError"


class FinnhubAuthError(FinnhubError):
    """Finnhub refused the API key; retrying cannot help."""

    code = "FinnhubUnauthorized"


class FinnhubConfigError(FinnhubError):
    code = "FinnhubInvalidURL"  # FINNHUB_URL is not a ws:// or wss:// URL


class _SilenceError(Exception):
    """Nothing arrived for the watchdog period: the connection is presumed dead."""


@dataclass
class FinnhubStats(SourceStats):
    connections: int = 0  # successful handshakes
    reconnects: int = 0  # attempts after the first
    pings: int = 0
    errors: int = 0  # error messages from the server
    watchdog_timeouts: int = 0


class _Redactor(logging.Filter):
    """Removes API keys from records of the WebSocket library, which logs request lines."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if secret:
            self._secrets |= {secret, quote_plus(secret)}

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        # The library attaches its connection object (a weak proxy): noise in a JSON log line.
        record.__dict__.pop("websocket", None)
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(text)
            record.exc_info = None
        return True


# One logger for the library, filtered once; every source registers its key with the redactor.
_REDACTOR = _Redactor()
_WS_LOGGER = logging.getLogger("producer.finnhub.websockets")
_WS_LOGGER.addFilter(_REDACTOR)


class FinnhubSource:
    def __init__(
        self,
        url: str,
        token: SecretStr,
        symbols: Sequence[str],
        *,
        watchdog_seconds: float = 30,
        backoff: Backoff | None = None,
        max_trades: int = 0,
        open_timeout: float = 10,
    ) -> None:
        """``backoff`` spaces reconnections (default: 1 s doubling to 60 s)."""
        if not symbols:
            raise ValueError("the Finnhub source needs at least one symbol")
        self.url = url
        self.symbols = tuple(symbols)
        self.watchdog_seconds = watchdog_seconds
        self.open_timeout = open_timeout
        self.stats = FinnhubStats()
        self._ws: ClientConnection | None = None  # the latest connection
        self._token = token
        self._limit = DistinctLimit(self.stats, max_trades)
        self._backoff = backoff or Backoff(1, 60)
        _REDACTOR.add(token.get_secret_value())

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    @property
    def connected(self) -> bool:
        """A WebSocket to Finnhub is open now (the producer's ``producer_source_connected``)."""
        ws = self._ws
        return ws is not None and ws.state is State.OPEN

    async def _frames(self) -> AsyncIterator[Frame]:
        failures = 0
        while not self._limit.reached:
            if self.stats.connections or failures:
                await self._wait_before_reconnect(failures)
            try:
                async with self._connect() as ws:
                    self.stats.connections += 1
                    self._ws = ws
                    logger.info("connected to Finnhub", extra={"url": self.url})
                    await self._send_all(ws, "subscribe")
                    try:
                        while not self._limit.reached:
                            message = await self._receive(ws)
                            failures = 0
                            frame = self._limit.admit(self._handle(message))
                            if frame:
                                yield frame
                    except (GeneratorExit, asyncio.CancelledError):
                        await self._goodbye(ws)
                        raise
                    await self._goodbye(ws)
            except InvalidStatus as exc:
                if exc.response.status_code in FATAL_STATUSES:
                    raise FinnhubAuthError(
                        f"Finnhub refused the API key (HTTP {exc.response.status_code}): "
                        "check FINNHUB_API_KEY"
                    ) from None
                failures += 1
                self._log_disconnect(exc)
            except InvalidURI:
                raise FinnhubConfigError(
                    "FINNHUB_URL is not a valid WebSocket URL, e.g. wss://ws.finnhub.io"
                ) from None
            except (
                ConnectionClosed,
                InvalidHandshake,
                OSError,
                TimeoutError,
                _SilenceError,
            ) as exc:
                failures += 1
                self._log_disconnect(exc)

    def _connect(self) -> connect:
        query = urlencode({"token": self._token.get_secret_value()})
        return connect(
            f"{self.url}?{query}",
            open_timeout=self.open_timeout,
            close_timeout=GOODBYE_TIMEOUT_SECONDS,
            max_size=4 * 1024 * 1024,
            logger=_WS_LOGGER,
            # The library's own reconnect loop is not used: ours resubscribes and counts.
        )

    async def _wait_before_reconnect(self, failures: int) -> None:
        self.stats.reconnects += 1
        delay = self._backoff.delay(max(failures, 1))
        logger.info(
            "reconnecting to Finnhub", extra={"in_seconds": round(delay, 3), "failures": failures}
        )
        await asyncio.sleep(delay)

    async def _receive(self, ws: ClientConnection) -> str | bytes:
        try:
            async with asyncio.timeout(self.watchdog_seconds):
                return await ws.recv()
        except TimeoutError:
            self.stats.watchdog_timeouts += 1
            # A silent peer would not answer a close handshake either: don't wait for one.
            ws.transport.abort()
            raise _SilenceError(f"nothing received for {self.watchdog_seconds:g} s") from None

    async def _send_all(self, ws: ClientConnection, kind: str) -> None:
        for symbol in self.symbols:
            await ws.send(json.dumps({"type": kind, "symbol": symbol}))

    async def _goodbye(self, ws: ClientConnection) -> None:
        """Unsubscribe on a clean stop; best effort, bounded, never raises."""
        try:
            async with asyncio.timeout(GOODBYE_TIMEOUT_SECONDS):
                await self._send_all(ws, "unsubscribe")
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            logger.info("could not unsubscribe", extra={"reason": self._describe(exc)})

    def _handle(self, message: str | bytes) -> Frame:
        try:
            payload = json.loads(message)
        except ValueError:
            return self._invalid("message is not JSON")
        if not isinstance(payload, dict):
            return self._invalid("message is not a JSON object")
        kind = payload.get("type")
        if kind == "trade":
            return self._trades(payload.get("data"))
        if kind == "ping":
            self.stats.pings += 1
        elif kind == "error":
            self._server_error(payload.get("msg"))
        else:
            logger.debug("ignored Finnhub message", extra={"type": str(kind)})
        return []

    def _trades(self, data: Any) -> Frame:
        received = now_ms()
        if not isinstance(data, list):
            return self._invalid("trade message without a data list")
        raws: list[RawTrade] = []
        for item in data:
            try:
                raws.append(parse_raw(item if isinstance(item, dict) else {}))
            except TradeError as exc:
                self._invalid(str(exc))
        return stamp(raws, received)

    def _server_error(self, msg: Any) -> None:
        self.stats.errors += 1
        text = _REDACTOR.redact(str(msg))
        logger.warning("Finnhub error message", extra={"server_message": text})
        if any(hint in text.lower() for hint in AUTH_HINTS):
            raise FinnhubAuthError(f"Finnhub refused the API key ({text}): check FINNHUB_API_KEY")

    def _invalid(self, reason: str) -> Frame:
        self.stats.invalid += 1
        logger.warning("invalid Finnhub input", extra={"reason": reason})
        return []

    def _describe(self, exc: BaseException) -> str:
        return _REDACTOR.redact(f"{type(exc).__name__}: {exc}")

    def _log_disconnect(self, exc: BaseException) -> None:
        logger.warning("Finnhub connection lost", extra={"reason": self._describe(exc)})
