"""The direct PutRecords body and proxy choice (the calls themselves: functional tests)."""

from __future__ import annotations

import base64
import json

import pytest

from ingest_api.put_records import _body, _proxy_for


def test_the_body_is_the_json_the_sdk_would_send() -> None:
    # GIVEN records with binary data and keys that need escaping, one key repeated
    records = [
        {"Data": b"\xff\x00{}", "PartitionKey": 'A"B\\'},
        {"Data": b"", "PartitionKey": "\u00e9t\u00e9"},
        {"Data": b"x" * 100, "PartitionKey": 'A"B\\'},
    ]
    # WHEN the body is built THEN it decodes to the stream and the base64 of each record, in order
    assert json.loads(_body('my "stream"', records)) == {
        "StreamName": 'my "stream"',
        "Records": [
            {"Data": base64.b64encode(r["Data"]).decode(), "PartitionKey": r["PartitionKey"]}
            for r in records
        ],
    }


def test_the_proxy_comes_from_the_environment_unless_the_host_is_excluded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = "https://kinesis.eu-west-1.amazonaws.com/"
    assert _proxy_for(url) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _proxy_for(url) == "http://proxy.internal:3128"
    assert _proxy_for("http://127.0.0.1:4566/") is None  # only https is proxied
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    assert _proxy_for(url) is None
