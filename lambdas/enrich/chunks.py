"""Split the trades of a batch into InvokeEndpoint bodies: JSON arrays under a byte limit.

Trades are small (~150 bytes), so a chunk holds thousands; the limit exists because a Firehose
batch can reach 6 MB of base64 and InvokeEndpoint refuses more than 6 MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class OversizeItemError(ValueError):
    code = "PayloadTooLarge"


@dataclass(frozen=True)
class Chunk:
    indexes: tuple[int, ...]  # positions of the chunk's items in the input
    body: bytes  # b"[item,item,...]"


def chunk(items: Sequence[bytes], max_bytes: int) -> list[Chunk]:
    """Greedy, order-keeping packing of ``items`` (JSON values) into JSON array bodies.

    Raises OversizeItemError if one item alone cannot fit (a trade is capped far below that).
    """
    chunks: list[Chunk] = []
    indexes: list[int] = []
    size = 2  # "[" and "]"
    for index, item in enumerate(items):
        if len(item) + 2 > max_bytes:
            raise OversizeItemError(f"item {index} is {len(item)} bytes; the limit is {max_bytes}")
        added = len(item) + (1 if indexes else 0)  # the separating comma
        if indexes and size + added > max_bytes:
            chunks.append(_close(items, indexes))
            indexes, size = [], 2
            added = len(item)
        indexes.append(index)
        size += added
    if indexes:
        chunks.append(_close(items, indexes))
    return chunks


def _close(items: Sequence[bytes], indexes: list[int]) -> Chunk:
    return Chunk(tuple(indexes), b"[" + b",".join(items[i] for i in indexes) + b"]")
