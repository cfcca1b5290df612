"""docker-compose.yml's own services, as host processes, against real LocalStack: the compose path
tested for real, not only parsed (tests/infra/test_compose.py checks the file statically).

Every service but ``localstack`` is taken from the file (command, environment, dependencies and
their conditions, health checks; tests/support/compose.py says what stands in for the container),
started in compose's order, and the counts must reconcile exactly end to end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import compose
from tests.support.localstack import COMPOSE_FILE, LocalStack
from tradestream import aws, readback
from tradestream.readback import LakeCounts, count_lake

# The run itself takes about 1.5 minutes; the first test of a machine also builds LocalStack's
# cached venv (about 2.5 minutes).
pytestmark = [pytest.mark.localstack, pytest.mark.timeout(600)]

SYNTHETIC = 3_000
T0 = 1_700_000_000_000
POSTED = [{"s": "NVDA", "p": 400.5 + i, "v": 10 + i, "t": T0 + i} for i in range(3)]
EXPECTED = SYNTHETIC + len(POSTED)
DESTROY = ["tradestream", "destroy", "--target", "localstack", "--delete-data"]


@pytest.fixture
def services(
    localstack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[compose.ComposeRun]:
    # Interpolated with no variables: compose's defaults, whatever the caller's shell holds.
    specs = compose.load(COMPOSE_FILE, variables={})
    run = compose.ComposeRun(
        specs,
        tmp_path,
        external={"localstack": localstack.url},
        # A bounded producer (the settings' own knob), unthrottled: compose's 50/s would take a
        # minute for what the tier needs.
        environment={"producer": {"MAX_TRADES": str(SYNTHETIC), "SYNTHETIC_RATE": "0"}},
    )
    # This process reads the sinks back with the deploy service's endpoint and credentials.
    for key, value in run.run_environment("deploy").items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    if localstack.process is None:
        # A LocalStack that was running already may hold an earlier run's stacks and items.
        run.run_once("deploy", DESTROY)
    with run:
        yield run


def ready_line(run: compose.ComposeRun) -> dict[str, Any]:
    """The runtime's ready line, from its ready file (the path its command names, in its /tmp)."""
    ready_file = run.tmp("runtime") / "tradestream-runtime.ready"
    line: dict[str, Any] = json.loads(ready_file.read_text())
    return line


def reconciled(table: str, bucket: str) -> tuple[int, LakeCounts]:
    return readback.count_items(table), count_lake(bucket)


def test_compose_services_reconcile_exactly_against_localstack(
    services: compose.ComposeRun,
) -> None:
    # GIVEN compose's services up in compose's order: deploy ran to completion, the model and
    # the runtime are healthy by their images' health checks, ingest and the producer started
    services.up()
    ready = ready_line(services)
    api_key = services.services["ingest"].environment["INGEST_API_KEYS"].split(",")[0]

    # WHEN the ingest API takes three trades over HTTP ...
    ingest = services.url("ingest", 8000)
    assert compose.wait_until(lambda: _healthy(ingest), 30), services.log_tail("ingest")
    response = httpx.post(
        f"{ingest}/v1/trades", json=POSTED, headers={"X-API-Key": api_key}, timeout=30
    )
    assert response.status_code == 202, response.text
    # ... and the producer publishes its fixed number of synthetic trades and exits
    assert services.wait_exit("producer", 120) == 0, services.log_tail("producer")
    assert _final_counts(services.log_tail("producer"))["distinct"] == SYNTHETIC

    # THEN every trade reaches DynamoDB once and the lake once, each with a prediction
    table, bucket = ready["table"], ready["bucket"]
    arrived = compose.wait_until(
        lambda: _complete(*reconciled(table, bucket)), timeout_s=120, interval_s=2
    )
    items, lake = reconciled(table, bucket)
    assert arrived, (items, lake, services.log_tail("runtime"))
    assert items == EXPECTED
    assert lake.distinct_ids == EXPECTED
    assert lake.predicted == EXPECTED
    assert lake.errors == 0
    # AND nothing went to the hotstore's dead-letter queue
    assert readback.queue_depth(ready["dlq_url"]) == 0
    # AND the dashboard service shows the same counts, the runtime's lag per shard (scraped from
    # its metrics) and every component it watches up
    snapshot = _dashboard_snapshot(services)
    assert snapshot["stages"]["hotstore"] == EXPECTED
    assert snapshot["stages"]["lake"] == EXPECTED
    assert snapshot["stages"]["ingest"] == len(POSTED)
    # (the producer's own counter is not asserted: with SYNTHETIC_RATE=0 it has sent its trades
    # and exited before the dashboard's first read, and a dashboard knows what it has watched)
    assert set(snapshot["lag_ms"]) == {"hotstore", "lake"}
    assert snapshot["lag_ms"]["hotstore"]  # one figure per shard
    assert snapshot["lag_ms"]["lake"]
    down = [name for name, up in snapshot["health"].items() if not up]
    assert down in ([], ["producer"]), snapshot["health"]  # the producer has exited by now

    # WHEN the stack is torn down as a user would (`docker compose run deploy tradestream
    # destroy`), while the services still run
    report = json.loads(services.run_once("deploy", DESTROY).splitlines()[-1])
    # THEN every stack and the lake bucket are gone
    assert set(report.values()) == {"deleted"}, report
    stacks = aws.client("cloudformation").list_stacks()["StackSummaries"]
    assert {s["StackStatus"] for s in stacks if s["StackName"] in report} <= {"DELETE_COMPLETE"}
    # AND the runtime says once per consumer that its stream is gone, instead of retrying with a
    # traceback per poll
    assert compose.wait_until(lambda: _said_gone(services) >= 2, 30), services.log_tail("runtime")
    time.sleep(3)  # some fifteen polls per shard at the runtime's 0.2 s
    assert _said_gone(services) == 2, services.log_tail("runtime")
    assert "Traceback" not in services.log_tail("runtime", 500)


def _dashboard_snapshot(services: compose.ComposeRun) -> dict[str, Any]:
    """The dashboard's snapshot once its (budgeted) reads have caught up with the sinks."""
    url = f"{services.url('dashboard', 8050)}/api/snapshot"
    snapshot: dict[str, Any] = {}

    def caught_up() -> bool:
        nonlocal snapshot
        snapshot = httpx.get(url, timeout=30).json()
        stages = snapshot["stages"]
        return bool(stages.get("hotstore") == EXPECTED and stages.get("lake") == EXPECTED)

    assert compose.wait_until(caught_up, 60, interval_s=1), (
        snapshot,
        services.log_tail("dashboard"),
    )
    return snapshot


def _said_gone(services: compose.ComposeRun) -> int:
    return services.log_tail("runtime", 500).count("no longer exists")


def _complete(items: int, lake: LakeCounts) -> bool:
    return items >= EXPECTED and lake.predicted >= EXPECTED


def _final_counts(log: str) -> dict[str, Any]:
    # The producer's last stdout line is its counts; its JSON logs (stderr) share the log file.
    for line in reversed(log.splitlines()):
        if line.startswith("{") and '"distinct"' in line:
            counts: dict[str, Any] = json.loads(line)
            return counts
    raise AssertionError(f"the producer printed no counts:\n{log}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
