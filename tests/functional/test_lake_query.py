"""`tradestream lake query`: DuckDB over moto's S3 for real (the httpfs extension from PyPI, over
HTTP), on objects written in the lake's own layout (the template's Firehose prefix, the enrich
function's partition keys and lines, Firehose's object names; gzip and plain); and the Athena path
against moto's Athena, which runs no SQL: what is tested there is how the query is started
(work group, database, results location) and how its results are read back.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import json
import math
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lambdas.enrich.records import InferenceFailure, Prediction, lake_line, partition_keys
from tradestream import aws
from tradestream.cfn.template import TEMPLATE_DIR, find_resource, load_template, resolver_for
from tradestream.cli.lake import lake_command
from tradestream.lake_sql import COLUMNS, PARTITION_COLUMNS
from tradestream.local.firehose.prefix import Context, object_name
from tradestream.local.firehose.settings import delivery_stream_settings
from tradestream.local.moto_server import MotoHandle
from tradestream.synthetic import raw_frames
from tradestream.trade import Trade, stamp

DAY_MS = 86_400_000
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/trades"
SYMBOLS = ("AAPL", "MSFT", "BINANCE:BTCUSDT")
REDELIVERED = 20  # trades Firehose delivered twice (at-least-once)
VIEW_COLUMNS = [name for name, _ in (*COLUMNS, *PARTITION_COLUMNS)]


@dataclass(frozen=True)
class Lake:
    bucket: str
    lines: list[dict[str, Any]]  # every line written, duplicates included
    keys: list[str]


def trades(n: int, seed: int, shift_ms: int = 0) -> list[Trade]:
    """The first ``n`` distinct trades of the synthetic market, moved by ``shift_ms``."""
    seen: dict[str, Trade] = {}
    for frame in raw_frames(SYMBOLS, seed):
        moved = [raw.model_copy(update={"t": raw.t + shift_ms}) for raw in frame]
        for trade in stamp(moved, received_ms=max(raw.t for raw in moved) + 5):
            seen.setdefault(trade.id, trade)
        if len(seen) >= n:
            return list(seen.values())[:n]
    raise AssertionError("unreachable: the synthetic source is endless")


def inference(i: int) -> Prediction | InferenceFailure:
    if i % 50 == 49:
        return InferenceFailure("ThrottlingException after 4 attempts")
    return Prediction(round(((i * 37) % 11 - 5) * 1e-4, 6), "ridge-test")


def write_lake(bucket: str) -> Lake:
    """Objects as the delivery stream writes them: the template's Prefix evaluated with the
    enrich function's partition keys, Firehose's object names; day one gzip (.gz), day two
    uncompressed, and one object redelivered."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    resolver = resolver_for(
        template,
        parameters={"StreamArn": STREAM_ARN, "BucketName": bucket},
        outputs={"BucketName": bucket, "BucketArn": f"arn:aws:s3:::{bucket}"},
    )
    settings = delivery_stream_settings(template, resolver)
    prefix = settings.prefixes().data
    moment = datetime.now(UTC)
    day_one, day_two = trades(3000, seed=7), trades(1000, seed=8, shift_ms=DAY_MS)
    lines: list[dict[str, Any]] = []
    keys: list[str] = []

    def put(batch: list[Trade], offset: int, gzipped: bool) -> None:
        groups: dict[str, list[bytes]] = {}
        for i, trade in enumerate(batch, start=offset):
            key = prefix.evaluate(Context(moment=moment, partition_keys=partition_keys(trade)))
            line = lake_line(trade, inference(i))
            groups.setdefault(key, []).append(line)
            lines.append(json.loads(line))
        for folder, body in groups.items():
            extension = ".gz" if gzipped else ""
            key = folder + object_name(settings.delivery_stream_name, 1, moment, extension)
            data = b"".join(body)
            s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(data) if gzipped else data)
            keys.append(key)

    put(day_one, 0, gzipped=True)
    put(day_two, len(day_one), gzipped=False)
    put(day_one[:REDELIVERED], 0, gzipped=False)
    # Failed records live under the error prefix: they are not trades, nor part of the view.
    s3.put_object(
        Bucket=bucket,
        Key=f"errors/processing-failed/{moment:%Y/%m/%d}/x",
        Body=b'{"errorCode":"Lambda.FunctionError"}\n',
    )
    return Lake(bucket, lines, keys)


