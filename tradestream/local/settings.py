"""Settings of the embedded stack (``tradestream up`` / ``demo``), from UPPER_CASE environment."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    stream_name: str = Field(default="trades", pattern=r"^[a-zA-Z0-9_.-]{1,128}$")
    table_name: str = Field(default="stock_trades", pattern=r"^[a-zA-Z0-9_.-]{3,255}$")
    # AWS polls a shard about once a second when it is idle; locally we poll faster so the demo
    # drains quickly. A shard with a backlog is polled back-to-back either way.
    poll_interval_seconds: float = Field(default=0.2, gt=0, le=10)
    hotstore_ttl_days: int = Field(default=30, gt=0, le=3650)
