"""The parameters the plan gives a stack, from the options and the outputs before it."""

from __future__ import annotations

from tradestream.cfn.template import TEMPLATE_DIR, load_template
from tradestream.deploy.network import Network
from tradestream.deploy.options import DeployOptions
from tradestream.deploy.plan import COMPONENTS, DeployContext

TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tradestream-trades"


def test_the_ingest_stack_gets_the_hot_store_table_of_the_hotstore_stack() -> None:
    # GIVEN a deployment whose hotstore stack is up
    context = DeployContext(
        options=DeployOptions(ingest_image="ingest:1"),
        account="123456789012",
        region="us-east-1",
        hotstore_flavour="aws",
        lake_flavour="aws",
        network=Network("vpc-1", ("subnet-a", "subnet-b"), ("subnet-a", "subnet-b"), "DISABLED"),
        outputs={
            "stream": {"StreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/trades"},
            "hotstore": {"TableArn": TABLE_ARN},
        },
    )
    ingest = next(c for c in COMPONENTS if c.name == "ingest")
    # WHEN the ingest stack's parameters are planned
    parameters = ingest.parameters(context)
    # THEN its task is given that table, and every parameter is one the template declares
    assert parameters["TableArn"] == TABLE_ARN
    declared = load_template(TEMPLATE_DIR / ingest.template)["Parameters"]
    assert set(parameters) <= set(declared)
