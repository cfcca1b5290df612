"""Property-based: requests generated from the service's own OpenAPI document, sent to the service
under uvicorn on loopback (backed by moto server), never get a server error and always get an
answer the document describes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from ingest_api import IngestSettings, RunningServer, create_app, start_in_thread
from ingest_api.errors import InvalidQueryError
from ingest_api.parse import NDJSON
from ingest_api.reads import epoch_ms
from tests.support.hotstore import create_table_and_dlq
from tradestream import aws
from tradestream.trade import MAX_EPOCH_MS, now_ms

KEY = "schemathesis-key-0123456789"


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_: Any, value: Any) -> bytes:
    # The document describes NDJSON as a string (one trade per line); send it as generated.
    return value.encode() if isinstance(value, str) else str(value).encode()


# The document the app serves, built without network (keys given, no AWS call); the test checks
# that the running server serves exactly this document. (schemathesis's lazy `from_fixture` loader
# does not work with pytest 9, hence an eager schema.)
SETTINGS = {"ingest_api_keys": KEY, "rate_limit_burst": 10_000}
# Schema-violating bodies must be refused; 413 is one of the documented refusals (a request of more
# than MAX_TRADES_PER_REQUEST trades), which schemathesis does not expect by default.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "413", "415", "422", "429"]
            }
        }
    }
)
schema = schemathesis.openapi.from_dict(
    create_app(IngestSettings(**SETTINGS)).openapi(), config=CONFIG
)


def _keep_times_out_of_the_future(body: Any) -> None:
    """ "Not later than now plus the allowed clock skew" is a rule JSON Schema cannot state (the
    document says it in the field's description), so a generated time in the schema's range but
    ahead of the clock is a schema-valid trade that the service rightly refuses. (Done on the case,
    not in a map_body hook, because schemathesis's coverage phase bypasses those hooks.)"""
    now = now_ms()
    for trade in body if isinstance(body, list) else [body]:
        t = trade.get("t") if isinstance(trade, dict) else None
        if type(t) in (int, float) and now < t <= MAX_EPOCH_MS:
            trade["t"] = now


def _order_the_range(query: Any) -> None:
    """ "from not after to" relates two parameters, which JSON Schema cannot state (the document
    says it in the 422's description): a generated pair in the wrong order is put in order."""
    if not isinstance(query, dict) or not {"from", "to"} <= set(query):
        return
    try:
        ends = [epoch_ms(str(query[end]), default=0, name=end) for end in ("from", "to")]
    except InvalidQueryError:
        return  # not a time at all: the service must refuse it, and that is checked
    if ends[0] > ends[1]:
        query["from"], query["to"] = query["to"], query["from"]


@pytest.fixture
def server(aws_env: str, unique: str) -> Iterator[RunningServer]:
    stream = f"schema-{unique}"
    aws.client("kinesis").create_stream(StreamName=stream, ShardCount=1)
    table, _ = create_table_and_dlq(aws.client("dynamodb"), aws.client("sqs"), f"schema-{unique}")
    settings = IngestSettings(stream_name=stream, table_name=table, **SETTINGS)
    with start_in_thread(settings) as running:
        assert httpx.get(f"{running.url}/openapi.json").json() == schema.raw_schema
        yield running


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_generated_requests_get_no_server_error_and_documented_answers(
    case: Any, server: RunningServer
) -> None:
    # NDJSON is documented as a string: its lines' contents are beyond JSON Schema, so a
    # schema-valid string may well be refused (400/422); every other check still applies to it.
    # Likewise a cursor: only one the service issued is valid, whatever string the schema allows.
    query = case.query if isinstance(case.query, dict) else {}
    opaque = case.media_type == NDJSON or "cursor" in query
    excluded = [positive_data_acceptance] if opaque else []
    _keep_times_out_of_the_future(case.body)
    _order_the_range(case.query)
    case.call_and_validate(
        base_url=server.url, headers={"X-API-Key": KEY}, excluded_checks=excluded
    )
