"""The ingest service's direct PutRecords (ingest_api/put_records.py) against moto server over
HTTP: it lands what the aiobotocore client lands, answers in the client's shape, fails with the
client's ClientError codes, and its SigV4 signatures pass moto's authorization check."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError

from ingest_api.app import kinesis_client
from ingest_api.put_records import PutRecordsOverHttp, put_records_over_http
from ingest_api.settings import IngestSettings
from tests.support.authorizing_moto import USER_SETUP_CALLS, authorizing_moto, user_with_policy
from tests.support.kinesis import create_stream, read_stream
from tradestream import aws
from tradestream.retry import is_transient

SETTINGS = IngestSettings(ingest_api_keys="k" * 16)


@asynccontextmanager
async def clients() -> AsyncIterator[tuple[Any, PutRecordsOverHttp]]:
    """The app's SDK client and the direct sender built on it, as the service pairs them."""
    async with (
        kinesis_client(SETTINGS) as client,
        put_records_over_http(client, connections=4, connect_timeout=5) as direct,
    ):
        yield client, direct


def entries(count: int, tag: str) -> list[dict[str, Any]]:
    # Bytes that are not UTF-8 and keys that need JSON escaping: the body must carry them intact.
    return [
        {"Data": bytes([0xFF, i % 256]) + f"{tag}-{i}".encode(), "PartitionKey": f'k"\\{i % 3}'}
        for i in range(count)
    ]


def test_direct_and_sdk_calls_land_the_same_records_with_the_same_answer(
    aws_env: str, unique: str
) -> None:
    # GIVEN a stream
    stream = f"direct-{unique}"
    kinesis = create_stream(stream, shards=2)

    async def put_both() -> tuple[dict[str, Any], dict[str, Any]]:
        async with clients() as (client, direct):
            sdk = await client.put_records(StreamName=stream, Records=entries(30, "sdk"))
            own = await direct.put_records(StreamName=stream, Records=entries(30, "direct"))
            return sdk, own

    # WHEN the same 30 records go once through each
    sdk, own = asyncio.run(put_both())

    # THEN both answers have the client's shape, every entry accepted on the same shards
    assert own["FailedRecordCount"] == sdk["FailedRecordCount"] == 0
    assert [r["ShardId"] for r in own["Records"]] == [r["ShardId"] for r in sdk["Records"]]
    assert all(r["SequenceNumber"] for r in own["Records"])
    # AND the stream holds both sets, byte for byte, under the same partition keys
    landed = {(r["Data"], r["PartitionKey"]) for r in read_stream(kinesis, stream)}
    for tag in ("sdk", "direct"):
        assert {(e["Data"], e["PartitionKey"]) for e in entries(30, tag)} <= landed
    assert len(landed) == 60


def test_errors_carry_the_codes_the_sdk_client_raises(aws_env: str, unique: str) -> None:
    # GIVEN a stream that does not exist
    async def both_errors() -> list[ClientError]:
        errors = []
        async with clients() as (client, direct):
            for sender in (client, direct):
                with pytest.raises(ClientError) as caught:
                    await sender.put_records(StreamName=f"gone-{unique}", Records=entries(2, "x"))
                errors.append(caught.value)
        return errors

    # WHEN both put to it
    sdk, own = asyncio.run(both_errors())

    # THEN the direct call fails as the SDK does: same code, operation and HTTP status
    assert own.response["Error"]["Code"] == sdk.response["Error"]["Code"]
    assert own.response["Error"]["Code"] == "ResourceNotFoundException"
    assert own.operation_name == "PutRecords"
    status = own.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == sdk.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_without_credentials_the_call_fails_as_the_sdk_would(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # GIVEN no credentials anywhere in the chain (no variables, no files, no metadata service)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    async def put() -> None:
        async with clients() as (_, direct):
            await direct.put_records(StreamName="any", Records=entries(1, "x"))

    # WHEN a call is made THEN it raises botocore's NoCredentialsError, nothing unsigned is sent
    with pytest.raises(NoCredentialsError):
        asyncio.run(put())


def test_a_cut_connection_is_the_same_transient_error_for_both_senders(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an endpoint that takes each request and closes the connection without an answer
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    async def both_errors() -> list[BaseException]:
        server = await asyncio.start_server(cut, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        errors: list[BaseException] = []
        async with server, clients() as (client, direct):
            for sender in (client, direct):
                try:
                    await sender.put_records(StreamName="any", Records=entries(1, "x"))
                except Exception as exc:
                    errors.append(exc)
        return errors

    # WHEN a call goes through each sender
    sdk, own = asyncio.run(both_errors())
    # THEN both raise one of botocore's transport errors, which the retry rule resends
    assert isinstance(sdk, HTTPClientError)
    assert isinstance(own, HTTPClientError)
    assert is_transient(sdk)
    assert is_transient(own)


@pytest.fixture(scope="module")
def checked_moto() -> Iterator[tuple[str, dict[str, str]]]:
    """A moto server checking every signature, a writer allowed PutRecords, and a stream."""
    with authorizing_moto(USER_SETUP_CALLS + 1) as url:
        keys = user_with_policy(url, "writer", ["kinesis:PutRecords"])
        aws.client("kinesis", endpoint_url=url).create_stream(StreamName="signed", ShardCount=1)
        yield url, keys


def test_signatures_pass_a_server_that_checks_them(
    checked_moto: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, keys = checked_moto
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")

    async def put(way: str) -> dict[str, Any]:
        async with clients() as (client, direct):
            sender = client if way == "sdk" else direct
            result: dict[str, Any] = await sender.put_records(
                StreamName="signed", Records=entries(3, "signed")
            )
            return result

    # GIVEN the writer's keys WHEN records are put THEN moto verifies the signature and takes them
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    assert asyncio.run(put("direct"))["FailedRecordCount"] == 0

    # GIVEN the same key id with a wrong secret WHEN records are put
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", base64.b64encode(b"not the secret").decode())
    refusals = []
    for way in ("sdk", "direct"):
        with pytest.raises(ClientError) as caught:
            asyncio.run(put(way))
        refusals.append(caught.value.response)
    # THEN both are refused alike: a 403 whose message names the signature
    sdk, own = refusals
    assert own["Error"] == sdk["Error"]
    assert own["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "signature" in own["Error"]["Message"].lower()
