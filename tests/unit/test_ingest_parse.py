"""Request bodies to trades: media types, the byte limit while reading, all-or-nothing checks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ingest_api.errors import (
    InvalidTradesError,
    MalformedBodyError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from ingest_api.parse import BodyFormat, TradeParser, body_format, read_limited

NOW = 1_718_000_000_000
LATEST = NOW + 300_000


def _trade(**overrides: Any) -> dict[str, Any]:
    return {"s": "AAPL", "p": 189.5, "v": 100, "t": NOW, "c": ["1", "12"], **overrides}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", BodyFormat.JSON),
        ("application/json; charset=utf-8", BodyFormat.JSON),
        ("Application/JSON", BodyFormat.JSON),
        ("application/x-ndjson", BodyFormat.NDJSON),
        ("application/ndjson; charset=UTF-8", BodyFormat.NDJSON),
    ],
)
def test_json_and_ndjson_media_types_are_recognised(
    content_type: str, expected: BodyFormat
) -> None:
    assert body_format(content_type) is expected


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ],
)
def test_other_media_types_are_refused_with_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        body_format(content_type)


async def test_a_body_within_the_limit_is_read_whole() -> None:
    body = await read_limited("6", _chunks(b"abc", b"def"), limit=6)
    assert body == b"abcdef"


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def never() -> AsyncIterator[bytes]:
        raise AssertionError("the body must not be read")
        yield b""  # pragma: no cover

    with pytest.raises(PayloadTooLargeError):
        await read_limited("7", never(), limit=6)


async def test_an_undeclared_or_understated_body_is_cut_off_while_reading() -> None:
    # GIVEN a body of 12 bytes, sent in 3-byte chunks, declared as 3 bytes or not at all
    for declared in ("3", None):
        consumed: list[bytes] = []

        async def chunks(seen: list[bytes]) -> AsyncIterator[bytes]:
            for part in (b"abc", b"def", b"ghi", b"jkl"):
                seen.append(part)
                yield part

        # WHEN it is read with a 6-byte limit THEN the read stops at the chunk crossing the limit
        with pytest.raises(PayloadTooLargeError):
            await read_limited(declared, chunks(consumed), limit=6)
        assert consumed == [b"abc", b"def", b"ghi"]


def test_one_object_an_array_and_ndjson_give_the_same_trades() -> None:
    parser = TradeParser(max_trades=500)
    a, b = _trade(), _trade(s="MSFT", v=0, c=None)
    single = parser.parse(_json(a), BodyFormat.JSON, max_t=LATEST)
    array = parser.parse(_json([a, b]), BodyFormat.JSON, max_t=LATEST)
    lines = parser.parse(_json(a) + b"\n\n  \n" + _json(b) + b"\n", BodyFormat.NDJSON, max_t=LATEST)
    assert [t["s"] for t in single] == ["AAPL"]
    assert [(t["s"], t["v"], t["c"]) for t in array] == [
        ("AAPL", 100.0, ("1", "12")),
        ("MSFT", 0.0, None),
    ]
    assert lines == array


def test_every_bad_item_is_reported_with_its_index_and_field() -> None:
    # GIVEN an array with bad trades at indexes 1 and 3
    parser = TradeParser(max_trades=500)
    body = _json([_trade(), _trade(p=-1), _trade(), _trade(s="not a symbol!", extra=1), _trade()])
    # WHEN it is parsed
    with pytest.raises(InvalidTradesError) as caught:
        parser.parse(body, BodyFormat.JSON, max_t=LATEST)
    # THEN each problem names the index and the field
    found = {(p.index, p.field, p.type) for p in caught.value.problems}
    assert found == {
        (1, "p", "greater_than"),
        (3, "s", "string_pattern_mismatch"),
        (3, "extra", "extra_forbidden"),
    }
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("trade", "field", "error_type"),
    [
        (_trade(p="189.5"), "p", "float_type"),
        (_trade(v=True), "v", "float_type"),
        (_trade(t=1_718_000_000.5), "t", "int_type"),
        (_trade(t=1_718_000_000), "t", "greater_than_equal"),
        (_trade(t=LATEST + 1), "t", "value_error"),
        (_trade(c="1"), "c", "tuple_type"),
        (_trade(c=["x" * 17]), "c.0", "string_too_long"),
        (_trade(c=["1"] * 33), "c", "too_long"),
        (_trade(id="client-chosen"), "id", "extra_forbidden"),
        ({"s": "AAPL", "p": 1.0, "v": 1}, "t", "missing"),
    ],
)
def test_api_rules_are_stricter_than_the_stream_model(
    trade: dict[str, Any], field: str, error_type: str
) -> None:
    with pytest.raises(InvalidTradesError) as caught:
        TradeParser(max_trades=5).parse(_json(trade), BodyFormat.JSON, max_t=LATEST)
    assert [(p.index, p.field, p.type) for p in caught.value.problems] == [(0, field, error_type)]


def test_a_whole_number_written_with_a_fraction_is_an_integer_time() -> None:
    trades = TradeParser(max_trades=5).parse(
        b'{"s":"A","p":1,"v":1,"t":1.718e12}', BodyFormat.JSON, max_t=LATEST
    )
    assert (trades[0]["t"], type(trades[0]["t"])) == (1_718_000_000_000, int)


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(InvalidTradesError) as caught:
        TradeParser(max_trades=5).parse(
            b'[{"s":"AAPL","p":NaN,"v":1,"t":%d}]' % NOW, BodyFormat.JSON, max_t=LATEST
        )
    assert [(p.index, p.field) for p in caught.value.problems] == [(0, "p")]


def test_a_bad_ndjson_line_is_reported_by_trade_index() -> None:
    # GIVEN NDJSON whose third trade (after a blank line) is not JSON and whose first lacks t
    body = b"\n".join([_json({"s": "A", "p": 1, "v": 1}), b"", _json(_trade()), b"{nope"])
    with pytest.raises(InvalidTradesError) as caught:
        TradeParser(max_trades=5).parse(body, BodyFormat.NDJSON, max_t=LATEST)
    assert [(p.index, p.field, p.type) for p in caught.value.problems] == [
        (0, "t", "missing"),
        (2, None, "json_invalid"),
    ]


@pytest.mark.parametrize("body", [b"", b"   ", b"nope", b"42", b'"AAPL"', b"[1,", b"{"])
def test_a_body_that_is_not_a_json_object_or_array_is_a_400(body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        TradeParser(max_trades=5).parse(body, BodyFormat.JSON, max_t=LATEST)


def test_an_item_that_is_not_an_object_is_a_422_at_its_index() -> None:
    with pytest.raises(InvalidTradesError) as caught:
        TradeParser(max_trades=5).parse(_json([_trade(), 7]), BodyFormat.JSON, max_t=LATEST)
    assert [(p.index, p.field, p.type) for p in caught.value.problems] == [(1, None, "dict_type")]


@pytest.mark.parametrize("fmt", [BodyFormat.JSON, BodyFormat.NDJSON])
def test_more_trades_than_allowed_is_a_413(fmt: BodyFormat) -> None:
    trades = [_trade(v=i) for i in range(4)]
    body = _json(trades) if fmt is BodyFormat.JSON else b"\n".join(_json(t) for t in trades)
    parser = TradeParser(max_trades=3)
    with pytest.raises(PayloadTooLargeError) as caught:
        parser.parse(body, fmt, max_t=LATEST)
    assert "at most 3 trades" in caught.value.detail
    assert len(parser.parse(_json(trades[:3]), BodyFormat.JSON, max_t=LATEST)) == 3


@pytest.mark.parametrize(("body", "fmt"), [(b"[]", BodyFormat.JSON), (b"\n\n", BodyFormat.NDJSON)])
def test_a_request_without_trades_is_a_422(body: bytes, fmt: BodyFormat) -> None:
    with pytest.raises(InvalidTradesError) as caught:
        TradeParser(max_trades=3).parse(body, fmt, max_t=LATEST)
    assert caught.value.detail == "the request holds no trades"
