"""Start moto server on a free loopback port, in a child process, for the embedded stack.

Only used when ``AWS_ENDPOINT_URL`` is not already set: with an endpoint configured (LocalStack,
a moto server someone else runs, or real AWS) the project talks to that instead.

The server runs in a process of its own (``tradestream.local.moto_process``, which says why and
how it never outlives this one), so it takes a core of its own rather than a share of this
process's interpreter lock.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import urllib.request
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

import tradestream

# moto accepts any credentials; botocore still refuses to sign without some.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

STOP_TIMEOUT_SECONDS = 5.0
# Well above the child's start-up (about 0.3 s: an interpreter and moto's core imported).
START_TIMEOUT_SECONDS = 60.0


class MotoStartError(RuntimeError):
    """The moto server process ended, or hung, before it said where it listens."""

    code = "MotoStartError"


@dataclass
class MotoHandle:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Close the server's lifeline (its stdin) and wait for it to exit; kill it past
        ``timeout``."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def reset(self) -> None:
        """Drop every resource (moto's own reset API), for test isolation."""
        # The URL is the loopback server we started ourselves.
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).read()  # noqa: S310


def start_moto(host: str = "127.0.0.1", port: int = 0, *, shard_limits: bool = False) -> MotoHandle:
    """Start moto server; port 0 picks a free port. ``shard_limits`` enforces Kinesis' per-shard
    write limits (``tradestream.local.shard_limits``): the embedded stack turns them on
    (``LocalSettings.shard_limits``); off, moto takes any rate, as benchmarks of other stages
    and tests that assert on immediate results need."""
    command = [sys.executable, "-m", "tradestream.local.moto_process", "--host", host]
    command += ["--port", str(port), "--shard-limits" if shard_limits else "--no-shard-limits"]
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_child_environment(),
    )
    handle = MotoHandle(url="", process=process)
    line = _first_line(process, START_TIMEOUT_SECONDS)
    if not line:
        handle.stop()
        raise MotoStartError(
            f"moto server (exit code {process.returncode}) did not start listening on "
            f"{host}:{port} within {START_TIMEOUT_SECONDS:g} s; its error is on stderr above"
        )
    try:
        handle.url = json.loads(line)["url"]
    except (ValueError, KeyError) as exc:
        handle.stop()  # never leave a child behind
        raise MotoStartError(
            f"moto server's first line is not its address: {line[:200]!r}"
        ) from exc
    return handle


def _first_line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The child's first line, written once it listens; empty if it died or hung first."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    # One short write by the child: a readable pipe holds the whole line, or EOF.
    return process.stdout.readline() if readable else b""


def _child_environment() -> dict[str, str]:
    """This environment, with the checkout this module comes from first on the path, so the
    child runs the same code however this process found it."""
    root = str(Path(tradestream.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, path] if path else [root])}


def ensure_credentials(env: MutableMapping[str, str] | None = None) -> None:
    """Give botocore dummy credentials when none are set, so local endpoints can be signed."""
    target = os.environ if env is None else env
    if not target.get("AWS_ACCESS_KEY_ID") and not target.get("AWS_PROFILE"):
        target.update(DUMMY_CREDENTIALS)
