"""The three targets, and the endpoint each one talks to.

- ``aws``: AWS itself, with the credentials and region the standard variables or profile give.
  Refused while ``AWS_ENDPOINT_URL`` is set: that variable would silently send "aws" elsewhere.
- ``localstack``: ``AWS_ENDPOINT_URL`` (``http://localhost:4566`` if unset), dummy credentials
  unless some are set. Deploys what the local runtime needs (``tradestream.deploy.localstack``).
- ``local``: moto. ``AWS_ENDPOINT_URL`` when set (a moto server you run, e.g. the one
  ``tradestream up`` prints); otherwise an embedded moto server that lives for the command: a
  rehearsal of the whole AWS deployment, every stack moto's CloudFormation can create.

Like every other part of the project, the targets differ only in configuration: the variables
are set for the duration of the command, and the AWS clients read them as usual.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tradestream.deploy.errors import TargetError

log = logging.getLogger(__name__)

TARGET_NAMES = ("aws", "localstack", "local")
LOCALSTACK_URL = "http://localhost:4566"


@dataclass(frozen=True)
class Target:
    """Where a deploy goes, and what that endpoint's CloudFormation can and cannot do."""

    name: str
    # moto's ExecuteChangeSet keeps the old parameters and outputs; see tradestream.cfn.stacks.
    change_sets: bool
    # moto cannot create lake.yaml's delivery stream (nor resolve its ARN output), so the moto
    # rehearsal deploys the lake in its local flavour: the bucket, without Firehose and enrich.
    lake_flavour: str
    hotstore_flavour: str = "aws"


TARGETS = {
    "aws": Target("aws", change_sets=True, lake_flavour="aws"),
    "local": Target("local", change_sets=False, lake_flavour="local"),
}


def check_target(name: str) -> str:
    if name not in TARGET_NAMES:
        raise TargetError(f"unknown target {name!r}: use one of {', '.join(TARGET_NAMES)}")
    return name


@contextmanager
def endpoint(
    target: str, region: str | None = None, *, embedded: bool = True
) -> Iterator[str | None]:
    """Set the environment for ``target`` for the block; yield the endpoint URL (None for AWS).

    ``embedded=False`` refuses to start a throwaway moto server (``destroy`` needs the server
    that was deployed into).
    """
    check_target(target)
    saved = dict(os.environ)
    try:
        if region:
            os.environ["AWS_REGION"] = region
        if target == "aws":
            configured = os.environ.get("AWS_ENDPOINT_URL")
            if configured:
                raise TargetError(
                    f"AWS_ENDPOINT_URL is set ({configured}), so --target aws would not reach "
                    "AWS: unset it, or use --target localstack / --target local"
                )
            yield None
        elif target == "localstack":
            os.environ.setdefault("AWS_ENDPOINT_URL", LOCALSTACK_URL)
            os.environ.setdefault("AWS_REGION", "us-east-1")
            _ensure_credentials()
            yield os.environ["AWS_ENDPOINT_URL"]
        else:
            os.environ.setdefault("AWS_REGION", "us-east-1")
            _ensure_credentials()
            yield from _moto(embedded)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _ensure_credentials() -> None:
    # Imported here: moto_server loads moto, which only the local targets need.
    from tradestream.local.moto_server import ensure_credentials

    ensure_credentials()


def _moto(embedded: bool) -> Iterator[str]:
    from tradestream.local.moto_server import start_moto

    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield configured
        return
    if not embedded:
        raise TargetError(
            "--target local without AWS_ENDPOINT_URL means an embedded moto server, which is "
            "gone once its command ends: set AWS_ENDPOINT_URL to the moto server you deployed to"
        )
    handle = start_moto()
    log.warning(
        "deploying into an embedded moto server (%s) that stops when this command ends: a "
        "rehearsal. Set AWS_ENDPOINT_URL to keep the result in a moto server you run.",
        handle.url,
    )
    os.environ["AWS_ENDPOINT_URL"] = handle.url
    try:
        yield handle.url
    finally:
        handle.stop()
