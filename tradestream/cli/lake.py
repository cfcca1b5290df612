"""The `tradestream lake` commands, for ``tradestream.cli.main`` to add:

    from tradestream.cli.lake import lake_command
    main.add_command(lake_command)

stdout carries only the result (a table, CSV, or one JSON array as the last line); the timing goes
to stderr. A query that cannot run ends with its message and exit status 1, not a traceback.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any, cast

import click

from tradestream.lake_sql import (
    ENGINES,
    Engine,
    LakeQueryError,
    LakeQuerySettings,
    QueryResult,
    run_query,
)

MAX_CELL = 60  # characters of one table cell; --json and --csv always carry whole values


@click.group("lake")
def lake_command() -> None:
    """SQL over the lake (the `trades` view: every trade with its prediction)."""


@lake_command.command("query")
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="Rows as ONE JSON array on the last line.")
@click.option("--csv", "as_csv", is_flag=True, help="Rows as CSV with a header line.")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="duckdb",
    show_default=True,
    help="duckdb: reads the lake's objects from S3 here. athena: the Glue table, in AWS.",
)
@click.option("--bucket", help="The lake bucket (duckdb). Default: BUCKET_NAME, tradestream-lake.")
@click.option("--prefix", help="Its data prefix (duckdb). Default: DATA_PREFIX, trades/.")
@click.option("--database", help="Glue database (athena). Default: GLUE_DATABASE, tradestream.")
@click.option("--workgroup", help="Work group (athena). Default: ATHENA_WORKGROUP, tradestream.")
@click.option(
    "--output-location",
    help="s3:// URI for results (athena). Default: ATHENA_OUTPUT_LOCATION, else the work group's.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=1, max=3600), help="Seconds (athena). Default: 300."
)
def query_command(
    sql: str,
    as_json: bool,
    as_csv: bool,
    engine: str,
    bucket: str | None,
    prefix: str | None,
    database: str | None,
    workgroup: str | None,
    output_location: str | None,
    timeout: float | None,
) -> None:
    """Run SQL against the `trades` view of the lake, e.g.

    tradestream lake query "SELECT symbol, count(*) AS n FROM trades GROUP BY symbol"

    Columns: s p v t c id rt prediction model_version prediction_error, then the partition
    columns symbol and "date" (a WHERE on them reads only those partitions). The lake is
    at-least-once: count DISTINCT id for trades.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive: choose one")
    overrides: dict[str, Any] = {
        "bucket_name": bucket,
        "data_prefix": prefix,
        "glue_database": database,
        "athena_workgroup": workgroup,
        "athena_output_location": output_location,
        "athena_timeout_s": timeout,
    }
    try:
        settings = LakeQuerySettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:  # pydantic's ValidationError names the field and the rule
        raise click.UsageError(str(exc)) from exc
    try:
        result = run_query(sql, cast(Engine, engine), settings)
    except LakeQueryError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.records(), separators=(",", ":"), allow_nan=False))
    elif as_csv:
        write_csv(result)
    else:
        click.echo(table(result.columns, [row_text(r) for r in result.records()]))
    click.echo(summary(result), err=True)


def write_csv(result: QueryResult) -> None:
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for record in result.records():
        writer.writerow([csv_cell(value) for value in record.values()])
    out.flush()


def csv_cell(value: Any) -> str:
    """NULL is an empty field; lists and maps are their JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def row_text(record: dict[str, Any]) -> list[str]:
    return [_cell(value) for value in record.values()]


def _cell(value: Any) -> str:
    text = "NULL" if value is None else csv_cell(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned text table; numbers right-aligned."""
    if not columns:
        return "(no result set)"
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(w) if right else cell.ljust(w)
            for cell, w, right in zip(cells, widths, numeric, strict=True)
        )
        return " | ".join(padded).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *(line(r) for r in rows)])


def _is_number(text: str) -> bool:
    if text == "NULL":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def summary(result: QueryResult) -> str:
    rows = len(result.rows)
    what = f"{rows} row{'s' if rows != 1 else ''} in {result.elapsed_s:.2f} s ({result.engine}"
    if result.query_execution_id:
        what += f", query execution {result.query_execution_id}"
    return what + ")"
