"""The CloudWatch dashboard of alarms.yaml, deployed into moto server's CloudFormation (which
creates dashboards) and read back with GetDashboard: once CloudFormation has substituted it, the
body is JSON, with and without the load balancer; it charts every stage of the pipeline with the
names its parameters give; its EMF metrics are exactly the ones the two handlers publish.

moto creates no alarms, so a reference to one stays ``${LogicalId}`` in moto's substitution
where AWS puts the alarm's name: the alarm widget is checked for the logical ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lambdas.enrich import metrics as enrich_metrics
from lambdas.hotstore import metrics as hotstore_metrics
from lambdas.metrics import FUNCTION_DIMENSION, NAMESPACE
from tradestream import aws
from tradestream.cfn.stacks import Stacks
from tradestream.cfn.template import StackTemplate, load_template
from tradestream.deploy.network import Network
from tradestream.deploy.options import DeployOptions
from tradestream.deploy.plan import COMPONENTS, DeployContext

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "cloudformation" / "alarms.yaml"
LOAD_BALANCER = "app/ingest/0123abcd"
Deploy = Callable[[dict[str, str]], dict[str, Any]]


@pytest.fixture
def dashboard(aws_env: str, unique: str) -> Deploy:
    """Deploy alarms.yaml with the given parameters (its names made unique); return the body
    of its dashboard as GetDashboard answers it, parsed, with the parameters under "given"."""
    count = iter(range(100))

    def deploy(parameters: dict[str, str]) -> dict[str, Any]:
        n = next(count)
        given = {
            "StreamName": f"trades-{unique}",
            "HotstoreFunctionName": f"hot-{unique}",
            "EnrichFunctionName": f"enrich-{unique}",
            "TableName": f"table-{unique}",
            "DeadLetterQueueName": f"dlq-{unique}",
            "DeliveryStreamName": f"lake-{unique}",
            "EndpointName": f"model-{unique}",
            "DashboardName": f"dash-{unique}-{n}",
            **parameters,
        }
        stacks = Stacks(aws.client("cloudformation"), change_sets=False, timeout_s=60)
        deployed = stacks.deploy(f"alarms-{unique}-{n}", StackTemplate.load(TEMPLATE), given)
        name = deployed.outputs["DashboardName"]
        assert name == given["DashboardName"]
        body = aws.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"]
        parsed: dict[str, Any] = json.loads(body)  # THEN, first of all, it is JSON
        return {**parsed, "given": given, "outputs": deployed.outputs}

    return deploy


def metric_rows(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of every metric every widget charts."""
    rows = []
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            names = [part for part in row if isinstance(part, str)]
            assert len(names) % 2 == 0, row  # namespace, name, then dimension name/value pairs
            dimensions = dict(zip(names[2::2], names[3::2], strict=True))
            rows.append((names[0], names[1], dimensions))
    return rows


def emf_names(body: dict[str, Any], service: str, function_name: str) -> set[str]:
    names = set()
    for namespace, name, dimensions in metric_rows(body):
        if namespace == NAMESPACE and dimensions.get("service") == service:
            # exactly the dimensions lambdas.metrics.publish gives the invocation's blob
            assert dimensions == {"service": service, FUNCTION_DIMENSION: function_name}
            names.add(name)
    return names


def alarms_shown(body: dict[str, Any]) -> set[str]:
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    shown = set()
    for arn in widget["properties"]["alarms"]:
        match = re.fullmatch(r"arn:aws:cloudwatch:us-east-1:\d{12}:alarm:\$\{(\w+)\}", arn)
        assert match, arn
        shown.add(match.group(1))
    return shown


def alarm_resources(*, with_load_balancer: bool) -> set[str]:
    resources = load_template(TEMPLATE)["Resources"]
    return {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and (with_load_balancer or resource.get("Condition") != "HasLoadBalancer")
    }


