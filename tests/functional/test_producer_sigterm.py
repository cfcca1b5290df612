"""``python -m producer`` under SIGTERM with a full buffer: it flushes within the deadline, exits 0,
and every trade it reports as received is in the stream; with aggregation on and off."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from producer.settings import DEFAULT_SYMBOLS
from tests.support.deaggregated import by_kpl, trade_ids
from tests.support.faults import FaultProxy
from tests.support.kinesis import create_stream, read_stream
from tradestream.local.moto_server import MotoHandle
from tradestream.synthetic import raw_frames
from tradestream.trade import stamp

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 10
BUFFER = 5000


def first_ids(seed: int, count: int) -> list[str]:
    """The ids of the first ``count`` trades the synthetic source emits for ``seed``."""
    ids: list[str] = []
    for raws in raw_frames(DEFAULT_SYMBOLS, seed):
        ids += [t.id for t in stamp(raws, 1_800_000_000_000)]
        if len(ids) >= count:
            return ids[:count]
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("aggregation", [False, True], ids=["plain", "aggregated"])
def test_sigterm_flushes_a_full_buffer_within_the_deadline(
    aws_env: str, moto: MotoHandle, unique: str, aggregation: bool
) -> None:
    # GIVEN a producer process feeding a stream slowed by 30% of entries failing, fast source
    stream = f"sigterm-{unique}"
    kinesis = create_stream(stream)
    with FaultProxy(moto.url, seed=2) as proxy:
        proxy.kinesis_put_failure_rate = 0.3
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": proxy.url,
            "PYTHONPATH": str(REPO),
            "SOURCE": "synthetic",
            "SYNTHETIC_SEED": "4",
            "SYNTHETIC_RATE": "0",
            "STREAM_NAME": stream,
            "BUFFER_MAX_RECORDS": str(BUFFER),
            "PUT_BACKOFF_BASE_SECONDS": "0.02",
            "PUT_BACKOFF_MAX_SECONDS": "0.1",
            "MAX_PUT_ATTEMPTS": "50",
            "SHUTDOWN_DEADLINE_SECONDS": str(DEADLINE),
            "AGGREGATION": str(aggregation).lower(),
            # The test reads the INFO line that says the signal was seen.
            "LOG_LEVEL": "INFO",
        }
        env.pop("FINNHUB_API_KEY", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "producer"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_until_publishing(proxy)
            # WHEN it gets SIGTERM mid-stream
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=DEADLINE + 10)
            took = time.monotonic() - signalled
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    # THEN it exited 0 within the deadline
    assert process.returncode == 0, err[-3000:]
    assert took < DEADLINE + 2
    stats = json.loads(out.strip().splitlines()[-1])
    print(stats, f"took={took:.2f}s")
    assert stats["stopped_by"] == "stop"
    # AND the buffer had filled up: the stream, not the source, was the bottleneck
    assert stats["buffered_peak"] == BUFFER
    # AND everything it received was published, and is in the stream
    assert (stats["failed"], stats["buffered"]) == (0, 0)
    assert stats["published"] == stats["received"] > BUFFER
    records = read_stream(kinesis, stream)
    in_stream = Counter(trade_ids(by_kpl(records)))
    assert sum(in_stream.values()) == stats["published"]
    assert in_stream == Counter(first_ids(4, stats["received"]))
    assert '"message":"stop requested"' in err


def _wait_until_publishing(proxy: FaultProxy, within: float = 20) -> None:
    """Until a few PutRecords calls went through: the process is up and its buffer full."""
    deadline = time.monotonic() + within
    while proxy.counts["PutRecords"] < 5:
        assert time.monotonic() < deadline, "the producer never started publishing"
        time.sleep(0.05)
