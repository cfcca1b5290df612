"""ProducerSettings: UPPER_CASE environment, safe defaults, unsafe values refused, key hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from producer.settings import ProducerSettings
from tradestream.aggregation import AGGREGATION_DEFAULT

SECRET = "sk-live-Zq9+/x=1"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ProducerSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults_without_a_key_run_the_synthetic_source() -> None:
    # GIVEN no environment WHEN settings load
    settings = ProducerSettings()
    # THEN the defaults are safe ones
    assert settings.source == "synthetic"
    assert settings.stream_name == "trades"
    assert settings.symbols == ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")
    assert settings.finnhub_url == "wss://ws.finnhub.io"
    assert (settings.batch_max_records, settings.batch_max_bytes) == (500, 5 * 1024 * 1024)
    assert settings.shutdown_deadline_seconds == 25
    assert settings.max_trades == 0
    # One default for both producing paths, flipped once the consumers deaggregate
    assert settings.aggregation is AGGREGATION_DEFAULT
    assert settings.aggregation_max_bytes == 51_200


def test_upper_case_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN UPPER_CASE variables, a comma-separated symbol list with spaces, blanks and a repeat
    monkeypatch.setenv("FINNHUB_API_KEY", SECRET)
    monkeypatch.setenv("SYMBOLS", " AAPL, BINANCE:BTCUSDT,,AAPL ,OANDA:EUR_USD")
    monkeypatch.setenv("STREAM_NAME", "trades-dev")
    monkeypatch.setenv("BATCH_MAX_RECORDS", "250")
    monkeypatch.setenv("REPLAY_PACE", "recorded")
    # WHEN settings load
    settings = ProducerSettings()
    # THEN a key alone selects Finnhub, and the list is cleaned up in order
    assert settings.source == "finnhub"
    assert settings.symbols == ("AAPL", "BINANCE:BTCUSDT", "OANDA:EUR_USD")
    assert (settings.stream_name, settings.batch_max_records) == ("trades-dev", 250)
    assert settings.replay_pace == "recorded"
    assert settings.finnhub_api_key is not None
    assert settings.finnhub_api_key.get_secret_value() == SECRET


def test_an_empty_key_counts_as_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINNHUB_API_KEY", "")
    assert ProducerSettings().source == "synthetic"
    assert ProducerSettings(finnhub_api_key=SecretStr("  ")).source == "synthetic"


def test_replay_needs_an_existing_file(tmp_path: Path) -> None:
    recording = tmp_path / "session.ndjson"
    recording.write_text("")
    assert ProducerSettings(source="replay", replay_file=recording).replay_file == recording
    with pytest.raises(ValidationError, match="REPLAY_FILE does not exist"):
        ProducerSettings(source="replay", replay_file=tmp_path / "missing.ndjson")
    with pytest.raises(ValidationError, match="needs REPLAY_FILE"):
        ProducerSettings(source="replay")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SOURCE": "finnhub"}, "needs FINNHUB_API_KEY"),
        ({"SOURCE": "kafka"}, "source"),
        ({"BATCH_MAX_RECORDS": "501"}, "batch_max_records"),
        ({"BATCH_MAX_RECORDS": "0"}, "batch_max_records"),
        ({"BATCH_MAX_BYTES": str(5 * 1024 * 1024 + 1)}, "batch_max_bytes"),
        ({"BATCH_MAX_BYTES": str(1024 * 1024 - 1)}, "batch_max_bytes"),
        ({"BUFFER_MAX_RECORDS": "0"}, "buffer_max_records"),
        ({"MAX_PUT_ATTEMPTS": "0"}, "max_put_attempts"),
        ({"SHUTDOWN_DEADLINE_SECONDS": "120"}, "shutdown_deadline_seconds"),
        ({"SHUTDOWN_DEADLINE_SECONDS": "0"}, "shutdown_deadline_seconds"),
        ({"SYNTHETIC_RATE": "-1"}, "synthetic_rate"),
        ({"MAX_TRADES": "-5"}, "max_trades"),
        ({"LINGER_MS": "60000"}, "linger_ms"),
        ({"AGGREGATION_MAX_BYTES": str(1024 * 1024 + 1)}, "aggregation_max_bytes"),
        ({"AGGREGATION_MAX_BYTES": "1023"}, "aggregation_max_bytes"),
        ({"AGGREGATION": "sometimes"}, "aggregation"),
        ({"WATCHDOG_SECONDS": "0"}, "watchdog_seconds"),
        ({"FINNHUB_URL": "ws://ws.finnhub.io"}, "must use wss://"),
        ({"FINNHUB_URL": "https://ws.finnhub.io"}, "ws:// or wss://"),
        ({"FINNHUB_URL": "wss://ws.finnhub.io?token=abc"}, "must not carry a query"),
        ({"SYMBOLS": " , "}, "at least one symbol"),
        ({"SYMBOLS": "AAPL,bad symbol!"}, "invalid symbols: bad symbol!"),
        ({"SYMBOLS": ",".join(f"S{i}" for i in range(51))}, "Finnhub allows 50"),
        ({"STREAM_NAME": "no spaces"}, "stream_name"),
        (
            {"RECONNECT_BACKOFF_BASE_SECONDS": "5", "RECONNECT_BACKOFF_MAX_SECONDS": "1"},
            "RECONNECT_BACKOFF_MAX_SECONDS must be >= the base",
        ),
        (
            {"PUT_BACKOFF_BASE_SECONDS": "2", "PUT_BACKOFF_MAX_SECONDS": "1"},
            "PUT_BACKOFF_MAX_SECONDS must be >=",
        ),
    ],
)
def test_unsafe_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    # GIVEN an unsafe value in the environment
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # WHEN settings load THEN they are refused with a message naming the problem
    with pytest.raises(ValidationError, match=message):
        ProducerSettings()


def test_plain_ws_is_allowed_on_loopback_only() -> None:
    assert ProducerSettings(finnhub_url="ws://127.0.0.1:8765").finnhub_url.startswith("ws://")
    assert ProducerSettings(finnhub_url="ws://localhost:1").finnhub_url == "ws://localhost:1"
    with pytest.raises(ValidationError):
        ProducerSettings(finnhub_url="ws://10.0.0.1:8765")


def test_the_key_never_shows_in_repr_dumps_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a key in the environment
    monkeypatch.setenv("FINNHUB_API_KEY", SECRET)
    settings = ProducerSettings()
    # WHEN the settings are printed or dumped THEN the key is masked
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())
    assert SECRET not in settings.model_dump_json()
    # AND a validation error, even one about the settings as a whole, does not echo it
    monkeypatch.setenv("SOURCE", "replay")
    monkeypatch.setenv("BATCH_MAX_RECORDS", "9999")
    with pytest.raises(ValidationError) as error:
        ProducerSettings()
    assert SECRET not in str(error.value)
    assert SECRET not in repr(error.value.errors())
