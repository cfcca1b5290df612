"""Records in the plain Finnhub trade shape, as other producers put them (no ``id``, no ``rt``,
sometimes extra fields), decode at both consumers with what the edge would have stamped: the
edge's id (occurrence 0) and the record's arrival time as ``rt``. Poison stays poison."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event import (
    KinesisFirehoseRecord,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdas.enrich import records as enrich_records
from lambdas.hotstore.records import (
    INVALID_JSON,
    INVALID_TRADE,
    PoisonRecordError,
    RecordRef,
)
from tests.support.hotstore import decode_record
from tradestream.trade import (
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    RawTrade,
    ReceiveTimeMissingError,
    Trade,
    TradeError,
    parse_raw,
    stamp,
)

EVENTS = Path(__file__).parents[1] / "events"
ARRIVAL_MS = 1_733_300_000_412
PLAIN = b'{"s":"AAPL","p":187.5,"v":100,"t":1733300000000,"c":["1"]}'
# sha256("AAPL|187.5|100.0|1733300000000|1|0")[:32]: the edge's rule, worked by hand.
PLAIN_ID = "c12363aeb7b51ff5550fb59a31130bbb"


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def edge(data: bytes, received_ms: int) -> Trade:
    """What the edge would have put on the stream for this Finnhub trade object."""
    (trade,) = stamp([parse_raw(json.loads(data))], received_ms=received_ms)
    return trade


def kinesis_ref(data: bytes, arrival_s: float = ARRIVAL_MS / 1000) -> RecordRef:
    return RecordRef(
        "arn", "shardId-000000000000", "1", "AAPL", arrival_s, base64.b64encode(data).decode()
    )


def firehose_record(data: bytes, arrival_ms: int | None = ARRIVAL_MS) -> KinesisFirehoseRecord:
    raw: dict[str, Any] = {"recordId": "r1", "data": base64.b64encode(data).decode()}
    if arrival_ms is not None:
        raw["approximateArrivalTimestamp"] = arrival_ms
    return KinesisFirehoseRecord(raw)


# --- Trade.from_record ------------------------------------------------------------------------


def test_a_plain_trade_gets_the_edges_id_and_the_given_receive_time() -> None:
    # GIVEN a plain Finnhub trade object WHEN decoded with its arrival time
    trade = Trade.from_record(PLAIN, received_ms=ARRIVAL_MS)

    # THEN it is the trade the edge would have stamped at that time, with the edge's id
    assert trade == edge(PLAIN, ARRIVAL_MS)
    assert (trade.id, trade.rt) == (PLAIN_ID, ARRIVAL_MS)
    assert (trade.p, trade.v, trade.c) == (187.5, 100.0, ("1",))


def test_extra_fields_are_ignored() -> None:
    # GIVEN the same trade with another producer's ingestion timestamp and more
    data = PLAIN[:-1] + b',"ingested_at":"2024-12-04T08:13:20.004Z","source":"other","x":[1]}'

    # WHEN decoded THEN it is the same trade, same id, and the extras are gone
    trade = Trade.from_record(data, received_ms=ARRIVAL_MS)
    assert trade == Trade.from_record(PLAIN, received_ms=ARRIVAL_MS)
    assert "ingested_at" not in trade.model_dump()


def test_without_a_receive_time_a_plain_trade_says_so_and_can_be_given_one_later() -> None:
    # GIVEN a plain trade decoded without an arrival time
    with pytest.raises(ReceiveTimeMissingError) as missing:
        Trade.from_record(PLAIN)

    # THEN the error is a TradeError naming what is missing, as an invalid record's would
    assert isinstance(missing.value, TradeError)
    assert str(missing.value) == "id: Field required; rt: Field required"
    # AND given the arrival time it is the same trade as decoded with it
    assert missing.value.received_at(ARRIVAL_MS) == Trade.from_record(PLAIN, ARRIVAL_MS)


def test_a_record_with_an_id_but_no_rt_keeps_its_id() -> None:
    # GIVEN an edge record that lost its rt (say, a producer that copies id only)
    original = edge(PLAIN, 1_733_300_000_401)
    data = original.to_record().replace(b',"rt":1733300000401', b"")
    assert b'"rt"' not in data

    # WHEN decoded THEN its own id stays and rt is the arrival time
    trade = Trade.from_record(data, received_ms=ARRIVAL_MS)
    assert trade == original.model_copy(update={"rt": ARRIVAL_MS})


def test_a_record_with_rt_but_no_id_keeps_its_rt_and_gets_the_edges_id() -> None:
    # GIVEN an edge record without its id
    original = edge(PLAIN, 1_733_300_000_401)
    data = original.to_record().replace(f',"id":"{original.id}"'.encode(), b"")

    # WHEN decoded, with or without an arrival time THEN it is the edge's trade, rt untouched
    assert Trade.from_record(data) == original
    assert Trade.from_record(data, received_ms=ARRIVAL_MS) == original


def test_a_record_with_both_ignores_the_receive_time() -> None:
    # GIVEN an edge record WHEN decoded with an arrival time THEN it is exactly the record
    original = edge(PLAIN, 1_733_300_000_401)
    assert Trade.from_record(original.to_record(), received_ms=ARRIVAL_MS) == original


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"s":"AAPL","p":-1,"v":100,"t":1733300000000}', "p: Input should be greater than 0"),
        (b'{"s":"AAPL","p":187.5,"v":100}', "t: Field required"),
        (b'{"s":"AAPL","p":187.5,"v":100,"t":1733300000}', "t: Input should be greater"),
        (b'{"s":"AAPL","p":187.5,"v":100,"t":1733300000000,"id":null}', "id: Input should be"),
        (b'{"s":"AAPL","p":187.5,"v":100,"t":1733300000000,"id":"short"}', "id: String should"),
        (b'{"s":"AAPL","p":187.5,"v":100,"t":1733300000000,"rt":null}', "rt: Input should be"),
        (b'{"s":"AAPL","p":187.5,"v":100,"t":1733300000000,"rt":5}', "rt: Input should be"),
        (b'{"type":"trade","data":[{"s":"AAPL","p":1,"v":1,"t":1733300000000}]}', "s: Field"),
        (b'[{"s":"AAPL","p":187.5,"v":100,"t":1733300000000}]', "Input should be an object"),
        (b"AAPL,187.5,100,1733300000000", "Invalid JSON"),
    ],
    ids=[
        "negative-price",
        "no-time",
        "time-in-seconds",
        "null-id",
        "short-id",
        "null-rt",
        "rt-out-of-range",
        "a-whole-frame",
        "an-array",
        "csv",
    ],
)
def test_what_is_not_a_valid_trade_stays_a_trade_error_with_the_same_reason(
    data: bytes, reason: str
) -> None:
    # GIVEN a record that no stamp can make a trade WHEN decoded with an arrival time
    with pytest.raises(TradeError) as error:
        Trade.from_record(data, received_ms=ARRIVAL_MS)

    # THEN it is refused as it always was: same reason as without one, not as missing a stamp
    assert not isinstance(error.value, ReceiveTimeMissingError)
    assert reason in str(error.value)
    with pytest.raises(TradeError) as without:
        Trade.from_record(data)
    assert str(without.value) == str(error.value)


def test_an_arrival_time_out_of_range_is_refused() -> None:
    # GIVEN a plain trade and an arrival time in seconds (a unit error) WHEN decoded
    with pytest.raises(TradeError, match="rt: Input should be greater"):
        Trade.from_record(PLAIN, received_ms=1_733_300_000)


symbols = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 .:_\-/^=&]{0,12}", fullmatch=True)
numbers = st.one_of(
    st.floats(min_value=1e-7, max_value=1e12, allow_nan=False, allow_infinity=False),
    st.integers(min_value=1, max_value=10**9),
    st.decimals(min_value="0.0001", max_value=100_000, places=4).map(float),
)
finnhub_trades = st.fixed_dictionaries(
    {
        "s": symbols,
        "p": numbers,
        "v": st.one_of(st.just(0), numbers),
        "t": st.integers(min_value=MIN_EPOCH_MS, max_value=MAX_EPOCH_MS),
    },
    optional={
        "c": st.one_of(st.none(), st.lists(st.text(min_size=1, max_size=6), max_size=3)),
        "ingested_at": st.text(max_size=30),
    },
)


@settings(max_examples=300, deadline=None)
@given(finnhub_trades, st.integers(min_value=MIN_EPOCH_MS, max_value=MAX_EPOCH_MS))
def test_any_plain_trade_decodes_to_what_the_edge_would_have_put(
    trade: dict[str, Any], received: int
) -> None:
    # GIVEN any Finnhub trade object, as another producer writes it (json.dumps, extras and all)
    data = json.dumps(trade).encode()

    # WHEN a consumer decodes it THEN it is the edge's record of it: same id, same bytes
    decoded = Trade.from_record(data, received_ms=received)
    expected = edge(data, received)
    assert decoded == expected
    assert decoded.to_record() == expected.to_record()
    # AND the id is stamp()'s for the raw trade validated from the record's JSON as well
    assert decoded.id == stamp([RawTrade.model_validate_json(data)])[0].id


# --- the consumers ----------------------------------------------------------------------------


def test_the_hotstore_takes_rt_from_the_kinesis_arrival_timestamp() -> None:
    # GIVEN a plain trade that reached the stream at 1733300000.412 s WHEN the hotstore decodes it
    trade = decode_record(kinesis_ref(PLAIN, 1_733_300_000.412))

    # THEN rt is that instant in ms (rounded, not truncated: .412 s is 411.99... in binary)
    assert trade == edge(PLAIN, ARRIVAL_MS)


def test_the_hotstore_still_classifies_poison_by_reason() -> None:
    # GIVEN records no stamp can make trades WHEN the hotstore decodes them
    codes = []
    for data in (b"AAPL,187.5,100,1733300000000", b'{"s":"AAPL","p":-1,"v":1,"t":1733300000000}'):
        with pytest.raises(PoisonRecordError) as error:
            decode_record(kinesis_ref(data))
        codes.append(error.value.code)

    # THEN they are poison with today's codes
    assert codes == [INVALID_JSON, INVALID_TRADE]


def test_the_hotstore_refuses_an_arrival_time_it_cannot_take_as_rt() -> None:
    # GIVEN a hand-written event whose arrival is in ms where seconds belong
    with pytest.raises(PoisonRecordError) as error:
        decode_record(kinesis_ref(PLAIN, float(ARRIVAL_MS)))

    # THEN the plain trade is an invalid trade, saying it is rt that is wrong
    assert error.value.code == INVALID_TRADE
    assert error.value.message.startswith("rt: ")


def test_enrich_takes_rt_from_the_firehose_arrival_timestamp() -> None:
    # GIVEN a plain trade whose Firehose record arrived at ARRIVAL_MS WHEN enrich decodes it
    trade = enrich_records.decode_trade(firehose_record(PLAIN))

    # THEN it is the edge's trade with that receive time, the same the hot store gets
    assert trade == edge(PLAIN, ARRIVAL_MS) == decode_record(kinesis_ref(PLAIN))


def test_enrich_without_an_arrival_time_refuses_a_record_without_rt() -> None:
    # GIVEN a hand-written record with no approximateArrivalTimestamp
    with pytest.raises(TradeError, match=r"rt: Field required.*no approximateArrivalTimestamp"):
        enrich_records.decode_trade(firehose_record(PLAIN, arrival_ms=None))

    # AND one that has rt decodes all the same (its id derived)
    original = edge(PLAIN, 1_733_300_000_401)
    data = original.to_record().replace(f',"id":"{original.id}"'.encode(), b"")
    assert enrich_records.decode_trade(firehose_record(data, arrival_ms=None)) == original


def test_the_lake_line_of_a_plain_trade_is_the_edge_records() -> None:
    # GIVEN a plain trade with extra fields, decoded by enrich
    data = PLAIN[:-1] + b',"ingested_at":"2024-12-04T08:13:20.004Z"}'
    trade = enrich_records.decode_trade(firehose_record(data))

    # WHEN made a lake line THEN it holds the trade's fields, the derived id and rt, no extras
    line = json.loads(enrich_records.lake_line(trade, enrich_records.Prediction(1.0, "v1")))
    assert line == {
        **json.loads(edge(PLAIN, ARRIVAL_MS).to_record()),
        "prediction": 1.0,
        "model_version": "v1",
    }
    assert line["id"] == PLAIN_ID


# --- the sample events ------------------------------------------------------------------------


def test_the_samples_hold_the_same_six_records_as_each_consumer_receives_them() -> None:
    # GIVEN the two plain-Finnhub samples
    kinesis = _event("kinesis_hotstore_plain_finnhub.json")["Records"]
    firehose = _event("firehose_enrich_plain_finnhub.json")["records"]

    # WHEN each record is decoded by its consumer
    hot = [decode_record(RecordRef.from_event_record(raw)) for raw in kinesis]
    lake = [enrich_records.decode_trade(KinesisFirehoseRecord(raw)) for raw in firehose]

    # THEN both consumers see the same trades, and none is poison
    assert hot == lake
    # AND the arrival times are the same instant in each event's unit
    assert [round(r["kinesis"]["approximateArrivalTimestamp"] * 1000) for r in kinesis] == [
        r["approximateArrivalTimestamp"] for r in firehose
    ]
    # AND the records are what the sample says: plain, plain with an extra field, plain without
    # conditions, id without rt, rt without id, and the first put again; 5 distinct trades
    datas = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in kinesis]
    assert ["id" in d or "rt" in d for d in datas] == [False, False, False, True, True, False]
    assert "ingested_at" in datas[1]
    assert "c" not in datas[2]
    assert hot[0].id == hot[5].id == PLAIN_ID
    assert hot[0].rt < hot[5].rt  # the second put arrived later
    assert len({t.id for t in hot}) == 5
    # AND the derived ids are the edge's for these trades
    for trade, data in zip(hot[:3], datas[:3], strict=True):
        assert trade == edge(json.dumps(data).encode(), trade.rt)
