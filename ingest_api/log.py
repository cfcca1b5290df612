"""The service's one structured logger; request ids travel in a context variable per request."""

from __future__ import annotations

from tradestream.logs import get_logger

logger = get_logger("ingest")