@pytest.fixture
def lake(aws_env: str, unique: str) -> Lake:
    return write_lake(f"lake-q-{unique}")


def query(*args: str) -> Result:
    return CliRunner().invoke(lake_command, ["query", *args])


def rows(lake: Lake, sql: str) -> list[dict[str, Any]]:
    result = query("--bucket", lake.bucket, "--json", sql)
    assert result.exit_code == 0, result.output
    parsed: list[dict[str, Any]] = json.loads(result.stdout.splitlines()[-1])
    return parsed


def utc_day(t: int) -> str:
    return datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d")


# --- DuckDB over moto's S3 --------------------------------------------------------------------


def test_the_view_counts_every_line_and_every_distinct_trade(lake: Lake) -> None:
    # GIVEN a lake of 4,000 trades, 20 of them delivered twice, in gzip and plain objects
    assert any(k.endswith(".gz") for k in lake.keys)
    assert any(not k.endswith(".gz") for k in lake.keys)
    # WHEN lines and distinct ids are counted
    (counts,) = rows(lake, "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM trades")
    # THEN every line is read once (the error prefix is not), duplicates collapse on the id
    assert counts == {"n": 4000 + REDELIVERED, "ids": 4000}
    assert len(lake.lines) == 4000 + REDELIVERED


def test_count_per_symbol_and_day_matches_what_was_written(lake: Lake) -> None:
    # GIVEN the lake WHEN distinct trades are counted per partition
    found = rows(
        lake,
        'SELECT symbol, "date", count(DISTINCT id) AS n FROM trades GROUP BY ALL ORDER BY ALL',
    )
    # THEN the counts are the written ones, for each symbol (the crypto one unescaped) and day
    written = Counter(
        (line["s"], utc_day(line["t"])) for line in {r["id"]: r for r in lake.lines}.values()
    )
    assert {(r["symbol"], r["date"]): r["n"] for r in found} == dict(written)
    assert {r["symbol"] for r in found} == set(SYMBOLS)
    assert {r["date"] for r in found} == {"2024-01-02", "2024-01-03"}


def test_partition_columns_agree_with_every_record(lake: Lake) -> None:
    # GIVEN the lake WHEN each row's partition columns are compared with its own fields
    (check,) = rows(
        lake,
        "SELECT count(*) FILTER (WHERE symbol <> s) AS wrong_symbol, "
        "count(*) FILTER (WHERE \"date\" <> strftime(make_timestamp(t * 1000), '%Y-%m-%d')) "
        'AS wrong_date, count(*) FILTER (WHERE symbol IS NULL OR "date" IS NULL) AS missing '
        "FROM trades",
    )
    # THEN the key's symbol is the record's symbol and its date the UTC day of the trade time
    assert check == {"wrong_symbol": 0, "wrong_date": 0, "missing": 0}


def test_select_star_has_the_glue_tables_columns_then_its_partitions(lake: Lake) -> None:
    # GIVEN the lake WHEN one row is selected with *
    result = query("--bucket", lake.bucket, "--csv", "SELECT * FROM trades ORDER BY t, id LIMIT 3")
    # THEN the CSV header is the table's columns in order, and the rows are the written lines
    assert result.exit_code == 0, result.output
    header, *body = list(csv.reader(io.StringIO(result.stdout)))
    assert header == VIEW_COLUMNS
    first = min(lake.lines, key=lambda line: (line["t"], line["id"]))
    row = dict(zip(header, body[0], strict=True))
    assert (row["id"], row["s"], float(row["p"]), int(row["t"])) == (
        first["id"],
        first["s"],
        first["p"],
        first["t"],
    )
    assert (json.loads(row["c"]) if row["c"] else None) == first.get("c")
    assert row["symbol"] == first["s"]
    assert row["date"] == utc_day(first["t"])
    assert len(body) == 3


