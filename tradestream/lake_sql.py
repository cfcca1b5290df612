"""SQL over the lake: a ``trades`` view queried with DuckDB (local, over S3) or Athena (the Glue
table), for ``tradestream lake query``.

The view has the Glue table's columns (``infra/cloudformation/lake.yaml``, ``GlueTable``; a test
keeps ``COLUMNS`` equal to them) followed by its partition columns, so ``SELECT *`` gives the same
columns in both engines and one query runs in either (dialect differences aside):

- ``duckdb``: ``read_json`` over ``s3://BUCKET/DATA_PREFIX**`` with Hive partitioning. The
  partition columns come from the key (``symbol=BINANCE%3ABTCUSDT`` is ``BINANCE:BTCUSDT``:
  DuckDB unescapes it as Hive does) and a filter on them skips the other partitions' objects
  unread. Objects may be gzip (by their ``.gz`` extension, as Firehose names them) or plain
  NDJSON; keys the record does not have are NULL, keys the table does not have are ignored.
  Credentials are botocore's (any of its sources), handed to DuckDB as an S3 secret with the
  endpoint the project's S3 client uses (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``).
  httpfs is loaded from the installed ``duckdb-ext-httpfs`` package: nothing is downloaded.
- ``athena``: StartQueryExecution in the work group, against the Glue database, polled until it
  ends, results read page by page (GetQueryResults). Values come back typed from the result's
  column types (Athena sends every value as text).

Not supported: gzip objects without a ``.gz`` extension (DuckDB picks the codec by name; Firehose
and the emulation always add it), Parquet objects, and the error prefix (it is not a table).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradestream import aws

Engine = Literal["duckdb", "athena"]
ENGINES: tuple[Engine, ...] = ("duckdb", "athena")
VIEW = "trades"

# The Glue table's columns and partition keys, in its order, with their Glue types.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("s", "string"),
    ("p", "double"),
    ("v", "double"),
    ("t", "bigint"),
    ("c", "array<string>"),
    ("id", "string"),
    ("rt", "bigint"),
    ("prediction", "double"),
    ("model_version", "string"),
    ("prediction_error", "string"),
)
PARTITION_COLUMNS: tuple[tuple[str, str], ...] = (("symbol", "string"), ("date", "string"))
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "double": "DOUBLE",
    "bigint": "BIGINT",
    "array<string>": "VARCHAR[]",
}

LAKE_EXTRA_HINT = "pip install 'tradestream[lake]'"


class LakeQueryError(Exception):
    """A query that could not run: its message says why and what to change.

    ``code`` is the AWS error code when AWS refused (e.g. ``InvalidRequestException``), else the
    engine's own error class name (``ParserException``) or a short reason (``NoSuchBucket``)."""

    def __init__(self, message: str, code: str = "LakeQueryError") -> None:
        super().__init__(message)
        self.code = code


class LakeQuerySettings(BaseSettings):
    """Where the lake is, from the same UPPER_CASE variables the other deployables read."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    bucket_name: str = Field(
        default="tradestream-lake", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    )
    data_prefix: str = Field(default="trades/", pattern=r"^([^'\\*?\[\]{}]+/)?$")
    glue_database: str = Field(default="tradestream", pattern=r"^[a-z0-9_]{1,255}$")
    athena_workgroup: str = Field(default="tradestream", pattern=r"^[a-zA-Z0-9._-]{1,128}$")
    athena_output_location: str | None = Field(default=None, pattern=r"^s3://.+")
    athena_timeout_s: float = Field(default=300, gt=0, le=3600)


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    engine: Engine
    elapsed_s: float
    query_execution_id: str | None = None  # Athena's

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready object per row (dates as ISO 8601 text, decimals as numbers)."""
        return [
            {name: plain(value) for name, value in zip(self.columns, row, strict=True)}
            for row in self.rows
        ]


