"""`tradestream deploy` and `destroy` fail with one clear line, exit status 1 and no traceback, when
credentials are missing or wrong, when the identity lacks a permission, or when the target cannot
work as given.

Permissions are enforced for real: a moto server of its own, in a subprocess with IAM
authorization switched on (INITIAL_NO_AUTH_ACTION_COUNT), holds a user whose policy allows reading
but not creating stacks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.slow

# The IAM calls that create the deploying user, before moto starts checking every request.
SETUP_CALLS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class AuthorizingMoto:
    url: str
    read_only_keys: dict[str, str]  # a user that may identify itself and read stacks, no more


@pytest.fixture(scope="module")
def authorizing_moto() -> Iterator[AuthorizingMoto]:
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS)}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        # The first requests go unchecked: they must be the ones creating the user.
        url = f"http://127.0.0.1:{port}"
        yield AuthorizingMoto(url, read_only_keys(url))
    finally:
        process.terminate()
        process.wait(timeout=10)


def read_only_keys(url: str) -> dict[str, str]:
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="deployer")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sts:GetCallerIdentity", "cloudformation:Describe*"],
                "Resource": "*",
            }
        ],
    }
    iam.put_user_policy(UserName="deployer", PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "tradestream.cli", *args],
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
    authorizing_moto: AuthorizingMoto, tmp_path: Path
) -> None:
    # GIVEN keys the endpoint does not know
    env = {
        "AWS_ENDPOINT_URL": authorizing_moto.url,
        "AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000",
        "AWS_SECRET_ACCESS_KEY": "wrong",
    }
    # WHEN deploying THEN the endpoint's refusal is explained
    done = run(["deploy", "--target", "local"], env, tmp_path)
    assert_one_clear_error(done, "refused the credentials", "InvalidClientTokenId")


def test_a_missing_permission_names_the_call_and_the_permissions_doc(
    authorizing_moto: AuthorizingMoto, tmp_path: Path
) -> None:
    # GIVEN an identity that may read stacks but not create them
    keys = authorizing_moto.read_only_keys
    env = {"AWS_ENDPOINT_URL": authorizing_moto.url, **keys}
    # WHEN it deploys
    done = run(["deploy", "--target", "local", "--prefix", "denied"], env, tmp_path)
    # THEN the denied call and where the needed permissions are listed are named
    assert_one_clear_error(done, "denied CreateStack", "docs/deploy.md#permissions")
    # AND nothing was created
    cloudformation = boto3.client(
        "cloudformation",
        endpoint_url=authorizing_moto.url,
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
