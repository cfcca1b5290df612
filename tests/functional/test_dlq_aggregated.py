"""`tradestream dlq list / redrive` on what KPL aggregates leave in the DLQ, over real HTTP against
moto server: poison user records the hotstore sent alone from inside an aggregate (one small, one
too large for SQS, read back by opening its aggregate), a corrupt aggregate, and a batch of
aggregates the mapping gave up on. Poison user records go back as plain records under their own
keys; aggregates read back by sequence number go back as they are, still aggregates."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass

import pytest

from lambdas.hotstore import handler as hotstore_handler
from tests.functional.test_dlq_tool import (
    FAILING_BATCH,
    GOOD_TRADE,
    LARGE,
    NOT_JSON,
    WAIT_S,
    Put,
    given_up_batch,
    hotstore_environment,
    listed,
    put,
    redriven,
    run_mapping,
    stream_records,
    tool_environment,
    wait_for_depth,
)
from tests.support.kpl import corrupt_aggregate, ours
from tradestream.local.hot_path import DeployedStack, deploy
from tradestream.readback import queue_depth

# A poison user record (1) and one too large for an SQS message (2) inside one aggregate.
POISONED = [("AAPL", GOOD_TRADE), ("TSLA", NOT_JSON), ("MSFT", LARGE)]


@dataclass(frozen=True)
class Filled:
    stack: DeployedStack
    poisoned: Put  # the aggregate holding poison
    corrupt: Put
    batch: list[Put]  # an aggregate and a plain record the mapping gave up on


@pytest.fixture
def filled(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Filled:
    stack = deploy(stream_name=f"agg-{unique}", table_name=f"agg_trades-{unique}")
    hotstore_environment(stack, monkeypatch)

    # GIVEN an aggregate holding two poison user records, and a corrupt aggregate, handled by the
    # real hotstore function
    key, data = ours(POISONED)
    poisoned, corrupt = put(stack, [(data, key), (corrupt_aggregate(), "AAPL")])
    run_mapping(stack, hotstore_handler.handler, lambda m: m.wait_caught_up(WAIT_S))
    wait_for_depth(stack, 3)

    # AND a batch of an aggregate and a plain record on shard 1 that a broken handler failed
    # until the mapping gave up on it
    amzn_key, amzn = ours([("AMZN", data) for data in FAILING_BATCH[:2]])
    batch = given_up_batch(stack, [(amzn, amzn_key), (FAILING_BATCH[2], "AMZN")], 4)

    tool_environment(stack, monkeypatch)
    return Filled(stack, poisoned, corrupt, batch)


def test_list_shows_each_poison_user_record_at_its_sub_sequence_number(filled: Filled) -> None:
    # WHEN the DLQ is listed as JSON
    messages = listed()

    # THEN the aggregate's poison user records are two messages at its sequence number, each
    # with its sub-sequence number, its own key and its own payload
    hotstore = [m for m in messages if m["kind"] == "hotstore"]
    inside = sorted(
        (m for m in hotstore if m["sequence_number"] == filled.poisoned.sequence_number),
        key=lambda m: m["sub_sequence_number"],
    )
    assert [(m["sub_sequence_number"], m["partition_key"]) for m in inside] == [
        (1, "TSLA"),
        (2, "MSFT"),
    ]
    assert (inside[0]["payload"], inside[0]["payload_bytes"]) == (NOT_JSON.decode(), len(NOT_JSON))
    assert (inside[1]["data_omitted"], inside[1]["payload_bytes"]) == (True, len(LARGE))
    assert inside[1]["data_sha256"] == hashlib.sha256(LARGE).hexdigest()
    # AND the corrupt aggregate is one message with its bytes, at no sub-sequence number
    (corrupt,) = [m for m in hotstore if m["reason"] == "KplAggregateCorrupt"]
    assert corrupt["sequence_number"] == filled.corrupt.sequence_number
    assert corrupt["sub_sequence_number"] is None
    assert corrupt["payload"] == base64.b64encode(corrupt_aggregate()).decode()
    # AND the failed batch counts its Kinesis records: the aggregate once
    (batch,) = [m for m in messages if m["kind"] == "on-failure"]
    assert batch["batch_size"] == 2
    assert len(messages) == 4


def test_redrive_puts_poison_user_records_back_plain_and_aggregates_back_as_they_are(
    filled: Filled,
) -> None:
    before = stream_records(filled.stack)

    # WHEN everything is redriven
    summary = redriven()

    # THEN the poison user records are back as plain records under their own keys (the large
    # one read back from inside its aggregate), and the corrupt aggregate and the failed batch
    # are back byte for byte, the batch's aggregate still one record
    added = stream_records(filled.stack) - before
    assert added == Counter(
        [
            (NOT_JSON, "TSLA"),
            (LARGE, "MSFT"),
            (corrupt_aggregate(), "AAPL"),
            *((p.data, p.key) for p in filled.batch),
        ]
    )
    # AND every message was deleted
    assert (summary["records"], summary["records_put"], summary["deleted"]) == (5, 5, 4)
    assert summary["kept"] == 0
    assert queue_depth(filled.stack.dlq_url) == 0