def run_query(
    sql: str,
    engine: Engine = "duckdb",
    settings: LakeQuerySettings | None = None,
) -> QueryResult:
    """Run ``sql`` (which names the ``trades`` view) on ``engine``; LakeQueryError if it fails."""
    chosen = settings or LakeQuerySettings()
    if engine == "duckdb":
        return query_duckdb(sql, bucket=chosen.bucket_name, prefix=chosen.data_prefix)
    if engine == "athena":
        return query_athena(
            sql,
            database=chosen.glue_database,
            workgroup=chosen.athena_workgroup,
            output_location=chosen.athena_output_location,
            timeout_s=chosen.athena_timeout_s,
        )
    raise LakeQueryError(f"unknown engine {engine!r}: use one of {ENGINES}", "UnknownEngine")


# --- DuckDB ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Access:
    """What DuckDB's S3 secret needs, resolved the way the project's S3 client resolves it."""

    key_id: str
    secret: str
    session_token: str | None
    region: str
    endpoint: str | None  # host[:port][/path] of a non-AWS endpoint; None: AWS's own
    use_ssl: bool = True

    def secret_sql(self, name: str = "lake") -> str:
        options = [
            "TYPE s3",
            f"KEY_ID {_literal(self.key_id)}",
            f"SECRET {_literal(self.secret)}",
            f"REGION {_literal(self.region)}",
        ]
        if self.session_token:
            options.append(f"SESSION_TOKEN {_literal(self.session_token)}")
        if self.endpoint:
            # moto, LocalStack and MinIO serve buckets as paths, not as virtual hosts.
            options += [
                f"ENDPOINT {_literal(self.endpoint)}",
                "URL_STYLE 'path'",
                f"USE_SSL {'true' if self.use_ssl else 'false'}",
            ]
        return f"CREATE OR REPLACE SECRET {name} ({', '.join(options)})"


def s3_access(s3: Any, session: boto3.session.Session | None = None) -> S3Access:
    """Credentials from botocore's chain (variables, profile, SSO, instance role...) and the
    endpoint of ``s3``, a client from ``tradestream.aws.client("s3")``."""
    credentials = (session or boto3.session.Session()).get_credentials()
    if credentials is None:
        raise LakeQueryError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
            "AWS_PROFILE (any value will do against moto or LocalStack)",
            "NoCredentials",
        )
    frozen = credentials.get_frozen_credentials()
    url = urlsplit(str(s3.meta.endpoint_url))
    host = url.hostname or ""
    own_endpoint = host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
    endpoint = None if own_endpoint else f"{url.netloc}{url.path.rstrip('/')}"
    return S3Access(
        key_id=frozen.access_key,
        secret=frozen.secret_key,
        session_token=frozen.token,
        region=str(s3.meta.region_name or aws.region()),
        endpoint=endpoint,
        use_ssl=url.scheme != "http",
    )


def view_sql(bucket: str, prefix: str, *, has_objects: bool = True) -> str:
    """The ``trades`` view: the lake's objects, or no rows (same columns) when there are none."""
    select = ", ".join(_quoted(name) for name, _ in (*COLUMNS, *PARTITION_COLUMNS))
    if not has_objects:
        typed = ", ".join(
            f"CAST(NULL AS {_DUCKDB_TYPES[kind]}) AS {_quoted(name)}"
            for name, kind in (*COLUMNS, *PARTITION_COLUMNS)
        )
        return f"CREATE OR REPLACE VIEW {VIEW} AS SELECT {typed} WHERE false"
    columns = _struct({name: _DUCKDB_TYPES[kind] for name, kind in COLUMNS})
    partitions = _struct({name: _DUCKDB_TYPES[kind] for name, kind in PARTITION_COLUMNS})
    # Built as text (DDL takes no parameters); the only values in it pass through _literal.
    return (
        f"CREATE OR REPLACE VIEW {VIEW} AS SELECT {select} FROM read_json("  # noqa: S608
        f"{_literal(lake_glob(bucket, prefix))}, format = 'newline_delimited', "
        f"compression = 'auto_detect', columns = {columns}, "
        f"hive_partitioning = true, hive_types = {partitions})"
    )


def lake_glob(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}**"


def _duckdb() -> tuple[Any, Any]:
    # Imported here: the core installs without DuckDB (it is the lake extra's).
    try:
        import duckdb
        import duckdb_ext
    except ImportError as exc:
        raise LakeQueryError(
            f"the duckdb engine needs the lake extra ({exc.name} is not installed): "
            f"{LAKE_EXTRA_HINT}",
            "MissingExtra",
        ) from exc
    return duckdb, duckdb_ext