def test_a_where_on_a_partition_reads_that_partition_only(aws_env: str, unique: str) -> None:
    # GIVEN a lake where another partition holds an object that is not JSON
    lake = write_lake(f"lake-w-{unique}")
    s3 = aws.client("s3")
    s3.put_object(
        Bucket=lake.bucket, Key="trades/symbol=MSFT/date=2024-01-02/broken", Body=b"{oops\n"
    )
    crypto = [r for r in {r["id"]: r for r in lake.lines}.values() if r["s"] == "BINANCE:BTCUSDT"]

    # WHEN the crypto symbol's trades are counted by its partition column
    (found,) = rows(
        lake, "SELECT count(DISTINCT id) AS n FROM trades WHERE symbol = 'BINANCE:BTCUSDT'"
    )
    # THEN the count is right, and the broken object was never read (the partition was pruned)
    assert found == {"n": len(crypto)}
    # AND a query that does read it fails with DuckDB's reason, naming the object
    result = query("--bucket", lake.bucket, "SELECT count(*) FROM trades")
    assert result.exit_code == 1
    assert "Malformed JSON" in result.output
    assert "symbol=MSFT/date=2024-01-02/broken" in result.output


PREDICTION_ERROR_SQL = """
WITH d AS (SELECT DISTINCT ON (id) * FROM trades),
     ticks AS (SELECT symbol, t, avg(p) AS p FROM d GROUP BY symbol, t)
SELECT d.symbol, count(*) AS scored,
       avg(abs(d.prediction - ln(ticks.p / d.p))) AS mae
FROM d ASOF JOIN ticks ON d.symbol = ticks.symbol AND d.t + 250 >= ticks.t
WHERE ticks.t > d.t AND d.prediction IS NOT NULL
GROUP BY d.symbol ORDER BY d.symbol
"""


def test_the_prediction_error_example_of_the_docs(lake: Lake) -> None:
    # GIVEN the lake WHEN the docs' query scores each prediction against the log return to the
    # symbol's last price at or before t + 250 ms (the model's horizon; an ASOF join on one
    # price per millisecond, so trades in the same millisecond give one answer)
    found = rows(lake, PREDICTION_ERROR_SQL)
    # THEN it agrees with the same label computed here from the written lines
    distinct = list({r["id"]: r for r in lake.lines}.values())
    ticks: dict[str, dict[int, list[float]]] = {}
    for line in distinct:
        ticks.setdefault(line["s"], {}).setdefault(line["t"], []).append(line["p"])
    expected: dict[str, list[float]] = {}
    for line in distinct:
        times = sorted(ticks[line["s"]])
        last = times[bisect.bisect_right(times, line["t"] + 250) - 1]
        if last > line["t"] and line["prediction"] is not None:
            later = ticks[line["s"]][last]
            label = math.log(sum(later) / len(later) / line["p"])
            expected.setdefault(line["s"], []).append(abs(line["prediction"] - label))
    assert [r["symbol"] for r in found] == sorted(expected)
    for row in found:
        errors = expected[row["symbol"]]
        assert row["scored"] == len(errors)
        assert row["mae"] == pytest.approx(sum(errors) / len(errors), rel=1e-9)


def test_json_is_one_array_on_the_last_stdout_line_of_the_process(lake: Lake) -> None:
    # GIVEN the lake named by BUCKET_NAME, as the other deployables are configured
    env = {**os.environ, "BUCKET_NAME": lake.bucket}
    # WHEN the command runs as its own process
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tradestream.cli.lake import lake_command; lake_command()",
            "query",
            "--json",
            "SELECT symbol, count(DISTINCT id) AS n, min(t) AS first_t, any_value(c) AS c_any "
            "FROM trades WHERE \"date\" = '2024-01-03' GROUP BY symbol ORDER BY symbol",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    # THEN it succeeds and its last stdout line is a JSON array of one object per row
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout.splitlines()[-1])
    day_two = [
        r for r in {r["id"]: r for r in lake.lines}.values() if utc_day(r["t"]) == "2024-01-03"
    ]
    assert [(r["symbol"], r["n"], r["first_t"]) for r in parsed] == [
        (s, sum(1 for r in day_two if r["s"] == s), min(r["t"] for r in day_two if r["s"] == s))
        for s in sorted(SYMBOLS)
    ]
    # AND the timing went to stderr, not between the results
    assert "rows in" in done.stderr
    assert "rows in" not in done.stdout


