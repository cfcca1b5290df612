"""moto's DynamoDB item construction made linear, in the moto process the embedded stack runs.

moto checks DynamoDB's 400 KB item limit in ``LimitedSizeDict.__setitem__`` by summing the sizes
of every attribute already set, so building one item of n attributes sizes n(n+1)/2 attributes.
The hotstore writes items of ~10 attributes; profiled, that sum was half of moto's time in a
BatchWriteItem, and moto's DynamoDB is what bounds the embedded stack's hot path (docs/
benchmarks.md). :func:`install` replaces ``Item.__init__`` with one that sizes the finished item
once. The outcome is the same by construction: sizes only grow as attributes are added, so the
check the original makes last (over the whole item) is the only one that can fail, and this one
makes exactly that check, with moto's own sizes and limit. Updates of an existing item still go
through moto's own ``__setitem__``.

Guarded: if moto's Item no longer looks as expected, nothing is replaced (a warning says so),
and moto runs as it ships.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)

# moto's own threshold (the official 400 KB limit, measured by moto between 409 and 410 KB).
_MOTO_ITEM_LIMIT = 405000


def install() -> bool:
    """Replace moto's Item constructor; False (and moto untouched) if moto changed shape."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.utilities import bytesize

    item_class = dynamo_type.Item
    expected = ["self", "hash_key", "range_key", "attrs"]
    source = inspect.getsource(dynamo_type.LimitedSizeDict.__setitem__)
    if (
        list(inspect.signature(item_class.__init__).parameters) != expected
        or str(_MOTO_ITEM_LIMIT) not in source
    ):
        log.warning("moto's DynamoDB Item changed shape; its constructor is left as it is")
        return False
    limited_size_dict, dynamo = dynamo_type.LimitedSizeDict, dynamo_type.DynamoType

    def __init__(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        converted = {key: dynamo(value) for key, value in attrs.items()}
        size = sum(bytesize(key) + value.size() for key, value in converted.items())
        if size > _MOTO_ITEM_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = limited_size_dict()
        dict.update(self.attrs, converted)  # sized above, all at once

    item_class.__init__ = __init__  # type: ignore[method-assign]
    return True
