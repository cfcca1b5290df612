"""Training data: history from the seeded synthetic source, or what the pipeline captured.

- ``synthetic_history``: the seeded market of ``tradestream.synthetic``, generated offline
  (no AWS, no clock), one row per distinct trade, in arrival order. Same seed, same rows.
- ``lake_history``: the lake's objects under a prefix, read through ``tradestream.aws.client``
  and turned into rows by ``lake_rows`` (NDJSON plain or GZIP, Parquet; deduplicated by ``id``,
  in trade-time order; what is not a trade skipped and counted), the reader a SageMaker training
  job uses on the same objects downloaded (``lake_rows.directory_history``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ml.lake_rows import KEPT_FIELDS, LakeStats, history
from tradestream import aws
from tradestream.synthetic import raw_frames
from tradestream.trade import stamp

SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")
DATA_PREFIX = "trades/"  # the lake template's data prefix; errors/ holds failed records

__all__ = ["DATA_PREFIX", "LakeStats", "lake_history", "synthetic_history"]


def synthetic_history(
    n_trades: int, seed: int, symbols: Iterable[str] = SYMBOLS
) -> list[dict[str, Any]]:
    """The first ``n_trades`` distinct trades of the seeded synthetic market, in arrival order."""
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for frame in raw_frames(tuple(symbols), seed):
        # Ids come from the trade alone; the receive time only has to be valid, so it is the
        # frame's own time, which keeps the rows free of the wall clock.
        for trade in stamp(frame, received_ms=max(raw.t for raw in frame)):
            if trade.id in seen:  # the source re-sends trades, as Finnhub does
                continue
            seen.add(trade.id)
            rows.append(trade.model_dump(include=set(KEPT_FIELDS), exclude_none=True))
            if len(rows) == n_trades:
                return rows
    raise AssertionError("unreachable: the synthetic source is endless")


def lake_history(
    bucket: str, prefix: str = DATA_PREFIX, *, stats: LakeStats | None = None
) -> list[dict[str, Any]]:
    """Distinct trades from the lake objects under ``prefix``, ordered by trade time."""
    return history(_objects(bucket, prefix), stats if stats is not None else LakeStats())


def _objects(bucket: str, prefix: str) -> Iterator[tuple[str, bytes]]:
    s3 = aws.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            yield key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()
