"""The ECS Fargate templates (producer, ingest), read for what matters: least privilege, the
secret, a stop timeout above the flush deadline. (moto's CloudFormation fails with an internal
error on the producer template, so they are checked statically, and by cfn-lint and checkov.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producer.settings import ProducerSettings
from tradestream.cfn.template import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "cloudformation" / "producer.yaml"


def resource(kind: str) -> dict[str, Any]:
    template = load_template(TEMPLATE)
    found: dict[str, Any] = next(
        r["Properties"] for r in template["Resources"].values() if r["Type"] == kind
    )
    return found


def test_task_role_may_only_put_records_and_list_shards_and_the_key_is_a_secret() -> None:
    roles = [
        r["Properties"]
        for name, r in load_template(TEMPLATE)["Resources"].items()
        if name == "TaskRole"
    ]
    statements = roles[0]["Policies"][0]["PolicyDocument"]["Statement"]
    # ListShards: aggregation packs per shard.
    assert statements[0]["Action"] == [
        "kinesis:PutRecord",
        "kinesis:PutRecords",
        "kinesis:ListShards",
    ]
    assert statements[0]["Resource"] == {"Ref": "StreamArn"}
    container = resource("AWS::ECS::TaskDefinition")["ContainerDefinitions"][0]
    secrets = container["Secrets"]["Fn::If"][1]
    assert secrets == [{"Name": "FINNHUB_API_KEY", "ValueFrom": {"Ref": "FinnhubSecretArn"}}]
    names = {e["Name"] for e in container["Environment"]}
    assert names - {"AWS_REGION"} <= {f.upper() for f in ProducerSettings.model_fields}


def test_stop_timeout_leaves_room_for_the_producers_flush_deadline() -> None:
    container = resource("AWS::ECS::TaskDefinition")["ContainerDefinitions"][0]
    deadline = ProducerSettings.model_fields["shutdown_deadline_seconds"].default
    assert container["StopTimeout"] >= deadline + 5


INGEST = TEMPLATE.with_name("ingest.yaml")


def test_ingest_task_reads_its_settings_and_is_checked_on_healthz() -> None:
    from ingest_api.settings import IngestSettings

    template = load_template(INGEST)
    resources = template["Resources"]
    container = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    names = {e["Name"] for e in container["Environment"]}
    assert names - {"AWS_REGION"} <= {f.upper() for f in IngestSettings.model_fields}
    assert container["PortMappings"][0]["ContainerPort"] == 8000
    assert resources["TargetGroup"]["Properties"]["HealthCheckPath"] == "/healthz"
    assert resources["HttpsListener"]["Condition"] == "HasCertificate"
    actions = resources["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
    assert actions["Action"] == [
        "kinesis:PutRecords",
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
    ]
