"""The one place AWS clients are built, sync (boto3) and async (aiobotocore).

Endpoints come from the standard variables botocore already honours: ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` (e.g. ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``). The region comes from
``AWS_REGION`` (what Lambda and ECS set), then ``AWS_DEFAULT_REGION``.
Nothing here asks "am I local?".
"""

from __future__ import annotations

import os
import threading
from contextlib import AbstractAsyncContextManager
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "us-east-1"


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def client_config(
    *,
    max_attempts: int = 3,
    connect_timeout: float = 5,
    read_timeout: float = 30,
    max_pool_connections: int = 20,
) -> Config:
    """Client settings shared by every deployable.

    Retries stay in the SDK's "standard" mode (exponential backoff with jitter, throttling aware);
    callers that resend partial failures (PutRecords, BatchWriteItem) add their own loop on top.
    """
    return Config(
        region_name=region(),
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
    )


# For callers that retry on their own terms (tradestream.retry): the SDK must not retry under them,
# or a budget of N attempts becomes N x 3 calls.
NO_SDK_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def client(service: str, config: Config | None = None, **kwargs: Any) -> Any:
    """A boto3 client honouring the standard endpoint and region variables.

    One session is shared: building a session reloads botocore's service models (~0.1 s each
    time). Creating clients from a session is not thread-safe, hence the lock; the clients are.
    Endpoint variables are read at each client's creation, so changing them takes effect.
    """
    global _session
    merged = client_config().merge(config) if config else client_config()
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, config=merged, **kwargs)


def aio_client(
    service: str, config: Config | None = None, **kwargs: Any
) -> AbstractAsyncContextManager[Any]:
    """An aiobotocore client (an async context manager) with the same configuration."""
    # Imported here: Lambda zips carry this module but not aiobotocore (only boto3 is there).
    from aiobotocore.session import get_session

    merged = client_config().merge(config) if config else client_config()
    return get_session().create_client(service, config=merged, **kwargs)  # type: ignore[no-any-return]
