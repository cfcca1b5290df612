"""Settings of the embedded stack (``tradestream up`` / ``demo``), from UPPER_CASE environment."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
ENDPOINT_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


class LocalSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    stream_name: str = Field(default="trades", pattern=r"^[a-zA-Z0-9_.-]{1,128}$")
    table_name: str = Field(default="stock_trades", pattern=r"^[a-zA-Z0-9_.-]{3,255}$")
    # AWS polls a shard about once a second when it is idle; locally we poll faster so the demo
    # drains quickly. A shard with a backlog is polled back-to-back either way.
    poll_interval_seconds: float = Field(default=0.2, gt=0, le=10)
    hotstore_ttl_days: int = Field(default=30, gt=0, le=3650)

    # The inference lake. S3 bucket names are global on AWS; locally any valid name will do.
    bucket_name: str = Field(
        default="tradestream-lake", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    )
    endpoint_name: str = Field(
        default="tradestream-model", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
    )
    # Firehose's defaults (60 s before the transform, 300 s before S3) suit AWS's cost model;
    # locally they would hide the lake for minutes, so the embedded stack deploys shorter ones.
    lake_processor_interval_seconds: int = Field(default=1, ge=0, le=900)
    lake_s3_interval_seconds: int = Field(default=10, ge=0, le=900)

    # How long a consumer's lease on a shard lasts unless renewed (a third of it between
    # renewals): how long a killed runtime's shards wait before another runtime takes them.
    # KCL's default failover time.
    lease_duration_seconds: float = Field(default=10.0, gt=0, le=600)

    # AWS's per-shard write limits (1,000 records/s and 1 MiB/s) on the embedded Kinesis, so a
    # local run is throttled where AWS would throttle it (``tradestream.local.shard_limits``).
    # Only the moto server the embedded stack starts itself enforces them; another endpoint
    # (LocalStack, a moto server run separately, AWS) has its own behaviour.
    shard_limits: bool = True

    # The runtime's Prometheus metrics (``tradestream.local.metrics.start_metrics``); unset: not
    # served, 0: a free port. Loopback by default (/metrics has no authentication); a container
    # scraped from outside sets RUNTIME_METRICS_HOST=0.0.0.0.
    runtime_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    runtime_metrics_host: str = Field(default="127.0.0.1", min_length=1)

    # The embedded stack, the compose runtime and `tradestream deploy --target localstack` deploy
    # the local-flavour stacks with these same parameters, so whichever runs second finds them
    # unchanged.
    def hotstore_parameters(self) -> dict[str, str]:
        return {"TtlDays": str(self.hotstore_ttl_days)}

    def lake_parameters(self) -> dict[str, str]:
        return {
            "ProcessorBufferIntervalInSeconds": str(self.lake_processor_interval_seconds),
            "BufferIntervalInSeconds": str(self.lake_s3_interval_seconds),
        }