def connect(access: S3Access) -> Any:
    """A DuckDB connection with httpfs loaded from the installed package and the S3 secret."""
    duckdb, duckdb_ext = _duckdb()
    con = duckdb.connect()
    duckdb_ext.init(con)  # its extension directory, and never download one
    con.execute("SET autoload_known_extensions = false")
    # A long query would draw a progress bar on stdout, between the caller's own lines.
    con.execute("SET enable_progress_bar = false")
    con.execute("LOAD httpfs")
    con.execute(access.secret_sql())
    return con


def query_duckdb(
    sql: str, *, bucket: str, prefix: str = "trades/", s3: Any | None = None
) -> QueryResult:
    """Run ``sql`` in DuckDB over the lake objects of ``bucket`` under ``prefix``."""
    duckdb, _ = _duckdb()
    started = time.monotonic()
    client = s3 or aws.client("s3")
    _check_bucket(client, bucket)
    con = connect(s3_access(client))
    try:
        has_objects = _has_objects(client, bucket, prefix)
        con.execute(view_sql(bucket, prefix, has_objects=has_objects))
        cursor = con.execute(sql)
        columns = tuple(d[0] for d in cursor.description or ())
        rows = cursor.fetchall() if columns else []
    except duckdb.Error as exc:
        raise LakeQueryError(f"DuckDB: {exc}", type(exc).__name__) from exc
    finally:
        con.close()
    return QueryResult(columns, rows, "duckdb", time.monotonic() - started)


def _check_bucket(s3: Any, bucket: str) -> None:
    # DuckDB would only say "HTTP 404" about a listing URL; say which bucket and what to set.
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise LakeQueryError(
                f"bucket {bucket!r} does not exist at {s3.meta.endpoint_url}: set BUCKET_NAME "
                "or --bucket to the lake's bucket (the lake stack's BucketName output)",
                "NoSuchBucket",
            ) from exc
        raise LakeQueryError(f"cannot read bucket {bucket!r}: {exc}", code) from exc
    except BotoCoreError as exc:
        raise LakeQueryError(f"cannot reach S3 for bucket {bucket!r}: {exc}", "S3") from exc


