"""Rounds of batched calls over what is still pending: how the table writer and the DLQ sender
both retry.

Each round sends everything still pending, in batches. What a call reports as worth another try,
or all of its batch when the call itself failed transiently (throttling, 5xx, connection), goes
into the next round after one exponential backoff with full jitter. The backoff is per round, not
per call, so a large batch waits no longer than a small one. A budget of rounds and an optional
deadline bound the whole; what is left is returned as failed, with its last error code.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from tradestream.retry import SYSTEM_CLOCK, Backoff, Clock, error_code, is_transient

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class CallOutcome(Generic[K]):
    """What one answered call left undone, key -> error code; its other keys succeeded."""

    retry: dict[K, str] = field(default_factory=dict)  # another round may succeed
    failed: dict[K, str] = field(default_factory=dict)  # would fail the same way again


@dataclass(frozen=True)
class RoundsResult(Generic[K]):
    failed: dict[K, str]  # key -> last error code
    calls: int
    rounds: int
    resent: int = 0  # keys sent again in a later round (counted once per round)


class RetryRounds:
    def __init__(
        self,
        *,
        max_attempts: int,
        backoff: Backoff,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._sleep = clock.sleep
        self._monotonic = clock.monotonic

    def run(
        self,
        pending: dict[K, V],
        batches: Callable[[list[tuple[K, V]]], Iterable[Sequence[tuple[K, V]]]],
        call: Callable[[dict[K, V]], CallOutcome[K]],
        *,
        deadline: float | None = None,
    ) -> RoundsResult[K]:
        """Send ``pending`` in the ``batches`` it splits into, one ``call`` each, until done or
        out of rounds; ``deadline`` (``monotonic`` clock) stops retries that would pass it."""
        failed: dict[K, str] = {}
        last_error: dict[K, str] = {}
        calls = rounds = resent = 0
        while pending and rounds < self.max_attempts:
            if rounds:
                if not self._wait(rounds, deadline):
                    break
                resent += len(pending)
            rounds += 1
            retry: dict[K, V] = {}
            for batch in batches(list(pending.items())):
                calls += 1
                sent = dict(batch)
                outcome = _answered(call, sent)
                # Only the batch's own keys: an answer naming others is not ours to act on.
                failed.update((k, code) for k, code in outcome.failed.items() if k in sent)
                again = {k: code for k, code in outcome.retry.items() if k in sent}
                last_error.update(again)
                retry.update((k, sent[k]) for k in again)
            pending = retry
        failed.update({key: last_error[key] for key in pending})
        return RoundsResult(failed, calls, rounds, resent)

    def _wait(self, retry: int, deadline: float | None) -> bool:
        delay = self.backoff.delay(retry)
        if deadline is not None and self._monotonic() + delay >= deadline:
            return False
        self._sleep(delay)
        return True


def _answered(call: Callable[[dict[K, V]], CallOutcome[K]], batch: dict[K, V]) -> CallOutcome[K]:
    """The call's outcome; a call that failed as a whole fails each of its keys the same way."""
    try:
        return call(batch)
    except ParamValidationError:
        raise  # a bug in the caller, not a condition to report per record
    except (ClientError, BotoCoreError) as exc:
        codes = dict.fromkeys(batch, error_code(exc))
        return CallOutcome(retry=codes) if is_transient(exc) else CallOutcome(failed=codes)
