"""`tradestream deploy` and `destroy` fail with one clear line, exit status 1 and no traceback, when
credentials are missing or wrong, when the identity lacks a permission, or when the target cannot
work as given.

Permissions are enforced for real: a moto server of its own, in a subprocess with IAM
authorization switched on (INITIAL_NO_AUTH_ACTION_COUNT), holds a user whose policy allows reading
but not creating stacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.support.authorizing_moto import USER_SETUP_CALLS, authorizing_moto, user_with_policy

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class AuthorizingMoto:
    url: str
    read_only_keys: dict[str, str]  # a user that may identify itself and read stacks, no more


@pytest.fixture(scope="module")
def authorizing_moto_server() -> Iterator[AuthorizingMoto]:
    # The first requests go unchecked: they must be the ones creating the user.
    with authorizing_moto(USER_SETUP_CALLS) as url:
        keys = user_with_policy(
            url, "deployer", ["sts:GetCallerIdentity", "cloudformation:Describe*"]
        )
        yield AuthorizingMoto(url, keys)


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "tradestream.cli.main", *args],
        env={**base, "AWS_REGION": "us-east-1", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_one_clear_error(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1, done.stderr[-2000:]
    for phrase in phrases:
        assert phrase in error[0], error[0]


def test_aws_target_without_credentials_says_how_to_configure_them(tmp_path: Path) -> None:
    # GIVEN no credentials anywhere botocore looks (no variables, files or instance metadata)
    env = {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    # WHEN deploy and destroy run against AWS
    for args in (["deploy", "--target", "aws"], ["destroy", "--target", "aws"]):
        done = run(args, env, tmp_path)
        # THEN each stops before creating anything, saying what to configure
        assert_one_clear_error(done, "No usable AWS credentials", "aws configure")
    assert not (tmp_path / "build").exists()  # not even the zips were built


def test_aws_target_refuses_an_endpoint_override(tmp_path: Path) -> None:
    # GIVEN AWS_ENDPOINT_URL still set from local work
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
    # WHEN deploying to AWS THEN it refuses rather than deploy somewhere else
    done = run(["deploy", "--target", "aws"], env, tmp_path)
    assert_one_clear_error(done, "AWS_ENDPOINT_URL is set", "--target localstack")


def test_unknown_credentials_are_refused_with_what_to_do(
    authorizing_moto_server: AuthorizingMoto, tmp_path: Path
) -> None:
    # GIVEN keys the endpoint does not know
    env = {
        "AWS_ENDPOINT_URL": authorizing_moto_server.url,
        "AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000",
        "AWS_SECRET_ACCESS_KEY": "wrong",
    }
    # WHEN deploying THEN the endpoint's refusal is explained
    done = run(["deploy", "--target", "local"], env, tmp_path)
    assert_one_clear_error(done, "refused the credentials", "InvalidClientTokenId")


def test_a_missing_permission_names_the_call_and_the_permissions_doc(
    authorizing_moto_server: AuthorizingMoto, tmp_path: Path
) -> None:
    # GIVEN an identity that may read stacks but not create them
    keys = authorizing_moto_server.read_only_keys
    env = {"AWS_ENDPOINT_URL": authorizing_moto_server.url, **keys}
    # WHEN it deploys
    done = run(["deploy", "--target", "local", "--prefix", "denied"], env, tmp_path)
    # THEN the denied call and where the needed permissions are listed are named
    assert_one_clear_error(done, "denied CreateStack", "docs/deploy.md#permissions")
    # AND nothing was created
    cloudformation = boto3.client(
        "cloudformation",
        endpoint_url=authorizing_moto_server.url,
        region_name="us-east-1",
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )
    assert cloudformation.describe_stacks()["Stacks"] == []


def test_bad_options_are_refused_before_anything_is_called(tmp_path: Path) -> None:
    # GIVEN no endpoint at all: an option error must come first
    for args, phrase in (
        (["--prefix", "Bad_Prefix"], "prefix 'Bad_Prefix' must be"),
        (["--public-subnets", "subnet-1,subnet-2"], "subnets need the VPC"),
    ):
        done = run(["deploy", "--target", "local", *args], {}, tmp_path)
        assert_one_clear_error(done, phrase)


def test_destroying_a_local_deployment_needs_the_endpoint_it_went_to(tmp_path: Path) -> None:
    # GIVEN no AWS_ENDPOINT_URL: the embedded moto server of a past deploy is gone
    done = run(["destroy", "--target", "local"], {}, tmp_path)
    # THEN destroy says so instead of destroying a fresh, empty server
    assert_one_clear_error(done, "set AWS_ENDPOINT_URL to the moto server you deployed to")
