"""moto server in its own process: it answers, stops when asked, ignores the terminal's signals
(its parent decides when it stops), and never outlives its parent, even a SIGKILLed one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradestream.local.moto_server import MotoStartError, start_moto

GONE_WITHIN_S = 10.0


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=5).read()
    except (urllib.error.URLError, ConnectionError):
        return False
    return True


def alive(pid: int) -> bool:
    """Running, and not a zombie nobody reaped (a container's init may not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def parent() -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    """A small Python process that starts moto server and waits; yields it, moto's pid and url."""
    script = textwrap.dedent(
        """
        import sys, time
        from tradestream.local.moto_server import start_moto
        handle = start_moto()
        print(handle.pid, handle.url, flush=True)
        time.sleep(120)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    pid, url = process.stdout.readline().split()
    try:
        yield process, int(pid), url
    finally:
        process.kill()
        process.wait(timeout=10)
        if alive(int(pid)):
            os.kill(int(pid), signal.SIGKILL)


def test_the_server_exits_when_its_parent_is_sigkilled(
    parent: tuple[subprocess.Popen[str], int, str],
) -> None:
    # GIVEN a process whose moto server answers
    process, moto_pid, url = parent
    assert answers(url)
    # WHEN the parent is SIGKILLed (no handler, no cleanup runs)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    # THEN its moto server is gone within seconds, and its port closed
    assert gone_within(moto_pid, GONE_WITHIN_S), "moto server outlived its parent"
    assert not answers(url)


def test_the_server_ignores_sigint_and_sigterm_until_its_parent_stops_it() -> None:
    # GIVEN a running server
    handle = start_moto()
    try:
        # WHEN it gets the signals a terminal's Ctrl-C or a group-wide stop would send
        os.kill(handle.pid, signal.SIGINT)
        os.kill(handle.pid, signal.SIGTERM)
        # THEN it still answers: its parent's graceful shutdown may still need it
        assert answers(handle.url)
    finally:
        # AND stop() ends it, promptly
        started = time.monotonic()
        handle.stop()
    assert time.monotonic() - started < 5
    assert handle.process.returncode == 0
    assert not answers(handle.url)


def test_a_server_that_cannot_listen_fails_to_start_with_a_clear_error() -> None:
    # GIVEN a port some other socket is listening on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # WHEN moto server is asked to listen there THEN start_moto says it did not start
        with pytest.raises(MotoStartError, match="did not start listening"):
            start_moto(port=port)


def test_reset_drops_every_resource(aws_env: str) -> None:
    # GIVEN a server of its own holding a bucket
    import boto3

    handle = start_moto()
    try:
        s3 = boto3.client("s3", endpoint_url=handle.url, region_name="us-east-1")
        s3.create_bucket(Bucket="kept-until-reset")
        # WHEN it is reset THEN the bucket is gone
        handle.reset()
        assert s3.list_buckets()["Buckets"] == []
    finally:
        handle.stop()
