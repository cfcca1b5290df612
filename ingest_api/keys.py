"""API keys: loaded from the environment and/or Secrets Manager, checked in constant time.

Only SHA-256 digests of the keys are kept. Comparing digests makes every comparison the same
length, so timing reveals neither a key's content nor its length. Each key has a name that is safe
to log and to use as a rate-limit bucket: the secret's own label, or a short digest prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tradestream import aws

from .settings import IngestSettings

# Short keys can be guessed online; whitespace and commas would not survive the env format.
MIN_KEY_LENGTH = 16
_KEY_PATTERN = re.compile(r"^[\x21-\x2b\x2d-\x7e]+$")  # printable ASCII but space and comma
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


class ApiKeysError(ValueError):
    """The configured keys are unusable; the service refuses to start with them."""

    code = "InvalidApiKeys"


@dataclass(frozen=True)
class ApiKeys:
    _digests: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str | None, str]]) -> ApiKeys:
        digests: dict[bytes, str] = {}
        for name, key in pairs:
            _check_key(key)
            digest = hashlib.sha256(key.encode()).digest()
            label = name if name is not None else f"key-{digest.hex()[:8]}"
            if not _NAME_PATTERN.match(label):
                raise ApiKeysError(f"key name {label!r} must match {_NAME_PATTERN.pattern}")
            digests[digest] = label
        if not digests:
            raise ApiKeysError("no API keys configured: set INGEST_API_KEYS or its secret")
        return cls(tuple((label, digest) for digest, label in digests.items()))

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:  # the dataclass repr would print digests into logs
        return f"ApiKeys(names={[name for name, _ in self._digests]})"

    def identify(self, provided: str | None) -> str | None:
        """The name of the key that matches, or None; every configured key is compared."""
        if not provided:
            return None
        candidate = hashlib.sha256(provided.encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for name, digest in self._digests:
            # No early exit: the time taken does not depend on which key (if any) matched.
            if hmac.compare_digest(candidate, digest):
                found = name
        return found


def load_api_keys(settings: IngestSettings, secrets_client: Any | None = None) -> ApiKeys:
    """Collect the keys from INGEST_API_KEYS and from the secret named by INGEST_API_KEYS_SECRET."""
    pairs: list[tuple[str | None, str]] = []
    if settings.ingest_api_keys is not None:
        pairs += parse_key_list(settings.ingest_api_keys.get_secret_value())
    if settings.ingest_api_keys_secret is not None:
        client = secrets_client or aws.client("secretsmanager")
        response = client.get_secret_value(SecretId=settings.ingest_api_keys_secret)
        secret = response.get("SecretString")
        if not isinstance(secret, str):
            raise ApiKeysError("the API keys secret must be a SecretString, not SecretBinary")
        pairs += parse_secret(secret)
    return ApiKeys.from_pairs(pairs)


def parse_key_list(value: str) -> list[tuple[str | None, str]]:
    return [(None, key.strip()) for key in value.split(",") if key.strip()]


def parse_secret(secret: str) -> list[tuple[str | None, str]]:
    """A secret holds a JSON object ``{"name": "key"}``, a JSON array of keys, or a key list."""
    try:
        value = json.loads(secret)
    except ValueError:
        return parse_key_list(secret)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return [(str(name), key) for name, key in value.items()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [(None, key) for key in value]
    raise ApiKeysError('the API keys secret must be {"name": "key", ...}, ["key", ...] or a,b')


def _check_key(key: str) -> None:
    # The message never includes the key itself.
    if len(key) < MIN_KEY_LENGTH:
        raise ApiKeysError(f"API keys must be at least {MIN_KEY_LENGTH} characters long")
    if not _KEY_PATTERN.match(key):
        raise ApiKeysError("API keys must be printable ASCII without spaces or commas")
