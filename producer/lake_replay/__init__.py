"""Backfill and reprocess from the lake: ``replay_from_lake`` puts the lake's trades (a symbol,
a trade-time window, or all) back on the stream through the producer's publisher, fast or at the
recorded pace. ``tradestream replay --from-lake`` (``tradestream.cli.replay``) is its command;
docs/backfill.md says what it guarantees."""

from __future__ import annotations

from producer.lake_replay.run import (
    LakeReplayError,
    LakeReplaySettings,
    LakeReplaySummary,
    publisher_settings,
    replay_from_lake,
)
from producer.lake_replay.selection import Selection, SelectionError, instant_ms
from producer.lake_replay.source import DEFAULT_MAX_GAP_S, PACES, LakeSource, LakeStats, Pace

__all__ = [
    "DEFAULT_MAX_GAP_S",
    "PACES",
    "LakeReplayError",
    "LakeReplaySettings",
    "LakeReplaySummary",
    "LakeSource",
    "LakeStats",
    "Pace",
    "Selection",
    "SelectionError",
    "instant_ms",
    "publisher_settings",
    "replay_from_lake",
]