def _has_objects(s3: Any, bucket: str, prefix: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _struct(fields: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in fields.items()) + "}"


# --- Athena ---------------------------------------------------------------------------------------

_ENDED = {"SUCCEEDED", "FAILED", "CANCELLED"}
_INTEGER_TYPES = {"tinyint", "smallint", "integer", "int", "bigint"}
_FLOAT_TYPES = {"double", "float", "real"}


def query_athena(
    sql: str,
    *,
    database: str,
    workgroup: str,
    output_location: str | None = None,
    timeout_s: float = 300,
    athena: Any | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> QueryResult:
    """Run ``sql`` in Athena in ``workgroup`` against the Glue ``database``.

    The results go to ``output_location`` if given, else to the work group's own location (read
    from the work group, so a missing one is said before the query runs); a work group that
    enforces its settings (the lake stack's does) overrides either. Past ``timeout_s`` the query
    is stopped."""
    started = time.monotonic()
    client = athena or aws.client("athena")
    location = output_location or _workgroup_location(client, workgroup)
    try:
        execution_id = str(
            client.start_query_execution(
                QueryString=sql,
                QueryExecutionContext={"Database": database},
                WorkGroup=workgroup,
                ResultConfiguration={"OutputLocation": location},
            )["QueryExecutionId"]
        )
    except ClientError as exc:
        raise _athena_error("StartQueryExecution", exc) from exc
    execution = _wait(client, execution_id, started + timeout_s, sleep)
    columns, rows = _results(client, execution_id, str(execution.get("StatementType", "DML")))
    return QueryResult(columns, rows, "athena", time.monotonic() - started, execution_id)


def _workgroup_location(athena: Any, workgroup: str) -> str:
    try:
        found = athena.get_work_group(WorkGroup=workgroup).get("WorkGroup")
    except ClientError as exc:
        raise LakeQueryError(
            f"Athena work group {workgroup!r} not found ({exc}): deploy the lake stack to AWS "
            "(its AthenaWorkGroupName output) or pass --workgroup / ATHENA_WORKGROUP",
            _code(exc),
        ) from exc
    if not found:  # moto answers an unknown work group with null, not an error
        raise LakeQueryError(
            f"Athena work group {workgroup!r} not found: deploy the lake stack to AWS (its "
            "AthenaWorkGroupName output) or pass --workgroup / ATHENA_WORKGROUP",
            "InvalidRequestException",
        )
    configuration = found.get("Configuration") or {}
    location = (configuration.get("ResultConfiguration") or {}).get("OutputLocation")
    if not location:
        raise LakeQueryError(
            f"Athena work group {workgroup!r} has no query results location: pass "
            "--output-location s3://BUCKET/PREFIX/ (or ATHENA_OUTPUT_LOCATION)",
            "NoOutputLocation",
        )
    return str(location)


def _wait(
    athena: Any, execution_id: str, deadline: float, sleep: Callable[[float], None]
) -> dict[str, Any]:
    delay = 0.1
    while True:
        try:
            execution: dict[str, Any] = athena.get_query_execution(QueryExecutionId=execution_id)[
                "QueryExecution"
            ]
        except ClientError as exc:
            raise _athena_error("GetQueryExecution", exc) from exc
        status = execution.get("Status", {})
        state = status.get("State")
        if state == "SUCCEEDED":
            return execution
        if state in _ENDED:
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get(
                "ErrorMessage", "no reason given"
            )
            raise LakeQueryError(f"Athena query {execution_id} {state}: {reason}", str(state))
        if time.monotonic() >= deadline:
            athena.stop_query_execution(QueryExecutionId=execution_id)
            raise LakeQueryError(
                f"Athena query {execution_id} still {state} at the timeout; it was stopped "
                "(raise ATHENA_TIMEOUT_S / --timeout, or narrow the query with a WHERE on "
                "symbol or date)",
                "Timeout",
            )
        sleep(delay)
        delay = min(delay * 2, 2.0)  # short queries answer in well under a second


def _results(
    athena: Any, execution_id: str, statement_type: str
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    columns: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] = []
    # A SELECT's (DML) first row repeats the column names; DDL and utility results have none.
    header_pending = statement_type == "DML"
    pages = athena.get_paginator("get_query_results").paginate(
        QueryExecutionId=execution_id, PaginationConfig={"PageSize": 1000}
    )
    try:
        for page in pages:
            result_set = page.get("ResultSet", {})
            if not columns:
                info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = tuple(str(c.get("Label") or c["Name"]) for c in info)
                types = tuple(str(c.get("Type", "varchar")).lower() for c in info)
            for row in result_set.get("Rows", []):
                if header_pending:
                    header_pending = False
                    continue
                rows.append(_typed_row(row.get("Data", []), types))
    except ClientError as exc:
        raise _athena_error("GetQueryResults", exc) from exc
    return columns, rows


def _typed_row(data: Iterable[Mapping[str, str]], types: tuple[str, ...]) -> tuple[Any, ...]:
    cells = list(data)
    return tuple(
        athena_value(cell.get("VarCharValue"), types[i] if i < len(types) else "varchar")
        for i, cell in enumerate(cells)
    )


def athena_value(text: str | None, athena_type: str) -> Any:
    """A result cell (always text, absent for NULL) as the Python value of its column type."""
    if text is None:
        return None
    base = athena_type.split("(", 1)[0].strip()
    if base in _INTEGER_TYPES:
        return int(text)
    if base in _FLOAT_TYPES:
        return float(text)
    if base == "decimal":
        return Decimal(text)
    if base == "boolean":
        return text.lower() == "true"
    return text


def _athena_error(operation: str, exc: ClientError) -> LakeQueryError:
    message = exc.response.get("Error", {}).get("Message") or str(exc)
    return LakeQueryError(f"Athena {operation}: {message}", _code(exc))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "ClientError"))


# --- values ---------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` as JSON can carry it: ISO 8601 for times, numbers for decimals, NaN as null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)
