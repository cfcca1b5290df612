"""Deploy errors, each with AWS's code where there is one and a message that says what to do.

``explained`` turns the SDK's exceptions for missing credentials, refused permissions and an
unreachable endpoint into these, at the one boundary every deploy and destroy goes through, so the
CLI can print one clear line instead of a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    SSOError,
    TokenRetrievalError,
)

from tradestream.cfn.errors import StackFailedError

PERMISSIONS_DOC = "docs/deploy.md#permissions"

# Codes AWS answers when the credentials themselves are wrong, expired or unknown.
_BAD_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "RequestExpired",
    }
)
# Codes AWS answers when valid credentials lack a permission.
_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
# How CloudFormation reports a missing permission in a stack event's reason.
_DENIED_REASON = re.compile(r"not authorized to perform|AccessDenied|is not authorized", re.I)


class DeployError(RuntimeError):
    """Base of every deploy failure; ``str()`` is the message for the user."""

    code = "DeployFailed"


class CredentialsMissingError(DeployError):
    """No credentials were found at all: the message lists the ways to configure them."""

    code = "NoCredentials"


class CredentialsInvalidError(DeployError):
    code = "InvalidCredentials"  # expired, unknown or mistyped: refresh them and rerun


class AccessDeniedError(DeployError):
    """Valid credentials without a permission the deploy needs (docs/deploy.md#permissions),
    whether the API refused it or CloudFormation did, acting with them."""

    code = "AccessDenied"


class EndpointUnreachableError(DeployError):
    code = "EndpointUnreachable"  # AWS, or the LocalStack / moto endpoint, did not answer


class TargetError(DeployError):
    """The target or its options cannot work as given."""

    code = "InvalidTarget"


def denied_by_stack(reason: str) -> bool:
    """Whether a stack event's reason is a missing permission (then AccessDeniedError fits)."""
    return bool(_DENIED_REASON.search(reason))


def _what_was_done(target: str) -> str:
    return (
        "Stacks that completed are kept and a rerun continues from them; "
        f"`tradestream destroy --target {target}` removes everything."
    )


@contextmanager
def explained(target: str, endpoint: str | None = None) -> Iterator[None]:
    """Re-raise the SDK's credential, permission and connection failures as DeployErrors."""
    where = f"the endpoint {endpoint}" if endpoint else "AWS"
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError) as exc:
        raise CredentialsMissingError(
            f"No usable AWS credentials for --target {target} ({exc}). Configure them and run "
            "again: `aws configure` (access keys), or `aws sso login --profile NAME` and "
            "AWS_PROFILE=NAME, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. "
            "`--target local` needs no account."
        ) from exc
    except (SSOError, TokenRetrievalError) as exc:
        raise CredentialsInvalidError(
            f"Your AWS SSO session cannot be used ({exc}): run `aws sso login` and try again."
        ) from exc
    except EndpointConnectionError as exc:
        raise EndpointUnreachableError(
            f"Cannot reach {where} ({exc}). "
            + (
                "Start it (`docker compose up -d localstack`) or set AWS_ENDPOINT_URL to it."
                if endpoint
                else "Check your network and AWS_REGION."
            )
        ) from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        operation = exc.operation_name
        if code in _BAD_CREDENTIALS:
            raise CredentialsInvalidError(
                f"{where} refused the credentials ({code}: {message}). Refresh them "
                "(`aws sso login`, new access keys, or unset a stale AWS_SESSION_TOKEN) and "
                "run again."
            ) from exc
        if code in _DENIED:
            raise AccessDeniedError(
                f"{where} denied {operation} ({message}). The deploying identity needs the "
                f"permissions listed in {PERMISSIONS_DOC}. {_what_was_done(target)}"
            ) from exc
        raise
    except StackFailedError as exc:
        if denied_by_stack(str(exc)):
            raise AccessDeniedError(
                f"{exc}. CloudFormation acts with your permissions: the deploying identity needs "
                f"those listed in {PERMISSIONS_DOC}. {_what_was_done(target)}"
            ) from exc
        raise
