"""One InvokeEndpoint per chunk, retried within a budget, read into one result per trade.

The endpoint answers ``{"predictions": [...], "model_version": "..."}`` with one prediction per
input trade, in input order. Anything else (a count that does not match, no model version) is an
invalid answer: the chunk's trades get an inference failure, never a misaligned prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from lambdas.enrich.records import Inference, InferenceFailure, Prediction
from lambdas.enrich.settings import EnrichSettings
from tradestream.retry import SYSTEM_CLOCK, Backoff, Clock, error_code, is_transient

CONTENT_TYPE = "application/json"
_REASON_LIMIT = 300  # a reason is stored on every failed lake line; keep it short


class _ModelResponse(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    predictions: list[JsonValue]
    model_version: str = Field(min_length=1)


@dataclass(frozen=True)
class ChunkResult:
    inferences: list[Inference]  # one per trade of the chunk
    calls: int  # InvokeEndpoint calls made (attempts)
    failure: str | None = None
    call_seconds: float = 0.0  # time spent in those calls (the backoff sleeps not included)

    @property
    def errors(self) -> int:
        """Attempts that failed: a retry follows only a failed attempt, and a chunk that failed
        failed every one it made (the last may have answered, but invalidly)."""
        return self.calls if self.failure is not None else max(0, self.calls - 1)


class Endpoint:
    """InvokeEndpoint over explicit settings and client, with injectable time for tests."""

    def __init__(
        self,
        client: Any,
        settings: EnrichSettings,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._client = client
        self._settings = settings
        self._sleep = clock.sleep
        self._monotonic = clock.monotonic
        self._backoff = Backoff(
            settings.backoff_base_seconds, settings.backoff_max_seconds, clock.rand
        )

    def predict(self, body: bytes, count: int, *, deadline: float | None) -> ChunkResult:
        """Predictions for the ``count`` trades in ``body`` (a JSON array), or one failure for all.

        ``deadline`` (monotonic) is when the function must stop waiting on the endpoint: an
        attempt starts only if it can time out before then.
        """
        calls = 0
        spent = 0.0
        while True:
            if not self._fits(deadline, 0.0):
                reason = f"InvocationDeadline after {calls} attempt(s)"
                return self._failed(count, calls, reason, spent)
            calls += 1
            started = self._monotonic()
            try:
                payload = self._invoke(body)
            except Exception as exc:
                spent += self._monotonic() - started
                code = error_code(exc)
                if not is_transient(exc):
                    return self._failed(count, calls, f"{code}: {_message(exc)}", spent)
                if calls >= self._settings.max_invoke_attempts:
                    return self._failed(count, calls, f"{code} after {calls} attempt(s)", spent)
                delay = self._backoff.delay(calls)
                if not self._fits(deadline, delay):
                    return self._failed(count, calls, f"{code}; no time left to retry", spent)
                self._sleep(delay)
                continue
            spent += self._monotonic() - started
            return self._read(payload, count, calls, spent)

    def _invoke(self, body: bytes) -> bytes:
        response = self._client.invoke_endpoint(
            EndpointName=self._settings.endpoint_name,
            ContentType=CONTENT_TYPE,
            Accept=CONTENT_TYPE,
            Body=body,
        )
        data: bytes = response["Body"].read()
        return data

    def _fits(self, deadline: float | None, delay: float) -> bool:
        if deadline is None:
            return True
        return self._monotonic() + delay + self._settings.attempt_seconds <= deadline

    def _read(self, payload: bytes, count: int, calls: int, spent: float) -> ChunkResult:
        try:
            answer = _ModelResponse.model_validate_json(payload)
        except ValidationError as exc:
            reason = f"InvalidModelResponse: {_first_error(exc)}"
            return self._failed(count, calls, reason, spent)
        if len(answer.predictions) != count:
            reason = f"InvalidModelResponse: {len(answer.predictions)} predictions for {count}"
            return self._failed(count, calls, reason, spent)
        inferences: list[Inference] = [
            Prediction(value, answer.model_version) for value in answer.predictions
        ]
        return ChunkResult(inferences, calls, call_seconds=spent)

    @staticmethod
    def _failed(count: int, calls: int, reason: str, spent: float) -> ChunkResult:
        reason = reason[:_REASON_LIMIT]
        return ChunkResult(
            [InferenceFailure(reason)] * count, calls, failure=reason, call_seconds=spent
        )


def _message(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