def test_the_dashboard_charts_every_stage_with_the_deployments_names(dashboard: Deploy) -> None:
    # GIVEN / WHEN the alarms stack is deployed without a load balancer
    body = dashboard({})
    given = body["given"]

    # THEN every stage of a trade's path is charted, each with its own resource's name
    rows = metric_rows(body)
    charted = {(namespace, name) for namespace, name, _ in rows}
    assert {
        ("AWS/Kinesis", "IncomingRecords"),  # producer / ingest -> stream
        ("AWS/Kinesis", "PutRecords.ThrottledRecords"),
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"),  # the stream's consumers
        ("AWS/Lambda", "Invocations"),  # both functions
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/DynamoDB", "ConsumedWriteCapacityUnits"),
        ("AWS/DynamoDB", "ThrottledRequests"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Firehose", "DeliveryToS3.Records"),
        ("AWS/Firehose", "DeliveryToS3.DataFreshness"),
        ("AWS/Firehose", "ExecuteProcessing.Success"),
        ("AWS/SageMaker", "Invocations"),
        ("AWS/SageMaker", "ModelLatency"),
        ("AWS/SageMaker", "Invocation5XXErrors"),
    } <= charted
    dimension_of = {
        "AWS/Kinesis": ("StreamName", given["StreamName"]),
        "AWS/DynamoDB": ("TableName", given["TableName"]),
        "AWS/SQS": ("QueueName", given["DeadLetterQueueName"]),
        "AWS/Firehose": ("DeliveryStreamName", given["DeliveryStreamName"]),
        "AWS/SageMaker": ("EndpointName", given["EndpointName"]),
    }
    for namespace, name, dimensions in rows:
        if namespace in dimension_of:
            key, value = dimension_of[namespace]
            assert dimensions[key] == value, (namespace, name)
    functions = {d["FunctionName"] for ns, _, d in rows if ns == "AWS/Lambda"}
    assert functions == {given["HotstoreFunctionName"], given["EnrichFunctionName"]}
    # AND every widget is in the deployment's region, the load balancer nowhere
    assert {w["properties"].get("region") for w in body["widgets"] if w["type"] == "metric"} == {
        "us-east-1"
    }
    assert "AWS/ApplicationELB" not in {namespace for namespace, _, _ in rows}
    # AND the alarm widget shows every alarm of the stack, the load balancer's left out
    assert alarms_shown(body) == alarm_resources(with_load_balancer=False)
    # AND the outputs point at the dashboard in the console
    assert body["outputs"]["DashboardUrl"].endswith(f"#dashboards:name={given['DashboardName']}")


def test_with_a_load_balancer_its_widget_and_alarms_join_the_dashboard(
    dashboard: Deploy,
) -> None:
    # GIVEN / WHEN deployed with the ingest load balancer
    body = dashboard({"LoadBalancerFullName": LOAD_BALANCER})

    # THEN the body is still JSON (the conditional pieces join with their commas), the load
    # balancer is charted and both of its alarms are shown
    balancers = {d["LoadBalancer"] for ns, _, d in metric_rows(body) if ns == "AWS/ApplicationELB"}
    assert balancers == {LOAD_BALANCER}
    assert alarms_shown(body) == alarm_resources(with_load_balancer=True)


@pytest.mark.parametrize(
    ("service", "parameter", "declared"),
    [
        (hotstore_metrics.SERVICE, "HotstoreFunctionName", hotstore_metrics.METRICS),
        (enrich_metrics.SERVICE, "EnrichFunctionName", enrich_metrics.METRICS),
    ],
)
def test_the_dashboard_charts_exactly_the_emf_metrics_the_handlers_publish(
    dashboard: Deploy, service: str, parameter: str, declared: tuple[Any, ...]
) -> None:
    # GIVEN the deployed dashboard WHEN its tradestream metrics of one function are read
    body = dashboard({})
    charted = emf_names(body, service, body["given"][parameter])

    # THEN they are the names the function's metrics module declares, no more, no fewer
    assert charted == {metric.name for metric in declared}


def test_the_plan_gives_the_dashboard_the_deployments_names() -> None:
    # GIVEN a deployment WHEN the alarms stack's parameters are planned
    context = DeployContext(
        options=DeployOptions(prefix="acme"),
        account="123456789012",
        region="us-east-1",
        hotstore_flavour="aws",
        lake_flavour="aws",
        network=Network("vpc-1", ("subnet-a",), ("subnet-a",), "DISABLED"),
    )
    alarms = next(c for c in COMPONENTS if c.name == "alarms")
    parameters = alarms.parameters(context)

    # THEN the dashboard is named for the prefix and charts that deployment's resources, with
    # parameters the template declares
    assert parameters["DashboardName"] == "acme"
    assert parameters["TableName"] == "acme-stock_trades"
    assert parameters["EnrichFunctionName"] == "acme-enrich"
    assert parameters["HotstoreFunctionName"] == "acme-hotstore"
    assert set(parameters) <= set(load_template(TEMPLATE)["Parameters"])
