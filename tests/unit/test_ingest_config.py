"""Settings, API keys and the per-key token bucket (no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from ingest_api.keys import ApiKeys, ApiKeysError, load_api_keys, parse_secret
from ingest_api.ratelimit import RateLimiter
from ingest_api.settings import IngestSettings

KEY_A = "a" * 16
KEY_B = "b-secret-key-0123456789"


def test_settings_come_from_upper_case_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the environment a container would have
    monkeypatch.setenv("STREAM_NAME", "trades-prod")
    monkeypatch.setenv("INGEST_API_KEYS", f"{KEY_A},{KEY_B}")
    monkeypatch.setenv("MAX_TRADES_PER_REQUEST", "200")
    monkeypatch.setenv("LINGER_MS", "2.5")
    # WHEN settings are read
    settings = IngestSettings()
    # THEN they hold those values and the keys are secret in every rendering
    assert settings.stream_name == "trades-prod"
    assert settings.max_trades_per_request == 200
    assert settings.linger_ms == 2.5
    assert settings.max_body_bytes == 1024 * 1024
    assert KEY_A not in repr(settings)
    assert KEY_A not in str(settings.model_dump())


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # no keys at all
        {"ingest_api_keys": KEY_A, "max_body_bytes": 100 * 1024 * 1024},
        {"ingest_api_keys": KEY_A, "max_trades_per_request": 600, "max_buffered_records": 500},
        {"ingest_api_keys": KEY_A, "put_timeout_seconds": 120},
        {"ingest_api_keys": KEY_A, "rate_limit_per_second": 0},
        {"ingest_api_keys": KEY_A, "put_backoff_base_ms": 500, "put_backoff_max_ms": 100},
        {"ingest_api_keys": KEY_A, "stream_name": "no spaces allowed"},
        {"ingest_api_keys": KEY_A, "aggregation_max_bytes": 1024 * 1024 + 1},
        {"ingest_api_keys": KEY_A, "aggregation_max_bytes": 0},
    ],
)
def test_unsafe_settings_are_refused(
    overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INGEST_API_KEYS", raising=False)
    monkeypatch.delenv("INGEST_API_KEYS_SECRET", raising=False)
    with pytest.raises(ValidationError):
        IngestSettings(**overrides)


def test_keys_from_env_and_secret_are_merged_and_named_without_revealing_them() -> None:
    # GIVEN one key in the environment and two named keys in a Secrets Manager secret
    class Secrets:
        def get_secret_value(self, SecretId: str) -> dict[str, str]:
            assert SecretId == "ingest/keys"
            return {"SecretString": json.dumps({"desk-1": KEY_B, "desk-2": "c" * 20})}

    settings = IngestSettings(ingest_api_keys=KEY_A, ingest_api_keys_secret="ingest/keys")
    # WHEN they are loaded
    keys = load_api_keys(settings, secrets_client=Secrets())
    # THEN each key identifies its caller by name, and nothing else matches
    assert len(keys) == 3
    assert keys.identify(KEY_B) == "desk-1"
    assert keys.identify("c" * 20) == "desk-2"
    assert (keys.identify(KEY_A) or "").startswith("key-")
    assert keys.identify(KEY_A + "x") is None
    assert keys.identify("") is None
    assert keys.identify(None) is None
    assert KEY_B not in repr(keys)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (json.dumps([KEY_A, KEY_B]), [(None, KEY_A), (None, KEY_B)]),
        (f"{KEY_A}, {KEY_B}", [(None, KEY_A), (None, KEY_B)]),
        (json.dumps({"x": KEY_A}), [("x", KEY_A)]),
    ],
)
def test_a_secret_may_be_an_array_a_list_or_named_keys(
    secret: str, expected: list[tuple[str | None, str]]
) -> None:
    assert parse_secret(secret) == expected


@pytest.mark.parametrize(
    "pairs",
    [[(None, "short")], [(None, "has a space in it!!")], [], [("bad name!", KEY_A)]],
)
def test_weak_or_malformed_keys_are_refused(pairs: list[tuple[str | None, str]]) -> None:
    with pytest.raises(ApiKeysError) as caught:
        ApiKeys.from_pairs(pairs)
    for _, key in pairs:
        assert key not in str(caught.value)


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    # GIVEN a bucket of 3 refilling at 2 per second, on a clock the test controls
    now = [100.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    # WHEN 4 requests arrive at once THEN 3 pass and the 4th must wait half a second
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)
    # AND another key has its own bucket
    assert limiter.acquire("other") == 0.0
    # AND after 0.5 s one more request passes, and the bucket never exceeds its burst
    now[0] += 0.5
    assert limiter.acquire("k") == 0.0
    now[0] += 100
    assert [limiter.acquire("k") == 0.0 for _ in range(4)] == [True, True, True, False]
