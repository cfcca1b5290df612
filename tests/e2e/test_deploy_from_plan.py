"""The deploy line `tradestream plan` ends with, run as printed (the local target in place of
aws, a prefix of its own) against the session's moto server: the stream it creates has the
plan's shard count.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.e2e.test_deploy import Deployment, command_env, result, tradestream
from tradestream.cli.plan import plan_command
from tradestream.local.moto_server import MotoHandle

pytestmark = pytest.mark.slow


def test_the_plans_deploy_line_creates_a_stream_with_the_plans_shards(
    moto: MotoHandle, tmp_path: Path
) -> None:
    # GIVEN the plan for 6,000 aggregated trades/s: one shard would carry them, but the mapping
    # would need 3 batches per shard and hotstore.yaml deploys 1, so it asks for 3 shards
    planned = CliRunner().invoke(plan_command, ["--trades-per-second", "6000", "--aggregation"])
    assert planned.exit_code == 0, planned.output
    line = planned.output.strip().splitlines()[-1].split()
    assert line[:4] == ["tradestream", "deploy", "--target", "aws"]
    assert line[line.index("--shards") + 1] == "3"

    # WHEN that line is run against moto
    prefix = "tp" + os.urandom(3).hex()
    env = command_env(moto.url)
    args = ["deploy", "--target", "local", "--prefix", prefix, *line[4:]]
    deployment = Deployment(
        prefix, env, tmp_path, result(tradestream(args, env, tmp_path)), moto.url
    )

    # THEN the stream it created has 3 open shards, provisioned
    kinesis = deployment.client("kinesis")
    stream = deployment.outputs["stream"]
    summary = kinesis.describe_stream_summary(StreamName=stream)
    description = summary["StreamDescriptionSummary"]
    assert description["StreamModeDetails"]["StreamMode"] == "PROVISIONED"
    assert description["OpenShardCount"] == 3
    assert len(kinesis.list_shards(StreamName=stream)["Shards"]) == 3

    # AND the deployment is removed again, so the session's moto server does not carry it
    destroyed = result(
        tradestream(["destroy", "--target", "local", "--prefix", prefix], env, tmp_path)
    )
    assert destroyed[f"{prefix}-stream"] == "deleted"
