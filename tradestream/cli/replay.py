"""`tradestream replay --from-lake`: backfill and reprocess from the lake (the producer extra:
the replay runs the producer's publisher).

Progress goes to stderr about once a second; the summary is one JSON object, the last stdout
line. Exit status: 0 when every line of the selection is back on the stream (or was filtered out
or a duplicate), 1 when something was not (invalid lines, unreadable objects, trades the publisher
gave up on, an early stop) or the replay could not run, 2 for bad options or settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from tradestream.trade import dumps

if TYPE_CHECKING:
    from producer.lake_replay import LakeReplaySummary

PROGRESS_EVERY_S = 1.0


@click.command("replay")
@click.option(
    "--from-lake",
    "from_lake",
    is_flag=True,
    help="Replay the lake's trades (required: the lake is the one replay origin so far).",
)
@click.option(
    "--symbol",
    "symbols",
    multiple=True,
    help="Only this symbol's trades, as Finnhub spells it (BINANCE:BTCUSDT); repeatable.",
)
@click.option(
    "--from",
    "from_",
    metavar="TIME",
    help="Trades at or after this trade time: epoch ms or ISO 8601 (UTC without an offset).",
)
@click.option("--to", metavar="TIME", help="Trades at or before this trade time (inclusive).")
@click.option(
    "--pace",
    type=click.Choice(["fast", "recorded"]),
    default="fast",
    show_default=True,
    help="fast: as fast as the stream takes them; recorded: the recorded gaps between trades.",
)
@click.option(
    "--max-gap",
    type=click.FloatRange(min=0, min_open=True, max=86_400),
    help="recorded: longest wait between two trades, seconds. Default: REPLAY_MAX_GAP_SECONDS, 5.",
)
@click.option("--bucket", help="The lake bucket. Default: BUCKET_NAME, tradestream-lake.")
@click.option("--prefix", help="Its data prefix. Default: DATA_PREFIX, trades/.")
@click.option("--stream", help="The stream to put on. Default: STREAM_NAME, trades.")
def replay_command(
    from_lake: bool,
    symbols: tuple[str, ...],
    from_: str | None,
    to: str | None,
    pace: str,
    max_gap: float | None,
    bucket: str | None,
    prefix: str | None,
    stream: str | None,
) -> None:
    """Put trades from the lake back on the stream, with their ids, so an emptied or new sink
    fills again and the others, idempotent, stay as they are. E.g.

    tradestream replay --from-lake --symbol AAPL --from 2024-01-02 --to 2024-01-02T23:59:59.999Z
    """
    if not from_lake:
        raise click.UsageError(
            "give --from-lake (to replay a file of trades: SOURCE=replay REPLAY_FILE=FILE "
            "python -m producer)"
        )
    # Per-batch log lines would drown the progress; LOG_LEVEL=INFO brings them back. Set before
    # the producer is imported: its logger reads the level then.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from producer.lake_replay import (
        LakeReplayError,
        LakeReplaySettings,
        Selection,
        SelectionError,
        publisher_settings,
        replay_from_lake,
    )

    try:
        selection = Selection.parse(symbols, from_, to)
    except SelectionError as exc:
        raise click.BadParameter(str(exc), param_hint="--from/--to") from exc
    lake_overrides: dict[str, Any] = {
        "bucket_name": bucket,
        "data_prefix": prefix,
        "replay_max_gap_seconds": max_gap,
    }
    try:
        lake = LakeReplaySettings(**{k: v for k, v in lake_overrides.items() if v is not None})
        producer = publisher_settings(**({"stream_name": stream} if stream else {}))
    except ValidationError as exc:
        raise click.UsageError(_problems(exc)) from exc

    async def main() -> LakeReplaySummary:
        stop = asyncio.Event()
        with _stopped_by_signals(stop):
            return await replay_from_lake(
                selection,
                pace="recorded" if pace == "recorded" else "fast",
                lake=lake,
                producer=producer,
                stop=stop,
                on_progress=_Progress(),
            )

    try:
        summary = asyncio.run(main())
    except LakeReplayError as exc:
        click.echo(dumps(exc.summary.to_json()))
        raise click.ClickException(f"{exc} ({exc.code})") from exc
    click.echo(dumps(summary.to_json()))
    if not summary.complete:
        click.echo(_incomplete(summary), err=True)
        sys.exit(1)


def _problems(exc: ValidationError) -> str:
    # Named by their variables; include_input=False: a rejected value may be a secret.
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


@contextlib.contextmanager
def _stopped_by_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT / SIGTERM stop the replay, which then flushes what it holds (bounded)."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError):  # not the main thread: no signals
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


class _Progress:
    """One line on stderr about once a second, and the last one at the end."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, summary: LakeReplaySummary) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_S and summary.stopped_by == "running":
            return
        self._last = now
        click.echo(
            f"replay: objects {summary.objects_read}/{summary.objects_listed}, "
            f"lines {summary.lines_read:,}, put {summary.trades_put:,}, "
            f"published {summary.published:,}, filtered {summary.skipped_by_filter:,}, "
            f"duplicates {summary.duplicates:,}, invalid {summary.invalid_lines:,}",
            err=True,
        )


def _incomplete(summary: LakeReplaySummary) -> str:
    reasons: list[str] = []
    if summary.invalid_lines:
        reasons.append(
            f"{summary.invalid_lines} invalid lines in {len(summary.invalid_by_object)} objects"
        )
    if summary.unreadable_objects:
        reasons.append(f"{len(summary.unreadable_objects)} objects not readable")
    if summary.failed or summary.dropped_by_policy:
        reasons.append(f"{summary.failed + summary.dropped_by_policy} trades not published")
    if summary.stopped_by != "source_end":
        reasons.append(f"stopped early ({summary.stopped_by})")
    return "replay incomplete: " + "; ".join(reasons) + " (see the summary and the log)"
