"""The change-set path `tradestream deploy --target aws` takes, against moto server's CloudFormation
over HTTP: create, an empty change set reported unchanged, an update that reaches the resource, a
change set left unexecuted by an earlier run, and delete.

moto's ExecuteChangeSet computes no outputs, so these tests read the resources themselves.
"""

from __future__ import annotations

import pytest

from tradestream import aws
from tradestream.cfn.stacks import Stacks
from tradestream.cfn.template import TEMPLATE_DIR, StackTemplate


@pytest.fixture
def stacks(aws_env: str) -> Stacks:
    return Stacks(aws.client("cloudformation"), change_sets=True, timeout_s=60, poll_s=0.05)


def open_shards(stream: str) -> int:
    summary = aws.client("kinesis").describe_stream_summary(StreamName=stream)
    return int(summary["StreamDescriptionSummary"]["OpenShardCount"])


def test_create_unchanged_update_and_delete_go_through_change_sets(
    stacks: Stacks, unique: str
) -> None:
    template = StackTemplate.load(TEMPLATE_DIR / "stream.yaml")
    name, stream = f"cs-{unique}", f"trades-{unique}"
    cloudformation = aws.client("cloudformation")

    # WHEN the stack is first deployed THEN it is created, with the parameters given
    created = stacks.deploy(name, template, {"StreamName": stream, "ShardCount": "1"})
    assert created.action == "created"
    assert open_shards(stream) == 1

    # WHEN deployed again unchanged THEN the empty change set is dropped and nothing happens
    again = stacks.deploy(name, template, {"StreamName": stream, "ShardCount": "1"})
    assert again.action == "unchanged"
    # (moto keeps executed change sets listed, where AWS drops them: only those may remain)
    left = cloudformation.list_change_sets(StackName=name)["Summaries"]
    assert {c["ExecutionStatus"] for c in left} == {"EXECUTE_COMPLETE"}

    # WHEN a parameter changes THEN the stack is updated and the resource follows
    updated = stacks.deploy(name, template, {"StreamName": stream, "ShardCount": "2"})
    assert updated.action == "updated"
    assert open_shards(stream) == 2

    # WHEN deleted THEN the stack and its stream are gone, and a second delete finds nothing
    assert stacks.delete(name) is True
    assert stacks.describe(name) is None
    streams = aws.client("kinesis").list_streams()["StreamNames"]
    assert stream not in streams
    assert stacks.delete(name) is False


def test_a_change_set_left_unexecuted_is_replaced_by_a_fresh_create(
    stacks: Stacks, unique: str
) -> None:
    # GIVEN a run that created its first change set and stopped before executing it
    template = StackTemplate.load(TEMPLATE_DIR / "stream.yaml")
    name, stream = f"shell-{unique}", f"trades-{unique}"
    cloudformation = aws.client("cloudformation")
    cloudformation.create_change_set(
        StackName=name,
        ChangeSetName="abandoned",
        ChangeSetType="CREATE",
        TemplateBody=template.body,
        Parameters=[{"ParameterKey": "StreamName", "ParameterValue": stream}],
    )
    assert stacks.describe(name)["StackStatus"] == "REVIEW_IN_PROGRESS"  # type: ignore[index]

    # WHEN deploy runs THEN the empty shell is deleted and the stack created for real
    outcome = stacks.deploy(name, template, {"StreamName": stream, "ShardCount": "1"})
    assert outcome.action == "created"
    assert open_shards(stream) == 1
    assert stacks.describe(name)["StackStatus"] == "CREATE_COMPLETE"  # type: ignore[index]
