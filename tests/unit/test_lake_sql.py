"""tradestream.lake_sql without a network: the view's columns against the Glue table, the DuckDB
S3 secret, and the Athena path's polling and result paging against botocore's Stubber (moto's
Athena answers every result in one page, so paging is proven here)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tradestream.cfn.template import TEMPLATE_DIR, find_resource, load_template
from tradestream.lake_sql import (
    COLUMNS,
    PARTITION_COLUMNS,
    LakeQueryError,
    athena_value,
    plain,
    query_athena,
    s3_access,
    view_sql,
)

EXECUTION = "11111111-2222-3333-4444-555555555555"


def test_the_views_columns_are_the_glue_tables() -> None:
    # GIVEN the lake template's Glue table WHEN its columns and partition keys are read
    _, table = find_resource(load_template(TEMPLATE_DIR / "lake.yaml"), "AWS::Glue::Table")
    table_input = table["Properties"]["TableInput"]
    columns = [(c["Name"], c["Type"]) for c in table_input["StorageDescriptor"]["Columns"]]
    partitions = [(c["Name"], c["Type"]) for c in table_input["PartitionKeys"]]
    # THEN the DuckDB view declares exactly those, in that order (so SELECT * agrees)
    assert list(COLUMNS) == columns
    assert list(PARTITION_COLUMNS) == partitions


def test_the_view_reads_the_lake_prefix_recursively_with_hive_partitions() -> None:
    sql = view_sql("my-lake", "trades/")
    assert "read_json('s3://my-lake/trades/**'" in sql
    assert "hive_partitioning = true" in sql
    assert "hive_types = {'symbol': 'VARCHAR', 'date': 'VARCHAR'}" in sql
    assert "'c': 'VARCHAR[]'" in sql


@pytest.fixture
def no_endpoint_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)


def session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="it's-secret",
        aws_session_token="token",
        region_name="eu-west-1",
    )


@pytest.mark.usefixtures("no_endpoint_variables")
def test_a_local_http_endpoint_becomes_a_path_style_plain_http_secret() -> None:
    # GIVEN an S3 client pointed at a local endpoint over HTTP
    s3 = session().client("s3", endpoint_url="http://127.0.0.1:4566")
    # WHEN its access is turned into DuckDB's secret
    access = s3_access(s3, session())
    sql = access.secret_sql()
    # THEN the secret has the endpoint without scheme, path style, no TLS, and every credential
    assert (access.endpoint, access.use_ssl, access.region) == (
        "127.0.0.1:4566",
        False,
        "eu-west-1",
    )
    assert "ENDPOINT '127.0.0.1:4566'" in sql
    assert "URL_STYLE 'path'" in sql
    assert "USE_SSL false" in sql
    assert "KEY_ID 'AKIDEXAMPLE'" in sql
    assert "SESSION_TOKEN 'token'" in sql
    # AND a quote inside a value cannot end the literal
    assert "SECRET 'it''s-secret'" in sql


@pytest.mark.usefixtures("no_endpoint_variables")
def test_aws_s3_itself_keeps_duckdbs_own_endpoint() -> None:
    s3 = session().client("s3", region_name="eu-west-1")
    access = s3_access(s3, session())
    assert access.endpoint is None
    assert "ENDPOINT" not in access.secret_sql()
    assert "REGION 'eu-west-1'" in access.secret_sql()


# --- Athena ---------------------------------------------------------------------------------------


def athena_client() -> Any:
    return boto3.client(
        "athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def execution(state: str, statement_type: str = "DML", reason: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if reason:
        status["StateChangeReason"] = reason
    return {
        "QueryExecution": {
            "QueryExecutionId": EXECUTION,
            "StatementType": statement_type,
            "Status": status,
        }
    }


def page(rows: list[list[str | None]], token: str | None = None) -> dict[str, Any]:
    columns = [("symbol", "varchar"), ("n", "bigint"), ("mae", "double"), ("ok", "boolean")]
    response: dict[str, Any] = {
        "ResultSet": {
            "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in r]} for r in rows],
            "ResultSetMetadata": {
                "ColumnInfo": [{"Name": n, "Label": n, "Type": t} for n, t in columns]
            },
        }
    }
    if token:
        response["NextToken"] = token
    return response


START = {
    "QueryString": "SELECT 1",
    "QueryExecutionContext": {"Database": "tradestream"},
    "WorkGroup": "tradestream",
    "ResultConfiguration": {"OutputLocation": "s3://lake/athena-results/"},
}


def run(athena: Any, **kwargs: Any) -> Any:
    return query_athena(
        "SELECT 1",
        database="tradestream",
        workgroup="tradestream",
        output_location="s3://lake/athena-results/",
        athena=athena,
        sleep=lambda _s: None,
        **kwargs,
    )


def test_results_are_read_page_by_page_skipping_only_the_first_pages_header() -> None:
    # GIVEN a query that is queued, runs, succeeds, and whose results take two pages
    athena = athena_client()
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": EXECUTION}, START)
        for state in ("QUEUED", "RUNNING", "SUCCEEDED"):
            stub.add_response(
                "get_query_execution", execution(state), {"QueryExecutionId": EXECUTION}
            )
        first = {"QueryExecutionId": EXECUTION, "MaxResults": 1000}
        stub.add_response(
            "get_query_results",
            page([["symbol", "n", "mae", "ok"], ["AAPL", "3", "0.5", "true"]], token="next"),
            first,
        )
        stub.add_response(
            "get_query_results",
            page([["MSFT", "4", None, "false"]]),
            {**first, "NextToken": "next"},
        )
        # WHEN it runs
        result = run(athena)
        # THEN every call was made in order, and the rows are those after the one header, typed
        stub.assert_no_pending_responses()
    assert result.columns == ("symbol", "n", "mae", "ok")
    assert result.rows == [("AAPL", 3, 0.5, True), ("MSFT", 4, None, False)]
    assert result.query_execution_id == EXECUTION


def test_ddl_results_have_no_header_row_to_skip() -> None:
    athena = athena_client()
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": EXECUTION}, START)
        stub.add_response("get_query_execution", execution("SUCCEEDED", "DDL"), None)
        stub.add_response("get_query_results", page([["trades", None, None, None]]), None)
        result = run(athena)
    assert result.rows == [("trades", None, None, None)]


def test_a_failed_query_raises_with_athenas_reason() -> None:
    athena = athena_client()
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": EXECUTION}, START)
        reason = "line 1:8: Column 'price' cannot be resolved"
        stub.add_response("get_query_execution", execution("FAILED", reason=reason), None)
        with pytest.raises(LakeQueryError, match="FAILED: line 1:8: Column 'price'") as caught:
            run(athena)
    assert caught.value.code == "FAILED"


def test_a_query_past_its_timeout_is_stopped() -> None:
    athena = athena_client()
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": EXECUTION}, START)
        stub.add_response("get_query_execution", execution("RUNNING"), None)
        stub.add_response("stop_query_execution", {}, {"QueryExecutionId": EXECUTION})
        with pytest.raises(LakeQueryError, match="still RUNNING at the timeout; it was stopped"):
            run(athena, timeout_s=0)
        stub.assert_no_pending_responses()


def test_athena_refusing_the_query_is_a_lake_query_error() -> None:
    athena = athena_client()
    with Stubber(athena) as stub:
        stub.add_client_error(
            "start_query_execution", "InvalidRequestException", "WorkGroup is disabled"
        )
        with pytest.raises(LakeQueryError, match="StartQueryExecution: WorkGroup is disabled"):
            run(athena)


# --- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("42", "bigint", 42),
        ("7", "integer", 7),
        ("1.5", "double", 1.5),
        ("1.50", "decimal(5,2)", Decimal("1.50")),
        ("true", "boolean", True),
        ("2024-01-02", "date", "2024-01-02"),
        ("AAPL", "varchar", "AAPL"),
        (None, "bigint", None),
    ],
)
def test_athena_values_take_their_columns_type(text: str | None, kind: str, value: Any) -> None:
    assert athena_value(text, kind) == value


def test_values_become_what_json_can_carry() -> None:
    assert plain(Decimal("1.50")) == 1.5
    assert plain(Decimal("3")) == 3
    assert plain(float("nan")) is None
    assert plain(date(2024, 1, 2)) == "2024-01-02"
    assert plain(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05"
    assert plain([Decimal("2"), {"k": date(2024, 1, 2)}]) == [2, {"k": "2024-01-02"}]
