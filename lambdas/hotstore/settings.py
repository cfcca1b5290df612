"""Settings of the hotstore function, read from UPPER_CASE environment variables.

The template sets TABLE_NAME, DLQ_URL and TTL_DAYS; the retry knobs have defaults sized for the
function's 60 s timeout. Unsafe values are refused at the first invocation with a message that says
what to do, rather than surfacing later as a failed write.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# DynamoDB table names; SQS queue names (a ".fifo" suffix is refused separately, see below).
TABLE_NAME_PATTERN = r"^[a-zA-Z0-9_.-]{3,255}$"
_QUEUE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,80}(\.fifo)?$")
# The template's TtlDays bounds; past ten years a "hot" store is not hot any more.
MAX_TTL_DAYS = 3650


class HotstoreSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, hide_input_in_errors=True, env_ignore_empty=True
    )

    table_name: str = Field(pattern=TABLE_NAME_PATTERN)
    dlq_url: str
    ttl_days: int = Field(default=30, gt=0, le=MAX_TTL_DAYS)

    # Rounds of BatchWriteItem over what is still unwritten. With the defaults the 7 backoff
    # sleeps add up to 5.15 s at most (full jitter: half that expected) before a record is
    # reported failed and left to the event source mapping's own retries.
    max_write_attempts: int = Field(default=8, ge=1, le=20)
    write_backoff_base_seconds: float = Field(default=0.05, gt=0, le=5)
    write_backoff_max_seconds: float = Field(default=2, gt=0, le=30)
    # SendMessageBatch attempts for poison records (per-entry failures and whole-call errors).
    max_dlq_attempts: int = Field(default=3, ge=1, le=10)
    # Retries stop when less than this is left of the invocation, so the function answers with
    # batchItemFailures instead of timing out (a timeout fails and redelivers the whole batch).
    retry_reserve_seconds: float = Field(default=5, ge=0, le=300)

    @field_validator("dlq_url")
    @classmethod
    def _standard_queue_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "DLQ_URL must be the queue URL, e.g. "
                "https://sqs.us-east-1.amazonaws.com/123456789012/stock_trades-dlq"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("DLQ_URL must not carry a query, fragment or credentials")
        name = parts.path.rstrip("/").rpartition("/")[2]
        if not _QUEUE_NAME.match(name):
            raise ValueError("DLQ_URL must end with the queue name (letters, digits, - and _)")
        if name.endswith(".fifo"):
            # A FIFO queue refuses messages without MessageGroupId: every poison record would
            # fail to be kept and block its shard until the mapping gave up on it.
            raise ValueError("DLQ_URL must be a standard queue, not a FIFO (.fifo) queue")
        return value

    @field_validator("write_backoff_max_seconds")
    @classmethod
    def _cap_above_base(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("write_backoff_base_seconds")
        if base is not None and value < base:
            raise ValueError(
                "WRITE_BACKOFF_MAX_SECONDS must be at least WRITE_BACKOFF_BASE_SECONDS"
            )
        return value