def test_the_default_output_is_a_table(lake: Lake) -> None:
    # WHEN a query runs without --json or --csv
    result = query(
        "--bucket", lake.bucket, "SELECT symbol, count(*) AS n FROM trades GROUP BY 1 ORDER BY 1"
    )
    # THEN it prints a header, a rule and one aligned line per row
    assert result.exit_code == 0, result.output
    header, rule, *lines = result.stdout.splitlines()
    assert header.split() == ["symbol", "|", "n"]
    assert set(rule) <= {"-", "+"}
    assert [line.split("|")[0].strip() for line in lines] == sorted(SYMBOLS)


def test_an_empty_lake_has_the_view_with_no_rows(aws_env: str, unique: str) -> None:
    # GIVEN a lake bucket Firehose has not written to yet
    bucket = f"lake-e-{unique}"
    aws.client("s3").create_bucket(Bucket=bucket)
    # WHEN it is queried THEN the view exists, with its columns, and counts nothing
    result = query("--bucket", bucket, "--csv", "SELECT * FROM trades")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [",".join(VIEW_COLUMNS)]
    (counted,) = rows(Lake(bucket, [], []), "SELECT count(*) AS n FROM trades")
    assert counted == {"n": 0}


def test_bad_sql_is_a_clear_error(lake: Lake) -> None:
    # WHEN the SQL does not parse, or names a column the view lacks
    bad = query("--bucket", lake.bucket, "--json", "SELEC count(*) FROM trades")
    unknown = query("--bucket", lake.bucket, "SELECT price FROM trades")
    # THEN each exits 1 with DuckDB's reason, no traceback and no JSON line
    assert bad.exit_code == 1
    assert 'syntax error at or near "SELEC"' in bad.output
    assert "Traceback" not in bad.output
    assert bad.stdout == ""
    assert unknown.exit_code == 1
    assert 'Referenced column "price" not found' in unknown.output


def test_a_missing_bucket_says_which_and_what_to_set(aws_env: str, unique: str) -> None:
    # WHEN the bucket does not exist
    result = query("--bucket", f"no-such-{unique}", "SELECT 1")
    # THEN the error names it and the setting to change
    assert result.exit_code == 1
    assert f"bucket 'no-such-{unique}' does not exist" in result.output
    assert "BUCKET_NAME" in result.output


def test_json_and_csv_together_are_refused(lake: Lake) -> None:
    result = query("--bucket", lake.bucket, "--json", "--csv", "SELECT 1")
    assert result.exit_code == 2
    assert "--json and --csv are exclusive" in result.output


# --- Athena (moto) -----------------------------------------------------------------------------


def template_workgroup(bucket: str) -> dict[str, Any]:
    """The lake template's work group, resolved for a stack whose bucket is ``bucket``."""
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    resolver = resolver_for(
        template,
        parameters={"StreamArn": STREAM_ARN, "BucketName": bucket, "GlueDatabaseName": "lakedb"},
        outputs={"BucketName": bucket, "BucketArn": f"arn:aws:s3:::{bucket}"},
    )
    _, resource = find_resource(template, "AWS::Athena::WorkGroup")
    props: dict[str, Any] = resolver.resolve(resource["Properties"])
    # Parameters resolve to text, as CloudFormation passes them; the API takes a number.
    configuration = props["WorkGroupConfiguration"]
    configuration["BytesScannedCutoffPerQuery"] = int(configuration["BytesScannedCutoffPerQuery"])
    return props


