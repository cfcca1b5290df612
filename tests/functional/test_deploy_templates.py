"""The inference template deploys into moto server's CloudFormation and creates what it declares.

(alarms.yaml is checked by cfn-lint and checkov only: moto's CloudFormation does not support
AWS::CloudWatch::Alarm. moto also names the endpoint itself, ignoring EndpointName, so the test
follows the stack's outputs, as a user would.)"""

from __future__ import annotations

from pathlib import Path

from tradestream import aws
from tradestream.local.stack import StackTemplate, ensure_stack

TEMPLATES = Path(__file__).resolve().parents[2] / "infra" / "cloudformation"


def test_inference_template_creates_model_config_and_endpoint(aws_env: str, unique: str) -> None:
    cloudformation = aws.client("cloudformation")
    name = f"model-{unique}"
    deployed = ensure_stack(
        cloudformation,
        f"inference-{unique}",
        StackTemplate.load(TEMPLATES / "inference.yaml"),
        {"EndpointName": name, "ModelDataBucket": "artifacts", "Mode": "realtime"},
        120,
    )
    sagemaker = aws.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=deployed.outputs["EndpointName"])
    assert endpoint["EndpointStatus"] == "InService"
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert variant["ModelName"] == deployed.outputs["ModelName"]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://artifacts/model/model.tar.gz"
    assert "sagemaker-scikit-learn" in model["PrimaryContainer"]["Image"]
