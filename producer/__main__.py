"""``python -m producer``: the container entrypoint.

SIGTERM (what ECS sends) and SIGINT set a stop flag; the producer then stops its source and flushes
within SHUTDOWN_DEADLINE_SECONDS. Logs are JSON on stderr; the final counts are one JSON line on
stdout. Exit codes: 0 all received trades published, 1 some were not (counted as ``failed`` and
logged with their records), 2 invalid settings or an unrecoverable error.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from pydantic import ValidationError

from producer.app import ProducerError, ProducerStats, run
from producer.settings import ProducerSettings
from tradestream.logs import get_logger
from tradestream.trade import dumps

logger = get_logger("producer")

EXIT_OK, EXIT_TRADES_FAILED, EXIT_ERROR = 0, 1, 2


def main() -> int:
    try:
        settings = ProducerSettings()
    except ValidationError as exc:
        # include_input=False: a rejected value may be a secret.
        problems = [
            f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        ]
        logger.error("invalid settings", extra={"problems": problems})
        return EXIT_ERROR
    return asyncio.run(_main(settings))


async def _main(settings: ProducerSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop, signal.Signals(signum).name)
    try:
        stats = await run(settings, stop=stop)
    except ProducerError as exc:
        logger.error("producer failed", extra={"code": exc.code, "reason": str(exc)})
        _print_result(exc.stats)
        return EXIT_ERROR
    _print_result(stats)
    return EXIT_OK if stats.failed == 0 else EXIT_TRADES_FAILED


def _request_stop(stop: asyncio.Event, name: str) -> None:
    if stop.is_set():
        logger.info("already stopping", extra={"signal": name})
    else:
        logger.info("stop requested", extra={"signal": name})
    stop.set()


def _print_result(stats: ProducerStats) -> None:
    sys.stdout.write(dumps(stats.to_json()) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
