"""What the dashboard reads and where it listens, from UPPER_CASE environment variables (the
names every other deployable uses for the same resources)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    stream_name: str = "trades"
    table_name: str = "stock_trades"
    dlq_url: str | None = None  # the hotstore DLQ; unset: looked up by name
    dlq_name: str = "stock_trades-dlq"
    bucket_name: str | None = "tradestream-lake"
    data_prefix: str = "trades/"
    error_prefix: str = "errors/"
    # Prometheus endpoints of the components that run apart from the dashboard (compose, AWS):
    # their counters become the page's "trades in" figures and their lag gauges its lag.
    producer_metrics_url: str | None = None
    ingest_metrics_url: str | None = None
    runtime_metrics_url: str | None = None
    model_url: str | None = None  # the model server (GET /ping for its health)
    # Without a model server URL (AWS): the SageMaker endpoint's status is its health.
    endpoint_name: str | None = None
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8050, ge=0, le=65535)
    # How often the feed reads the pipeline while a page is open (it reads nothing otherwise).
    dashboard_interval_s: float = Field(default=1.0, ge=0.1, le=60)
    # The model's forecast horizon: a prediction is scored once the lake holds the price this
    # long after its trade (ml/labels.py's target).
    model_horizon_s: float = Field(default=0.25, gt=0, le=3600)
    # Trades per symbol kept for the price chart and the latency sample.
    chart_points: int = Field(default=200, ge=10, le=1000)
