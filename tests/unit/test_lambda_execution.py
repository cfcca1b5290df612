"""What both Lambda handlers share: state built once per execution environment, and the deadline."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from lambdas.execution import PerEnvironment, invocation_deadline


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def test_concurrent_first_invocations_build_once_and_reset_builds_again() -> None:
    # GIVEN a slow build (clients take a while) and eight invocations arriving at once
    builds: list[object] = []
    started = threading.Barrier(8)

    def build() -> object:
        time.sleep(0.05)
        builds.append(object())
        return builds[-1]

    warm = PerEnvironment(build)

    def invoke(_: int) -> object:
        started.wait()
        return warm.get()

    # WHEN they all ask for the state
    with ThreadPoolExecutor(8) as pool:
        seen = set(map(id, pool.map(invoke, range(8))))

    # THEN it was built once and all of them got it
    assert len(builds) == 1
    assert seen == {id(builds[0])}
    # AND after reset the next use builds it again, as a new execution environment would
    warm.reset()
    assert warm.get() is builds[1]


def test_the_deadline_is_the_time_left_minus_the_reserve_on_the_given_clock() -> None:
    # GIVEN 30 s left and a 5 s reserve WHEN the deadline is taken at monotonic 100
    # THEN it is 125; without a Lambda context there is none
    assert invocation_deadline(Context(), 5, lambda: 100.0) == 125.0
    assert invocation_deadline(None, 5, lambda: 100.0) is None
