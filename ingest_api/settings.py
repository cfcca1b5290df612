"""Settings of the ingest service, from UPPER_CASE environment variables.

Bounds refuse values that would make the service unsafe (unbounded memory, acknowledgements that
outlive a load balancer's idle timeout) or that can never work (a request larger than the buffer).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradestream.aggregation import (
    AGGREGATION_DEFAULT,
    AGGREGATION_DEFAULT_MAX_BYTES,
    AGGREGATION_MAX_MAX_BYTES,
    AGGREGATION_MIN_MAX_BYTES,
)
from tradestream.limits import MiB


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    stream_name: str = Field(default="trades", pattern=r"^[a-zA-Z0-9_.-]{1,128}$")
    # The hot store GET /v1/trades reads (the hotstore stack's table; the service never writes it).
    table_name: str = Field(default="stock_trades", pattern=r"^[a-zA-Z0-9_.-]{3,255}$")
    # Per DynamoDB Query; the SDK's standard retries stay on for reads, which are idempotent.
    dynamodb_call_timeout_seconds: float = Field(default=5, gt=0, le=60)

    # Where the server listens when started by `python -m ingest_api` (a container sets 0.0.0.0).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Processes serving the port, each an event loop with its own Kinesis batcher: one or two per
    # vCPU for many small requests, up to four per vCPU for large batches (docs/bench-ingest.md).
    workers: int = Field(default=1, ge=1, le=64)

    # Comma-separated keys, and/or the name or ARN of a Secrets Manager secret holding them.
    ingest_api_keys: SecretStr | None = None
    ingest_api_keys_secret: str | None = Field(default=None, min_length=1, max_length=2048)

    max_body_bytes: int = Field(default=MiB, ge=1024, le=10 * MiB)
    max_trades_per_request: int = Field(default=500, ge=1, le=10_000)
    # Trades dated further ahead than this are clock or unit errors, not trades.
    max_future_skew_seconds: float = Field(default=300, gt=0, le=7 * 86_400)

    # Token bucket per API key, counted in requests.
    rate_limit_per_second: float = Field(default=100, gt=0, le=1_000_000)
    rate_limit_burst: int = Field(default=200, ge=1, le=10_000_000)

    # Group commit: how long the first queued trade waits for others to share its PutRecords call.
    linger_ms: float = Field(default=5, ge=0, le=1000)
    put_concurrency: int = Field(default=4, ge=1, le=64)
    # Trades queued or in flight to Kinesis; beyond it requests get 503 at once.
    max_buffered_records: int = Field(default=20_000, ge=1, le=1_000_000)
    # Retry budget for entries Kinesis refuses: attempts per entry and a deadline per request that
    # stays below a load balancer's idle timeout (ALB: 60 s) so the client gets an answer.
    put_max_attempts: int = Field(default=6, ge=1, le=20)
    put_backoff_base_ms: float = Field(default=50, gt=0, le=10_000)
    put_backoff_max_ms: float = Field(default=2_000, gt=0, le=30_000)
    put_timeout_seconds: float = Field(default=10, gt=0, le=55)
    kinesis_call_timeout_seconds: float = Field(default=5, gt=0, le=60)
    retry_after_seconds: int = Field(default=2, ge=1, le=3600)
    # How PutRecords calls are made: "direct" builds and reads the two-field JSON itself, signed
    # by botocore (put_records.py); "sdk" is the aiobotocore client, ~3x the CPU per call.
    put_records_client: Literal["direct", "sdk"] = "direct"
    # KPL aggregation of the trades of a call into aggregated records per shard, each at most
    # AGGREGATION_MAX_BYTES. The same default as the producer's, and for the same reason: a shard
    # takes 1,000 records/s, and the service alone puts more (2,000 single-trade requests/s or
    # 90,000 trades/s in batches with two workers, docs/bench-ingest.md): without aggregation
    # that is 2 to 90 shards, with it the shard's 1 MiB/s is the limit (~8,000 trades/s). It adds
    # no wait (the group commit's linger is unchanged) and trades CPU for fewer, larger entries.
    # What it changes for a request: trades of several requests share a Kinesis record, so a
    # refused record delays all of them until its resend, and a resend carries the trades of
    # requests already answered (harmless: ids make them replays). With ~300 trades per record
    # there are ~300x fewer entries to refuse, so refusals are that much rarer. Every consumer
    # of the stream must deaggregate (docs/aggregation.md).
    aggregation: bool = AGGREGATION_DEFAULT
    aggregation_max_bytes: int = Field(
        default=AGGREGATION_DEFAULT_MAX_BYTES,
        ge=AGGREGATION_MIN_MAX_BYTES,
        le=AGGREGATION_MAX_MAX_BYTES,
    )

    # One JSON line per request at INFO (~50 µs each). Behind a load balancer that keeps access
    # logs of its own, turning this off leaves warnings and errors, which still carry request ids.
    access_log: bool = True

    # /readyz answers from a cache so probes cannot exhaust DescribeStreamSummary's 20 TPS quota.
    readiness_cache_seconds: float = Field(default=5, ge=0, le=300)

    # ECS stops a task 30 s after SIGTERM: in-flight requests first, then the buffer is drained.
    graceful_shutdown_seconds: float = Field(default=20, gt=0, le=300)
    drain_timeout_seconds: float = Field(default=5, gt=0, le=300)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ingest_api_keys is None and self.ingest_api_keys_secret is None:
            raise ValueError("set INGEST_API_KEYS (comma-separated) or INGEST_API_KEYS_SECRET")
        if self.max_buffered_records < self.max_trades_per_request:
            raise ValueError(
                "MAX_BUFFERED_RECORDS must hold at least one full request "
                f"(MAX_TRADES_PER_REQUEST={self.max_trades_per_request})"
            )
        if self.put_backoff_max_ms < self.put_backoff_base_ms:
            raise ValueError("PUT_BACKOFF_MAX_MS must be at least PUT_BACKOFF_BASE_MS")
        return self
