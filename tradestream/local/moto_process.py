"""moto server in a process of its own: ``python -m tradestream.local.moto_process``.

Why a process: answering every AWS call of the embedded stack, moto took about half of the
stack's CPU while it shared one interpreter lock with both emulations and the handlers; in a
process of its own it runs on another core. ``tradestream.local.moto_server.start_moto`` starts
this and speaks its protocol:

- it binds ``--host``/``--port`` (0: a free port), writes one JSON line ``{"url": ...}`` to
  stdout, then points stdout at stderr (nobody reads the pipe after that line, and a full pipe
  would block the server);
- it exits when its stdin reaches end of file. The parent holds the other end of that pipe and
  the kernel closes it however the parent ends, SIGKILL included, so the server never outlives
  it; as a second guard it also exits once it is no longer its parent's child (the pipe's end
  could linger in a process the parent forked);
- it ignores SIGINT and SIGTERM: a terminal's Ctrl-C and a signal to the whole process group
  reach it as well as the parent, whose graceful shutdown still needs its AWS. The parent stops
  it by closing the pipe.

``--shard-limits`` puts AWS's per-shard write limits in front of moto's Kinesis
(``tradestream.local.shard_limits``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import sys
import threading


def _exit_with_parent(parent_pid: int) -> None:
    """Return once stdin is at end of file or the parent is gone."""
    stdin = sys.stdin.fileno()
    while os.getppid() == parent_pid:
        readable, _, _ = select.select([stdin], [], [], 1.0)
        if readable and not os.read(stdin, 4096):
            return


def _watch_parent(parent_pid: int) -> None:
    _exit_with_parent(parent_pid)
    # Nothing to flush or close: moto's state lives in memory and goes with the process.
    os._exit(0)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tradestream.local.moto_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--shard-limits", action=argparse.BooleanOptionalAction, default=False)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = _arguments(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(
        target=_watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from tradestream.local import moto_items, moto_kinesis

    moto_items.install()
    moto_kinesis.install()  # before the shard limits, which wrap what it leaves
    if arguments.shard_limits:
        from tradestream.local.shard_limits import ShardLimits, install

        install(ShardLimits())
    # One log line per request otherwise.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server(
        arguments.host,
        arguments.port,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    host, port = server.socket.getsockname()[:2]
    sys.stdout.write(json.dumps({"url": f"http://{host}:{port}"}) + "\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    server.serve_forever()


if __name__ == "__main__":
    main()
