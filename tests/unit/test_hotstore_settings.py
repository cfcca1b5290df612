"""Hotstore settings: read from the environment, with unsafe values refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lambdas.hotstore.settings import HotstoreSettings
from tradestream.retry import Backoff

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/stock_trades-dlq"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TABLE_NAME",
        "DLQ_URL",
        "TTL_DAYS",
        "MAX_WRITE_ATTEMPTS",
        "WRITE_BACKOFF_BASE_SECONDS",
        "WRITE_BACKOFF_MAX_SECONDS",
        "MAX_DLQ_ATTEMPTS",
        "RETRY_RESERVE_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_reads_the_template_environment_and_defaults_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the variables the template sets
    monkeypatch.setenv("TABLE_NAME", "stock_trades")
    monkeypatch.setenv("DLQ_URL", QUEUE)
    monkeypatch.setenv("TTL_DAYS", "7")

    # WHEN settings are read
    settings = HotstoreSettings()  # type: ignore[call-arg]

    # THEN they are used, with defaults whose worst-case backoff fits well inside 60 s
    assert (settings.table_name, settings.dlq_url, settings.ttl_days) == ("stock_trades", QUEUE, 7)
    assert settings.max_write_attempts == 8
    backoff = Backoff(settings.write_backoff_base_seconds, settings.write_backoff_max_seconds)
    assert backoff.worst_case(settings.max_write_attempts - 1) == pytest.approx(5.15)


def test_table_and_queue_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no environment WHEN settings are read THEN both required names are reported
    with pytest.raises(ValidationError) as error:
        HotstoreSettings()  # type: ignore[call-arg]
    assert {e["loc"][0] for e in error.value.errors()} == {"table_name", "dlq_url"}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"ttl_days": 0}, "ttl_days"),
        ({"ttl_days": -5}, "ttl_days"),
        ({"ttl_days": 3651}, "ttl_days"),
        ({"table_name": "a"}, "table_name"),
        ({"table_name": "trades;drop"}, "table_name"),
        ({"dlq_url": "stock_trades-dlq"}, "dlq_url"),
        ({"dlq_url": "ftp://sqs.us-east-1.amazonaws.com/1/q"}, "dlq_url"),
        ({"dlq_url": QUEUE + ".fifo"}, "dlq_url"),
        ({"dlq_url": QUEUE + "?x=1"}, "dlq_url"),
        ({"dlq_url": "https://user:pw@sqs.us-east-1.amazonaws.com/1/q"}, "dlq_url"),
        ({"max_write_attempts": 0}, "max_write_attempts"),
        ({"max_write_attempts": 21}, "max_write_attempts"),
        ({"write_backoff_base_seconds": 0}, "write_backoff_base_seconds"),
        (
            {"write_backoff_base_seconds": 2, "write_backoff_max_seconds": 1},
            "write_backoff_max_seconds",
        ),
        ({"max_dlq_attempts": 0}, "max_dlq_attempts"),
        ({"retry_reserve_seconds": -1}, "retry_reserve_seconds"),
    ],
)
def test_unsafe_values_are_refused(override: dict[str, Any], field: str) -> None:
    # GIVEN otherwise valid settings with one unsafe value
    values: dict[str, Any] = {"table_name": "stock_trades", "dlq_url": QUEUE, **override}

    # WHEN they are validated THEN exactly that field is refused
    with pytest.raises(ValidationError) as error:
        HotstoreSettings(**values)
    assert [e["loc"][0] for e in error.value.errors()] == [field]


def test_local_queue_urls_are_accepted() -> None:
    # GIVEN queue URLs as moto and LocalStack give them WHEN validated THEN they are accepted
    for url in (
        "http://127.0.0.1:5000/123456789012/stock_trades-dlq",
        "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/stock_trades-dlq",
    ):
        assert HotstoreSettings(table_name="t_1", dlq_url=url).dlq_url == url
