"""Trade sources: Finnhub's WebSocket, a deterministic synthetic market, an NDJSON replay.

Each is an async iterator of frames (``list[Trade]``) exposing ``stats`` (``SourceStats``).
"""

from __future__ import annotations

from producer.settings import ProducerSettings
from producer.sources.base import Frame, FrameSource, SourceStats
from producer.sources.finnhub import FinnhubSource
from producer.sources.replay import ReplaySource
from producer.sources.synthetic import SyntheticSource
from tradestream.retry import Backoff

__all__ = [
    "FinnhubSource",
    "Frame",
    "FrameSource",
    "ReplaySource",
    "SourceStats",
    "SyntheticSource",
    "build_source",
]


def build_source(settings: ProducerSettings) -> FrameSource:
    """The source SOURCE names, configured from the settings."""
    if settings.source == "finnhub":
        assert settings.finnhub_api_key is not None  # the settings refuse finnhub without a key
        return FinnhubSource(
            settings.finnhub_url,
            settings.finnhub_api_key,
            settings.symbols,
            watchdog_seconds=settings.watchdog_seconds,
            backoff=Backoff(
                settings.reconnect_backoff_base_seconds, settings.reconnect_backoff_max_seconds
            ),
            max_trades=settings.max_trades,
        )
    if settings.source == "replay":
        assert settings.replay_file is not None  # the settings refuse replay without a file
        return ReplaySource(
            settings.replay_file, pace=settings.replay_pace, max_trades=settings.max_trades
        )
    return SyntheticSource(
        settings.symbols,
        seed=settings.synthetic_seed,
        rate=settings.synthetic_rate,
        max_trades=settings.max_trades,
    )
