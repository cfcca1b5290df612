"""Settings of the enrich function, read from UPPER_CASE environment variables.

The template sets ENDPOINT_NAME and ON_INFERENCE_FAILURE; the rest have defaults sized for the
function's timeout (lake.yaml: 120 s). Unsafe values are refused at the first invocation with a
message that says what to do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradestream.limits import SAGEMAKER_INVOKE_MAX_PAYLOAD_BYTES

# InvokeEndpoint refuses request bodies over 6 MB.
SAGEMAKER_MAX_PAYLOAD_BYTES = SAGEMAKER_INVOKE_MAX_PAYLOAD_BYTES
# SageMaker gives a model 60 s to answer; waiting longer for a reply can never succeed.
SAGEMAKER_MAX_INVOCATION_SECONDS = 60
# SageMaker endpoint names (the IAM policy lowercases them in the ARN; so do we, see lake.yaml).
ENDPOINT_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"

InferenceFailureMode = Literal["deliver_null", "fail"]


class EnrichSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, hide_input_in_errors=True, env_ignore_empty=True
    )

    endpoint_name: str = Field(pattern=ENDPOINT_NAME_PATTERN)
    # deliver_null: the trade still reaches the lake, with prediction null and the reason, so the
    # lake stays complete while the model is down. fail: the records go to the error prefix.
    on_inference_failure: InferenceFailureMode = "deliver_null"
    # One InvokeEndpoint per chunk of at most this many bytes of JSON array. 1 MiB is ~6,000
    # trades: one call for a typical Firehose batch, and short enough for the model's 60 s.
    max_chunk_bytes: int = Field(default=1024 * 1024, ge=1024, lt=SAGEMAKER_MAX_PAYLOAD_BYTES)
    connect_timeout_seconds: float = Field(default=2, gt=0, le=10)
    read_timeout_seconds: float = Field(default=20, gt=0, le=SAGEMAKER_MAX_INVOCATION_SECONDS + 5)
    # Attempts per chunk (throttling, 5xx, connection trouble); the SDK's own retries are off so
    # this is the whole budget.
    max_invoke_attempts: int = Field(default=4, ge=1, le=10)
    backoff_base_seconds: float = Field(default=0.1, gt=0, le=5)
    backoff_max_seconds: float = Field(default=2, gt=0, le=30)
    # An attempt starts only if it can end (connect + read timeouts) with this much of the
    # invocation left, so the function always answers Firehose instead of timing out.
    retry_reserve_seconds: float = Field(default=3, ge=0, le=60)
    # A trade re-sent by the source (same deterministic id) twice in one batch is answered
    # Dropped after the first: one inference, one lake line.
    drop_duplicates: bool = True

    @field_validator("backoff_max_seconds")
    @classmethod
    def _cap_above_base(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("backoff_base_seconds")
        if base is not None and value < base:
            raise ValueError("BACKOFF_MAX_SECONDS must be at least BACKOFF_BASE_SECONDS")
        return value

    @property
    def attempt_seconds(self) -> float:
        """The longest one InvokeEndpoint attempt can take."""
        return self.connect_timeout_seconds + self.read_timeout_seconds
