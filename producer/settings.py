"""Settings of the producer, read from UPPER_CASE environment variables (or keyword arguments).

Unsafe values are refused at startup with a message that says what to do: batches above Kinesis'
limits, an unbounded buffer, a shutdown deadline the container platform would cut short, a Finnhub
URL that would send the API key in clear text to a remote host. Validation errors never echo the
input (``hide_input_in_errors``), so a bad setting cannot leak ``FINNHUB_API_KEY``.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tradestream.aggregation import (
    AGGREGATION_DEFAULT,
    AGGREGATION_DEFAULT_MAX_BYTES,
    AGGREGATION_MAX_MAX_BYTES,
    AGGREGATION_MIN_MAX_BYTES,
)
from tradestream.limits import (
    KINESIS_MAX_RECORD_BYTES,
    KINESIS_PUT_RECORDS_MAX_BYTES,
    KINESIS_PUT_RECORDS_MAX_RECORDS,
)
from tradestream.trade import SYMBOL_PATTERN

# Finnhub's free plan allows 50 symbols per connection; more is refused by the server anyway.
MAX_SYMBOLS = 50
# ECS lets a task's stopTimeout go up to 120 s; a deadline at or above it is always cut short.
ECS_MAX_STOP_TIMEOUT_SECONDS = 120

Source = Literal["synthetic", "finnhub", "replay"]
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")


class ProducerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, hide_input_in_errors=True, env_ignore_empty=True
    )

    stream_name: str = Field(default="trades", pattern=r"^[a-zA-Z0-9_.-]{1,128}$")

    # Declared before ``source`` so the source validator can see them (fields validate in order).
    finnhub_api_key: SecretStr | None = None
    replay_file: Path | None = None
    # None means: finnhub when FINNHUB_API_KEY is set, synthetic otherwise.
    source: Source = Field(default=None, validate_default=True)

    finnhub_url: str = "wss://ws.finnhub.io"
    symbols: Annotated[tuple[str, ...], NoDecode] = DEFAULT_SYMBOLS
    watchdog_seconds: float = Field(default=30, gt=0, le=3600)
    reconnect_backoff_base_seconds: float = Field(default=1, gt=0, le=60)
    reconnect_backoff_max_seconds: float = Field(default=60, gt=0, le=3600)

    synthetic_rate: float = Field(default=0, ge=0, le=1_000_000, description="0 = unthrottled")
    synthetic_seed: int = 7
    max_trades: int = Field(default=0, ge=0, description="distinct trades; 0 = unbounded")
    replay_pace: Literal["fast", "recorded"] = "fast"

    # A batch must hold at least one maximum-size record, or such a record could never be sent.
    batch_max_records: int = Field(
        default=KINESIS_PUT_RECORDS_MAX_RECORDS, ge=1, le=KINESIS_PUT_RECORDS_MAX_RECORDS
    )
    batch_max_bytes: int = Field(
        default=KINESIS_PUT_RECORDS_MAX_BYTES,
        ge=KINESIS_MAX_RECORD_BYTES,
        le=KINESIS_PUT_RECORDS_MAX_BYTES,
    )
    linger_ms: int = Field(default=50, ge=0, le=10_000)
    # KPL aggregation: the trades waiting for a call packed into aggregated records per shard,
    # each at most AGGREGATION_MAX_BYTES (its Kinesis size, <= 1 MiB). A shard takes 1,000
    # records/s, which without aggregation is 1,000 trades/s; with it, its 1 MiB/s is the limit
    # (~8,000 trades/s). Every consumer of the stream must deaggregate (docs/aggregation.md).
    aggregation: bool = AGGREGATION_DEFAULT
    aggregation_max_bytes: int = Field(
        default=AGGREGATION_DEFAULT_MAX_BYTES,
        ge=AGGREGATION_MIN_MAX_BYTES,
        le=AGGREGATION_MAX_MAX_BYTES,
    )
    buffer_max_records: int = Field(default=10_000, ge=1, le=1_000_000)
    # 20 attempts with the default backoff (0.1 s doubling to 5 s, full jitter) ride out about
    # 35 s of throttling or outage (71 s at most) before a trade is given up on and logged.
    # With the 5 s backoff cap and full jitter, 40 attempts ride out about 90 s of outage.
    max_put_attempts: int = Field(default=40, ge=1, le=100)
    put_backoff_base_seconds: float = Field(default=0.1, gt=0, le=10)
    put_backoff_max_seconds: float = Field(default=5, gt=0, le=60)
    shutdown_deadline_seconds: float = Field(
        default=25, gt=0, lt=ECS_MAX_STOP_TIMEOUT_SECONDS, description="keep below stopTimeout"
    )

    # Prometheus metrics at http://METRICS_HOST:METRICS_PORT/metrics; unset or 0: not served.
    # Loopback by default, like the ingest API's HOST: /metrics has no authentication, so
    # listening on every interface is the deployment's explicit choice (METRICS_HOST=0.0.0.0 in
    # a container that Prometheus scrapes from outside).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1)

    @field_validator("finnhub_api_key", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            return None
        return value

    @field_validator("source", mode="before")
    @classmethod
    def _source_has_what_it_needs(cls, value: Any, info: ValidationInfo) -> Any:
        key = info.data.get("finnhub_api_key")
        if value is None or value == "":
            return "finnhub" if key is not None else "synthetic"
        if value == "finnhub" and key is None:
            raise ValueError("SOURCE=finnhub needs FINNHUB_API_KEY (or use SOURCE=synthetic)")
        if value == "replay":
            replay_file = info.data.get("replay_file")
            if replay_file is None:
                raise ValueError("SOURCE=replay needs REPLAY_FILE, an NDJSON file of trades")
            if not Path(replay_file).is_file():
                raise ValueError("REPLAY_FILE does not exist or is not a file")
        return value

    @field_validator("finnhub_url")
    @classmethod
    def _safe_finnhub_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError("FINNHUB_URL must be a ws:// or wss:// URL, e.g. wss://ws.finnhub.io")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("FINNHUB_URL must not carry a query, fragment or credentials")
        if parts.scheme == "ws" and not _is_loopback(parts.hostname):
            raise ValueError(
                "FINNHUB_URL must use wss:// for remote hosts (the token is in the URL)"
            )
        return value

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            # Order kept, duplicates dropped: subscribing twice is pointless.
            return tuple(dict.fromkeys(str(s).strip() for s in value if str(s).strip()))
        return value

    @field_validator("symbols")
    @classmethod
    def _valid_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("SYMBOLS must list at least one symbol, e.g. AAPL,BINANCE:BTCUSDT")
        if len(value) > MAX_SYMBOLS:
            raise ValueError(f"SYMBOLS lists {len(value)} symbols; Finnhub allows {MAX_SYMBOLS}")
        bad = [s for s in value if not re.fullmatch(SYMBOL_PATTERN, s)]
        if bad:
            raise ValueError(f"SYMBOLS has invalid symbols: {', '.join(bad)}")
        return value

    @field_validator("reconnect_backoff_max_seconds", "put_backoff_max_seconds")
    @classmethod
    def _backoff_max_above_base(cls, value: float, info: ValidationInfo) -> float:
        # Each *_max_* field is declared after its *_base_* twin, so the base is validated first.
        name = str(info.field_name)
        base_name = name.replace("_max_", "_base_")
        base = info.data.get(base_name)
        if base is not None and value < base:
            raise ValueError(f"{name.upper()} must be >= the base, {base_name.upper()}")
        return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