def queue_athena_results(moto: MotoHandle, results: list[dict[str, Any]]) -> None:
    """Give moto's Athena the result set of the next query (it runs no SQL itself)."""
    request = urllib.request.Request(
        f"{moto.url}/moto-api/static/athena/query-results",
        data=json.dumps({"results": results}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def cell(value: str | None) -> dict[str, str]:
    return {} if value is None else {"VarCharValue": value}


def test_athena_runs_in_the_templates_work_group_and_reads_every_row(
    aws_env: str, moto: MotoHandle, unique: str
) -> None:
    # GIVEN the lake template's work group (its name, enforced results location and encryption)
    props = template_workgroup(f"lake-a-{unique}")
    name = f"{props['Name']}-{unique}"
    athena = aws.client("athena")
    athena.create_work_group(
        Name=name,
        Configuration=props["WorkGroupConfiguration"],
        Description=props["Description"],
    )
    # AND the result Athena would give: the header row, then the rows, typed by column
    columns = [("symbol", "varchar"), ("n", "bigint"), ("mae", "double"), ("any_error", "varchar")]
    queue_athena_results(
        moto,
        [
            {
                "rows": [
                    {"Data": [cell(c) for c, _ in columns]},
                    {"Data": [cell("AAPL"), cell("1200"), cell("0.00012"), cell(None)]},
                    {"Data": [cell("BINANCE:BTCUSDT"), cell("40"), cell(None), cell("Throttling")]},
                ],
                "column_info": [
                    {"Name": c, "Label": c, "Type": t, "Nullable": "NULLABLE"} for c, t in columns
                ],
            }
        ],
    )
    sql = (
        "SELECT symbol, count(DISTINCT id) AS n FROM trades "
        "WHERE \"date\" = '2024-01-02' GROUP BY 1"
    )

    # WHEN the query runs on the athena engine
    result = query("--engine", "athena", "--workgroup", name, "--database", "lakedb", "--json", sql)

    # THEN every row after the header comes back, typed
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1]) == [
        {"symbol": "AAPL", "n": 1200, "mae": 0.00012, "any_error": None},
        {"symbol": "BINANCE:BTCUSDT", "n": 40, "mae": None, "any_error": "Throttling"},
    ]
    # AND the execution ran that SQL in the work group, against the database, with its results
    # under the work group's location (athena-results/ in the lake bucket)
    (execution_id,) = athena.list_query_executions(WorkGroup=name)["QueryExecutionIds"]
    assert execution_id in result.stderr
    execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["Query"] == sql
    assert execution["WorkGroup"] == name
    assert execution["QueryExecutionContext"] == {"Database": "lakedb"}
    location = props["WorkGroupConfiguration"]["ResultConfiguration"]["OutputLocation"]
    assert location == f"s3://lake-a-{unique}/athena-results/"
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(location)


def test_athena_with_an_unknown_work_group_says_how_to_get_one(aws_env: str, unique: str) -> None:
    result = query("--engine", "athena", "--workgroup", f"nope-{unique}", "SELECT 1")
    assert result.exit_code == 1
    assert f"Athena work group 'nope-{unique}' not found" in result.output
    assert "AthenaWorkGroupName" in result.output


def test_athena_with_a_work_group_without_results_location_asks_for_one(
    aws_env: str, unique: str
) -> None:
    # GIVEN a work group with no results location
    name = f"bare-{unique}"
    aws.client("athena").create_work_group(Name=name, Configuration={})
    # WHEN a query runs in it without --output-location THEN the error says what to pass
    result = query("--engine", "athena", "--workgroup", name, "SELECT 1")
    assert result.exit_code == 1
    assert "--output-location" in result.output
    # AND with it, the query is started with that location
    ok = query(
        "--engine",
        "athena",
        "--workgroup",
        name,
        "--output-location",
        "s3://r/q/",
        "--json",
        "SELECT 1",
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout.splitlines()[-1]) == []  # moto's result without a queued one
    athena = aws.client("athena")
    (execution_id,) = athena.list_query_executions(WorkGroup=name)["QueryExecutionIds"]
    execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["ResultConfiguration"]["OutputLocation"].startswith("s3://r/q/")
