"""Upload deployment artifacts under content-addressed keys, and empty buckets for teardown.

A key carries the digest of the file (``lambdas/hotstore-<sha256[:16]>.zip``): the same bytes
are never uploaded twice, and a changed file is a changed stack parameter, which is what makes
CloudFormation update the function's code or replace the model.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tradestream.deploy.errors import DeployError

log = logging.getLogger(__name__)

_DELETE_BATCH = 1000  # DeleteObjects' limit per call


def content_key(prefix: str, path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    name = path.name
    stem, dot, suffix = name.partition(".")  # "model.tar.gz" -> "model", "tar.gz"
    return f"{prefix}/{stem}-{digest.hexdigest()[:16]}{dot}{suffix}"


def upload(s3: Any, bucket: str, prefix: str, path: Path) -> str:
    """Upload ``path`` under its content key unless it is there already; return the key."""
    key = content_key(prefix, path)
    if _exists(s3, bucket, key):
        log.info("s3://%s/%s is up to date", bucket, key)
        return key
    log.info("uploading %s to s3://%s/%s", path, bucket, key)
    s3.upload_file(str(path), bucket, key)
    return key


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker (CloudFormation refuses to delete a bucket
    that has any); return how many were deleted. A missing bucket is already empty."""
    deleted = 0
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            entries = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            for start in range(0, len(entries), _DELETE_BATCH):
                batch = entries[start : start + _DELETE_BATCH]
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise DeployError(
                        f"could not empty s3://{bucket}: {first.get('Code')} on {first.get('Key')}"
                    )
                deleted += len(batch)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return deleted
        raise
    if deleted:
        log.info("emptied s3://%s (%d object versions)", bucket, deleted)
    return deleted


def delete_bucket(s3: Any, bucket: str) -> bool:
    """Empty and delete a bucket no stack owns any more; False when it did not exist."""
    empty_bucket(s3, bucket)
    try:
        s3.delete_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return False
        raise
    log.info("deleted bucket %s", bucket)
    return True
