"""Readiness: the stream exists and takes writes, checked with DescribeStreamSummary.

Results are cached for a few seconds and concurrent probes share one call: /readyz is
unauthenticated, and DescribeStreamSummary allows only 20 calls per second per account.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .log import logger
from .models import Readiness

# UPDATING (resharding, retention changes) still accepts PutRecords; taking every task out of the
# load balancer during a reshard would turn maintenance into an outage.
WRITABLE_STATUSES = frozenset({"ACTIVE", "UPDATING"})


class ReadinessProbe:
    def __init__(
        self, client: Any, stream_name: str, *, cache_seconds: float, timeout: float
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._last: Readiness | None = None
        self._checked_at = float("-inf")

    async def check(self) -> Readiness:
        async with self._lock:
            if time.monotonic() - self._checked_at < self.cache_seconds and self._last is not None:
                return self._last
            self._last = await self._describe()
            self._checked_at = time.monotonic()
            return self._last

    async def _describe(self) -> Readiness:
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.describe_stream_summary(StreamName=self.stream_name)
        except Exception as exc:
            reason = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            logger.warning("readiness check failed", extra={"reason": reason})
            return Readiness(ready=False, stream=self.stream_name, status=None, reason=reason)
        status = str(response["StreamDescriptionSummary"]["StreamStatus"])
        ready = status in WRITABLE_STATUSES
        return Readiness(
            ready=ready,
            stream=self.stream_name,
            status=status,
            reason=None if ready else f"stream is {status}",
        )
