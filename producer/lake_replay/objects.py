"""A lake object's lines back to the stream's trade records.

An object under the data prefix is what the delivery stream wrote: the enrich function's lines
(``lambdas/enrich/records.py``: the trade's fields, then ``prediction``, ``model_version`` and,
when inference failed, ``prediction_error``), one JSON object a line, concatenated, gzip when the
stream compresses. Gzip is recognised by its magic bytes, whatever the key's extension (as
``tradestream.readback`` reads the lake). Parquet (a Firehose format conversion) is not read: the
lake's template converts nothing, and such an object's lines would all be reported invalid.

A line becomes the ``Trade`` it was enriched from: the inference fields are not trade fields, so
validating drops them, and ``to_record()`` gives back exactly the record the stream carried,
``id`` and edge receive time ``rt`` included. A line that is not a valid trade record is never
dropped silently: it comes back as an ``InvalidLine`` with its object key, line number and reason.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field

from tradestream.trade import Trade, TradeError

GZIP_MAGIC = b"\x1f\x8b"


class UnreadableObjectError(Exception):
    """An object whose body cannot be read as lines at all (e.g. truncated gzip)."""


@dataclass(frozen=True)
class InvalidLine:
    key: str
    line: int  # 1-based, in the decompressed object
    reason: str


@dataclass
class ObjectTrades:
    trades: list[Trade] = field(default_factory=list)
    invalid: list[InvalidLine] = field(default_factory=list)
    lines: int = 0  # non-blank lines


def decompressed(body: bytes) -> bytes:
    if body[:2] != GZIP_MAGIC:
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableObjectError(f"not readable as gzip: {exc}") from exc


def object_trades(key: str, body: bytes) -> ObjectTrades:
    """Every line of one object, as a trade or an invalid line; blank lines are no lines."""
    found = ObjectTrades()
    for number, line in enumerate(decompressed(body).splitlines(), start=1):
        if not line.strip():
            continue
        found.lines += 1
        try:
            found.trades.append(Trade.from_record(line))
        except TradeError as exc:
            found.invalid.append(InvalidLine(key, number, str(exc)))
    return found
