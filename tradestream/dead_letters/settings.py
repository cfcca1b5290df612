"""Settings of the DLQ tooling (``tradestream dlq``), from the UPPER_CASE environment variables
every other component reads for the same resources, so the commands work unchanged against the
embedded stack, compose (LocalStack) and AWS."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The same patterns the embedded stack's settings accept (tradestream.local.settings).
STREAM_NAME_PATTERN = r"^[a-zA-Z0-9_.-]{1,128}$"
TABLE_NAME_PATTERN = r"^[a-zA-Z0-9_.-]{3,255}$"
QUEUE_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,80}$"


class DeadLetterSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    # Where redriven records go back to; only messages from this stream are redriven.
    stream_name: str = Field(default="trades", pattern=STREAM_NAME_PATTERN)
    # Names the hotstore stack (tradestream-hotstore-<table name>) whose output is the DLQ.
    table_name: str = Field(default="stock_trades", pattern=TABLE_NAME_PATTERN)
    # Either one overrides the stack's output (DLQ_URL wins); the dashboard reads the same two.
    dlq_url: str | None = None
    dlq_name: str | None = Field(default=None, pattern=QUEUE_NAME_PATTERN)

    # Messages received stay invisible this long unless released (listing and a redrive release
    # them, or delete them, as soon as they are done). A redrive holds the messages it keeps
    # until it ends, so this must outlast the whole run; the SQS maximum is 12 hours.
    dlq_visibility_timeout_seconds: int = Field(default=300, ge=1, le=43_200)
    # Long polling: SQS then asks all of its servers, so an empty answer means an empty queue
    # (short polling samples a subset, and can answer empty while messages remain).
    dlq_receive_wait_seconds: int = Field(default=1, ge=0, le=20)

    # PutRecords attempts per record (whole-call transient errors and per-entry ErrorCodes).
    redrive_max_attempts: int = Field(default=5, ge=1, le=20)
    redrive_backoff_base_seconds: float = Field(default=0.1, gt=0, le=5)
    redrive_backoff_max_seconds: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _cap_above_base(self) -> DeadLetterSettings:
        if self.redrive_backoff_max_seconds < self.redrive_backoff_base_seconds:
            raise ValueError(
                "REDRIVE_BACKOFF_MAX_SECONDS must be at least REDRIVE_BACKOFF_BASE_SECONDS"
            )
        return self
