"""The `tradestream dlq` commands, for ``tradestream.cli.main`` to add:

    from tradestream.cli.dlq import dlq_command
    main.add_command(dlq_command)

stdout carries only results (the table, one JSON line per message, the redrive's JSON summary);
progress and counts go to stderr. docs/dlq.md describes the commands and every field.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from tradestream.dead_letters.messages import KINDS, DlqMessage, Selection
from tradestream.dead_letters.operations import Clients, list_messages, redrive
from tradestream.dead_letters.queue import QueueNotFoundError
from tradestream.dead_letters.settings import DeadLetterSettings
from tradestream.retry import error_code

F = TypeVar("F", bound=Callable[..., Any])
MAX_CELL = 60  # characters of a table cell; --json carries whole values


@click.group("dlq")
def dlq_command() -> None:
    """The hotstore's dead-letter queue: list its messages decoded, redrive them onto the stream.

    Reads STREAM_NAME, TABLE_NAME (the hotstore stack tradestream-hotstore-<table> names the
    queue) or DLQ_URL / DLQ_NAME, and the standard AWS variables (AWS_ENDPOINT_URL...)."""


def selection_options(command: F) -> F:
    """The filters both commands take: several values of one are alternatives, several filters
    must all match."""
    options = (
        click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS)),
        click.option(
            "--reason",
            "reasons",
            multiple=True,
            metavar="CODE",
            help="The hotstore's code (InvalidJson, InvalidTrade...) or the mapping's condition "
            "(RetryAttemptsExhausted, RecordAgeExceeded).",
        ),
        click.option("--shard", "shards", multiple=True, metavar="SHARD_ID"),
        click.option(
            "--symbol",
            "symbols",
            multiple=True,
            help="Partition key (the trade's symbol); on-failure messages carry none.",
        ),
        click.option("--message-id", "message_ids", multiple=True, metavar="ID"),
    )
    for option in reversed(options):
        command = option(command)
    return command


@dlq_command.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message, a line each.")
@selection_options
def list_command(as_json: bool, **filters: Sequence[str]) -> None:
    """List the DLQ's messages, decoded, without consuming them (each is received, then made
    visible again)."""
    settings, clients = _environment()
    messages: list[DlqMessage] = []
    with _aws_errors():
        for message in list_messages(settings, clients, Selection.of(**filters)):
            messages.append(message)
            if as_json:
                click.echo(json.dumps(message.to_json(), separators=(",", ":")))
    if not as_json:
        print_table(messages)
    kinds = Counter(message.kind for message in messages)
    what = ", ".join(f"{kinds[kind]} {kind}" for kind in KINDS if kinds[kind])
    click.echo(f"{len(messages)} messages" + (f" ({what})" if what else ""), err=True)


@dlq_command.command("redrive")
@click.option("--dry-run", is_flag=True, help="Put and delete nothing; report what would be.")
@selection_options
def redrive_command(dry_run: bool, **filters: Sequence[str]) -> None:
    """Put the selected messages' records back on the stream (STREAM_NAME) with their partition
    keys, reading on-failure batches back from the stream, and delete each message once all its
    records are in. Ends with a JSON summary on stdout; exit status 1 if any message was kept."""
    settings, clients = _environment()
    with _aws_errors():
        summary = redrive(
            settings,
            clients,
            Selection.of(**filters),
            dry_run=dry_run,
            progress=lambda line: click.echo(line, err=True),
        )
    click.echo(json.dumps(summary.to_json(), separators=(",", ":")))
    if not summary.complete:
        sys.exit(1)


def _environment() -> tuple[DeadLetterSettings, Clients]:
    try:
        settings = DeadLetterSettings()
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    return settings, Clients.from_environment()


@contextmanager
def _aws_errors() -> Iterator[None]:
    """AWS refusing a call (or the queue not found) ends the command with its reason, status 1."""
    try:
        yield
    except QueueNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    except (ClientError, BotoCoreError) as exc:
        raise click.ClickException(f"{error_code(exc)}: {exc}") from exc


# --- the table -------------------------------------------------------------------------------


def table_row(message: DlqMessage) -> list[str]:
    payload, encoding = message.payload()
    if payload is None:
        shown = "(in the stream)" if message.kind == "on-failure" or message.data_omitted else ""
    else:
        shown = _cut(BASE64_MARK + payload if encoding == "base64" else payload)
    position = message.position
    where = "/".join(part for part in (message.stream_name, message.shard_id) if part)
    records = str(message.batch_size) if message.kind != "unknown" else ""
    # Ids and positions whole (they are what --message-id and --shard take); prose cut short.
    return [
        message.message_id,
        message.kind,
        message.reason,
        _cut(message.error or ""),
        where,
        position,
        records,
        message.partition_key or "",
        shown,
    ]


TABLE_COLUMNS = (
    "message",
    "kind",
    "reason",
    "error",
    "stream/shard",
    "sequence number(s)",
    "records",
    "key",
    "payload",
)
BASE64_MARK = "[base64] "


def _cut(text: str) -> str:
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def print_table(messages: Sequence[DlqMessage]) -> None:
    # Imported here: rich comes with the `local` extra; --json needs only the core.
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not console.is_terminal:
        # Piped: one line per message rather than cells folded to 80 columns.
        console = Console(width=100_000)
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    for column in TABLE_COLUMNS:
        table.add_column(column, overflow="fold")
    for message in messages:
        # Text, not str: a payload's "[...]" must not be read as rich markup.
        table.add_row(*(Text(cell) for cell in table_row(message)))
    console.print(table)
