"""PutRecords on the wire: the batcher's one hot AWS call, without botocore's walk of the model.

botocore serialises a request and parses its answer generically, walking the service model for
every record: for a 500-record PutRecords that is ~11 ms of CPU on the benchmark machine, against
~3 ms here (docs/bench-ingest.md), and the event loop serves no one meanwhile. The call itself is
two JSON fields each way (AWS JSON 1.1). Everything that is not that stays botocore's: the
endpoint, region and protocol metadata the client resolved, the credential chain (refreshed as it
expires), SigV4 signing, and error answers, which go through botocore's own parser so the batcher
sees the same ``ClientError`` codes as from the client; failures of the connection are raised as
botocore's ``HTTPClientError``, as the client raises them. Retries are the batcher's, as with the
client (whose own are off).

Not handled here, because the batcher never needs it: endpoint rules that depend on a StreamARN
parameter (the batcher names the stream), and botocore's user agent and request hooks.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.session import AioSession, get_session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.parsers import create_parser

OPERATION = "PutRecords"


class PutRecordsOverHttp:
    """``put_records(StreamName=..., Records=[{"Data": bytes, "PartitionKey": str}])``, as the
    aiobotocore client's, returning the same ``{"FailedRecordCount", "Records"}`` answer."""

    def __init__(self, client: Any, session: AioSession, http: aiohttp.ClientSession) -> None:
        model = client.meta.service_model
        self._operation = model.operation_model(OPERATION)
        self._url = client.meta.endpoint_url.rstrip("/") + "/"
        self._region = client.meta.region_name
        self._signing_name = model.signing_name
        self._headers = {
            "Content-Type": f"application/x-amz-json-{model.metadata['jsonVersion']}",
            "X-Amz-Target": f"{model.metadata['targetPrefix']}.{OPERATION}",
        }
        self._session = session
        self._credentials: Any = None
        self._http = http
        self._proxy = _proxy_for(self._url)
        self._error_parser = create_parser(model.metadata["protocol"])

    async def put_records(
        self, *, StreamName: str, Records: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        body = _body(StreamName, Records)
        frozen = await (await self._credentials_chain()).get_frozen_credentials()
        request = AWSRequest("POST", self._url, data=body, headers=self._headers)
        SigV4Auth(frozen, self._signing_name, self._region).add_auth(request)
        try:
            async with self._http.post(
                self._url, data=body, headers=dict(request.headers), proxy=self._proxy
            ) as answer:
                payload = await answer.read()
                status, headers = answer.status, answer.headers
        except aiohttp.ClientError as exc:
            # Refused, reset or cut connections, as the SDK names them: tradestream.retry judges
            # both senders' failures alike.
            raise HTTPClientError(error=exc) from exc
        if status == 200:
            result: dict[str, Any] = json.loads(payload)
            return result
        raise self._error(status, headers, payload)

    async def _credentials_chain(self) -> Any:
        # Resolved at the first call, as botocore's chain is walked once per client; the object
        # it returns refreshes temporary credentials (ECS task role, SSO) by itself.
        if self._credentials is None:
            self._credentials = await self._session.get_credentials()
            if self._credentials is None:
                raise NoCredentialsError()
        return self._credentials

    def _error(self, status: int, headers: Mapping[str, str], payload: bytes) -> ClientError:
        # The rare path: botocore's parser reads the error code however the service wrote it.
        response = {
            "status_code": status,
            "headers": {name.lower(): value for name, value in headers.items()},
            "body": payload,
        }
        parsed = self._error_parser.parse(response, self._operation.output_shape)
        return ClientError(parsed, OPERATION)


def _body(stream_name: str, records: Sequence[Mapping[str, Any]]) -> bytes:
    # Joined from parts rather than json.dumps of 500 dicts (half the CPU): base64 needs no JSON
    # escaping, and the few distinct partition keys (symbols) are escaped once each.
    keys: dict[str, bytes] = {}
    entries = []
    for record in records:
        key = record["PartitionKey"]
        quoted = keys.get(key)
        if quoted is None:
            quoted = keys[key] = json.dumps(key).encode()
        entries.append(
            b'{"Data":"' + base64.b64encode(record["Data"]) + b'","PartitionKey":' + quoted + b"}"
        )
    head = b'{"StreamName":' + json.dumps(stream_name).encode() + b',"Records":['
    return head + b",".join(entries) + b"]}"


def _proxy_for(url: str) -> str | None:
    """The proxy botocore would use for ``url`` (HTTP(S)_PROXY, NO_PROXY), found once: aiohttp's
    trust_env looks it up, and reads ~/.netrc, in a thread for every request."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


@asynccontextmanager
async def put_records_over_http(
    client: Any, *, connections: int, connect_timeout: float
) -> AsyncIterator[PutRecordsOverHttp]:
    """The sender and its connection pool, sized like the client's; the proxy and a custom CA
    bundle come from the same environment variables botocore reads."""
    bundle = os.environ.get("AWS_CA_BUNDLE")
    tls = ssl.create_default_context(cafile=bundle) if bundle else True
    connector = aiohttp.TCPConnector(limit=connections, ssl=tls)
    timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        yield PutRecordsOverHttp(client, get_session(), http)
