"""The compose runtime SIGKILLed while the producer sends, and restarted as compose's
``restart: unless-stopped`` would: against real LocalStack nothing may be lost.

Measured before durable checkpoints (issue 12): the lake lost about half of the trades (1,459 of
3,003 ids), because the restarted Firehose emulation began at LATEST with its buffers gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.localstack.test_compose_services import (
    DESTROY,
    _final_counts,
    ready_line,
    reconciled,
)
from tests.support import compose
from tests.support.localstack import COMPOSE_FILE, LocalStack
from tradestream import readback

pytestmark = [pytest.mark.localstack, pytest.mark.timeout(600)]

TRADES = 3_000
RATE = 250  # trades/s: 12 s of trades, the runtime killed 4 s in
S3_INTERVAL_S = 2
PROCESSOR_INTERVAL_S = 1
# A restart re-sends at most what was written to S3 after a shard's oldest unfinished record was
# read: what arrived within one buffer interval of each stage, plus a second for the poll.
RESEND_BOUND = RATE * (S3_INTERVAL_S + PROCESSOR_INTERVAL_S + 1)


@pytest.fixture
def services(
    localstack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[compose.ComposeRun]:
    specs = compose.load(COMPOSE_FILE, variables={})
    # Shorter S3 buffers than compose's 10 s (deploy and runtime deploy the same parameters), so
    # the duplicate bound is tight; the lease duration stays compose's own (10 s).
    lake = {
        "LAKE_S3_INTERVAL_SECONDS": str(S3_INTERVAL_S),
        "LAKE_PROCESSOR_INTERVAL_SECONDS": str(PROCESSOR_INTERVAL_S),
    }
    run = compose.ComposeRun(
        specs,
        tmp_path,
        external={"localstack": localstack.url},
        environment={
            "producer": {"MAX_TRADES": str(TRADES), "SYNTHETIC_RATE": str(RATE)},
            "deploy": lake,
            "runtime": lake,
        },
    )
    for key, value in run.run_environment("deploy").items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    if localstack.process is None:
        run.run_once("deploy", DESTROY)
    with run:
        yield run
        # Leave LocalStack empty for the next test of the session.
        run.run_once("deploy", DESTROY)


def test_a_sigkilled_runtime_restarted_by_compose_loses_nothing(
    services: compose.ComposeRun,
) -> None:
    # GIVEN compose's services up, the producer sending 3,000 trades at 250/s
    services.up()
    ready = ready_line(services)
    time.sleep(4)

    # WHEN the runtime is SIGKILLed mid-stream and compose starts it again
    services.kill("runtime")
    services.restart("runtime")
    assert services.wait_exit("producer", 120) == 0, services.log_tail("producer")
    published = _final_counts(services.log_tail("producer"))["published"]

    # THEN every trade reaches DynamoDB and the lake, predicted, with nothing in the DLQ
    table, bucket = ready["table"], ready["bucket"]

    def complete() -> bool:
        items, lake = reconciled(table, bucket)
        return items >= TRADES and lake.predicted >= TRADES

    arrived = compose.wait_until(complete, timeout_s=180, interval_s=2)
    items, lake = reconciled(table, bucket)
    assert arrived, (items, lake, services.log_tail("runtime", 60))
    assert items == TRADES
    assert lake.distinct_ids == lake.predicted == TRADES
    assert lake.errors == 0
    assert readback.queue_depth(ready["dlq_url"]) == 0
    # AND the lake's duplicate lines beyond what the producer itself re-sent (its synthetic
    # source repeats some trades) are at most one buffer's worth
    assert lake.records - published <= RESEND_BOUND, (lake, published)
