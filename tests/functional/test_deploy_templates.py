"""The templates `tradestream deploy` adds (artifacts, inference, producer, ingest, alarms), each
deployed into moto server's CloudFormation over HTTP in its variants, and the created resources
read back through the services' own APIs.

Where moto's CloudFormation stops, the template is read instead, and said so: moto creates no
CloudWatch alarms, SNS topic policies, Secrets Manager secrets or security group egress rules
(it skips those resources), ignores a SageMaker model's network isolation and an ECS service's
launch type, networking, deployment settings and load balancer attachment, and cannot resolve an
ALB's LoadBalancerFullName.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ingest_api.settings import IngestSettings
from producer.settings import ProducerSettings
from tradestream import aws
from tradestream.cfn.stacks import Stacks
from tradestream.cfn.template import StackTemplate, load_template

TEMPLATES = Path(__file__).resolve().parents[2] / "infra" / "cloudformation"
ACCOUNT = "123456789012"
STREAM_ARN = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/trades"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:finnhub-AbCdEf"
TABLE_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/stock_trades"

Deploy = Callable[[str, dict[str, str]], dict[str, str]]
STACK = "__stack__"  # the key under which the fixture adds the stack's name to its outputs


@pytest.fixture
def deploy_template(aws_env: str, unique: str) -> Deploy:
    """Deploy one template under a fresh stack name; return its outputs (and its name)."""
    cloudformation = aws.client("cloudformation")
    count = iter(range(100))

    def deploy(template: str, parameters: dict[str, str]) -> dict[str, str]:
        name = f"{template.split('.')[0]}-{unique}-{next(count)}"
        stack = StackTemplate.load(TEMPLATES / template)
        deployed = Stacks(cloudformation, change_sets=False, timeout_s=60).deploy(
            name, stack, parameters
        )
        return {**deployed.outputs, STACK: name}

    return deploy


def physical_id(stack: str, logical_id: str) -> str:
    resource = aws.client("cloudformation").describe_stack_resource(
        StackName=stack, LogicalResourceId=logical_id
    )
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


@pytest.fixture
def network(aws_env: str) -> dict[str, str]:
    """moto's default VPC and two of its subnets, as a user's default VPC would be."""
    ec2 = aws.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    ids = sorted(s["SubnetId"] for s in subnets["Subnets"])[:2]
    return {"VpcId": vpc["VpcId"], "Subnets": ",".join(ids)}


def role_statements(role_arn: str) -> list[dict[str, Any]]:
    iam = aws.client("iam")
    name = role_arn.rsplit("/", 1)[1]
    statements: list[dict[str, Any]] = []
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        if isinstance(document, str):  # moto answers the document's Python repr
            document = ast.literal_eval(document)
        statements += document["Statement"]
    return [s for s in statements if s]


def service_of(cluster: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ecs = aws.client("ecs")
    arns = ecs.list_services(cluster=cluster)["serviceArns"]
    service = ecs.describe_services(cluster=cluster, services=arns)["services"][0]
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    return service, task["taskDefinition"]


# --- inference -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["serverless", "realtime"])
def test_inference_creates_model_config_and_endpoint(deploy_template: Deploy, mode: str) -> None:
    # GIVEN the inference template in one mode
    outputs = deploy_template(
        "inference.yaml",
        {"EndpointName": f"model-{mode}", "ModelDataBucket": "artifacts", "Mode": mode},
    )
    # WHEN its endpoint is described (moto names it itself: follow the outputs, as a user would)
    sagemaker = aws.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=outputs["EndpointName"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])

    # THEN it serves the artifact with the regional scikit-learn image ...
    assert endpoint["EndpointStatus"] == "InService"
    assert variant["ModelName"] == outputs["ModelName"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://artifacts/model/model.tar.gz"
    assert outputs["ModelDataUrl"] == "s3://artifacts/model/model.tar.gz"
    image = model["PrimaryContainer"]["Image"]
    assert (
        image == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    # ... on the capacity the mode asks for
    if mode == "serverless":
        assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
        assert "InstanceType" not in variant
    else:
        assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.t2.medium", 1)
        assert "ServerlessConfig" not in variant


def test_the_model_may_read_its_artifact_only_and_is_isolated_when_it_can_be() -> None:
    template = load_template(TEMPLATES / "inference.yaml")
    resources = template["Resources"]
    statements = resources["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    s3 = [s for s in statements["Statement"] if s["Action"] == "s3:GetObject"]
    assert s3[0]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${ModelDataBucket}/${ModelDataKey}"
    }
    # moto ignores network isolation; serverless endpoints refuse it, real-time ones get it
    isolation = resources["Model"]["Properties"]["EnableNetworkIsolation"]
    assert isolation == {"Fn::If": ["IsServerless", False, True]}


# --- artifacts -----------------------------------------------------------------------------------


def test_artifacts_bucket_is_created_encrypted(deploy_template: Deploy) -> None:
    outputs = deploy_template("artifacts.yaml", {})
    s3 = aws.client("s3")
    encryption = s3.get_bucket_encryption(Bucket=outputs["BucketName"])
    rule = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # moto leaves out the TLS-only policy, the public access block and versioning: the template
    # declares them for AWS
    props = load_template(TEMPLATES / "artifacts.yaml")["Resources"]
    assert props["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    assert all(props["Bucket"]["Properties"]["PublicAccessBlockConfiguration"].values())


# --- producer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("finnhub", [True, False], ids=["finnhub-secret", "synthetic"])
def test_producer_runs_on_fargate_with_the_key_as_a_secret(
    deploy_template: Deploy, network: dict[str, str], finnhub: bool
) -> None:
    # GIVEN the producer template, with or without a Finnhub secret
    parameters = {"StreamArn": STREAM_ARN, "Image": "producer:1", **network}
    if finnhub:
        parameters["FinnhubSecretArn"] = SECRET_ARN
    outputs = deploy_template("producer.yaml", parameters)

    # WHEN its service and task definition are described
    service, task = service_of(outputs["ClusterName"])
    container = task["containerDefinitions"][0]

    # THEN one task runs it ...
    assert service["desiredCount"] == 1
    # ... stopped no sooner than 30 s after SIGTERM (the producer flushes within 25 s) ...
    assert container["stopTimeout"] == 30
    assert container["stopTimeout"] >= ProducerSettings().shutdown_deadline_seconds + 5
    assert container["readonlyRootFilesystem"] is True
    # ... with settings the producer reads, the key only as a secret, never in the environment
    environment = {e["name"]: e["value"] for e in container["environment"]}
    read = {f.upper() for f in ProducerSettings.model_fields}
    assert set(environment) - {"AWS_REGION"} <= read
    assert environment["STREAM_NAME"] == "trades"
    assert "FINNHUB_API_KEY" not in environment
    if finnhub:
        assert container["secrets"] == [{"name": "FINNHUB_API_KEY", "valueFrom": SECRET_ARN}]
    else:
        assert not container.get("secrets")
        assert environment["SYNTHETIC_RATE"] == "50"  # bounded: every record put is billed
    # ... and a task role that may only put records to the stream (and list its shards, which
    # aggregation packs by)
    assert role_statements(outputs["TaskRoleArn"]) == [
        {
            "Effect": "Allow",
            "Action": ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:ListShards"],
            "Resource": STREAM_ARN,
        }
    ]
    # ... while only the execution role (ECS itself) may read the secret, and only that one
    # (moto's task definition drops executionRoleArn: the stack's resource names the role)
    execution = role_statements("role/" + physical_id(outputs[STACK], "ExecutionRole"))
    secret_reads = [s for s in execution if s["Action"] == "secretsmanager:GetSecretValue"]
    assert secret_reads == (
        [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRET_ARN}]
        if finnhub
        else []
    )


# --- ingest --------------------------------------------------------------------------------------


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_ingest_runs_behind_a_load_balancer_checked_on_healthz(
    deploy_template: Deploy, network: dict[str, str], https: bool
) -> None:
    # GIVEN the ingest template, with a certificate or without one
    parameters = {
        "StreamArn": STREAM_ARN,
        "TableArn": TABLE_ARN,
        "Image": "ingest:1",
        "VpcId": network["VpcId"],
        "PublicSubnets": network["Subnets"],
        "TaskSubnets": network["Subnets"],
        "ApiKeysSecretArn": SECRET_ARN,
    }
    if https:
        certificate = aws.client("acm").request_certificate(DomainName="ingest.example.com")
        parameters["CertificateArn"] = certificate["CertificateArn"]
    outputs = deploy_template("ingest.yaml", parameters)

    # WHEN the load balancer, its listeners and target group are described
    elbv2 = aws.client("elbv2")
    service, task = service_of(outputs["ClusterName"])
    host = outputs["IngestUrl"].split("://", 1)[1]
    balancers = elbv2.describe_load_balancers()["LoadBalancers"]
    balancer = next(b for b in balancers if b["DNSName"] == host)
    listeners = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    by_port = {listener["Port"]: listener for listener in listeners}
    group_arn = next(
        a["TargetGroupArn"]
        for ls in listeners
        for a in ls["DefaultActions"]
        if "TargetGroupArn" in a
    )
    group = elbv2.describe_target_groups(TargetGroupArns=[group_arn])["TargetGroups"][0]

    # THEN an internet-facing balancer sends to tasks on port 8000, checked on /healthz ...
    assert balancer["Scheme"] == "internet-facing"
    assert (group["Port"], group["HealthCheckPath"], group["TargetType"]) == (
        8000,
        "/healthz",
        "ip",
    )
    assert service["desiredCount"] == 2
    # ... the task reads its settings from the environment and its keys from the secret
    container = task["containerDefinitions"][0]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert set(environment) - {"AWS_REGION"} <= {f.upper() for f in IngestSettings.model_fields}
    assert environment["INGEST_API_KEYS_SECRET"] == SECRET_ARN
    assert environment["TABLE_NAME"] == "stock_trades"
    assert container["stopTimeout"] == 30
    assert {m["containerPath"] for m in container["mountPoints"]} == {"/tmp"}
    # ... with HTTPS serving and HTTP redirecting given a certificate, plain HTTP without one
    if https:
        assert set(by_port) == {80, 443}
        assert by_port[443]["Protocol"] == "HTTPS"
        assert by_port[443]["DefaultActions"][0]["Type"] == "forward"
        assert by_port[80]["DefaultActions"][0]["Type"] == "redirect"
        assert outputs["IngestUrl"].startswith("https://")
    else:
        assert set(by_port) == {80}
        assert by_port[80]["DefaultActions"][0]["Type"] == "forward"
        assert outputs["IngestUrl"].startswith("http://")
    # ... and the tasks admit traffic from the load balancer's security group only. (moto cannot
    # describe a stack resource once the stack holds one it skips, so the groups are looked up.)
    [balancer_group] = balancer["SecurityGroups"]
    description = load_template(TEMPLATES / "ingest.yaml")["Resources"]["TaskSecurityGroup"][
        "Properties"
    ]["GroupDescription"]
    groups = aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "description", "Values": [description]}]
    )["SecurityGroups"]
    [rules] = [
        g["IpPermissions"]
        for g in groups
        if any(
            p["GroupId"] == balancer_group
            for r in g["IpPermissions"]
            for p in r["UserIdGroupPairs"]
        )
    ]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(8000, 8000)]
    assert rules[0]["IpRanges"] == []
    assert [p["GroupId"] for p in rules[0]["UserIdGroupPairs"]] == [balancer_group]


@pytest.mark.parametrize("template", ["producer.yaml", "ingest.yaml"])
def test_services_run_on_fargate_in_the_given_subnets_and_roll_back_bad_deployments(
    template: str,
) -> None:
    # moto's CloudFormation drops these service properties: the template is read instead
    resources = load_template(TEMPLATES / template)["Resources"]
    service = resources["Service"]["Properties"]
    assert (service["LaunchType"], service["PlatformVersion"]) == ("FARGATE", "LATEST")
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    vpc = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc["AssignPublicIp"] == {"Ref": "AssignPublicIp"}
    task = resources["TaskDefinition"]["Properties"]
    assert task["RuntimePlatform"]["CpuArchitecture"] == "X86_64"
    if template == "producer.yaml":
        # one Finnhub connection per key: the old task stops before the new one starts
        assert service["DesiredCount"] == 1
        deployment = service["DeploymentConfiguration"]
        assert (deployment["MinimumHealthyPercent"], deployment["MaximumPercent"]) == (0, 100)
    else:
        assert service["LoadBalancers"] == [
            {
                "ContainerName": "ingest",
                "ContainerPort": 8000,
                "TargetGroupArn": {"Ref": "TargetGroup"},
            }
        ]
        assert resources["ListenerReady"]["Metadata"]["Listener"] == {
            "Fn::If": ["HasCertificate", {"Ref": "HttpsListener"}, {"Ref": "PlainListener"}]
        }


def test_ingest_task_role_puts_reads_the_stream_summary_the_key_secret_and_queries_the_table() -> (
    None
):
    resources = load_template(TEMPLATES / "ingest.yaml")["Resources"]
    policies = resources["TaskRole"]["Properties"]["Policies"]
    assert len(policies) == 2
    policy = policies[0]["PolicyDocument"]["Statement"]
    assert policy == [
        {
            "Effect": "Allow",
            "Action": [
                "kinesis:PutRecords",
                "kinesis:DescribeStreamSummary",
                "kinesis:ListShards",
            ],
            "Resource": {"Ref": "StreamArn"},
        },
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {
                "Fn::If": [
                    "CreatesKeySecret",
                    {"Ref": "ApiKeysSecret"},
                    {"Ref": "ApiKeysSecretArn"},
                ]
            },
        },
    ]
    # the hot store: reads of that one table (no Scan, no indexes, no writes)
    assert policies[1]["PolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:Query", "dynamodb:GetItem"],
            "Resource": {"Ref": "TableArn"},
        }
    ]
    # the generated secret is in the {"name": "key"} shape ingest_api.keys reads
    generated = resources["ApiKeysSecret"]["Properties"]["GenerateSecretString"]
    assert (generated["SecretStringTemplate"], generated["GenerateStringKey"]) == ("{}", "default")


# --- alarms --------------------------------------------------------------------------------------


def test_alarms_stack_creates_its_topic(deploy_template: Deploy) -> None:
    outputs = deploy_template("alarms.yaml", {"LoadBalancerFullName": "app/ingest/0123abcd"})
    topics = [t["TopicArn"] for t in aws.client("sns").list_topics()["Topics"]]
    assert outputs["AlarmTopicArn"] in topics


def test_alarms_watch_every_failure_the_issue_names() -> None:
    # moto's CloudFormation creates no alarms: the template is read for what each one watches
    resources = load_template(TEMPLATES / "alarms.yaml")["Resources"]
    alarms = {
        (r["Properties"]["Namespace"], r["Properties"]["MetricName"])
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert alarms == {
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Firehose", "DeliveryToS3.Success"),
        ("AWS/Firehose", "ExecuteProcessing.Success"),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"),
        ("AWS/SageMaker", "Invocation5XXErrors"),
    }
    for resource in resources.values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            assert resource["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    # CloudWatch can publish to the encrypted topic: its key lets cloudwatch.amazonaws.com use it
    statements = resources["TopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in statements)


# --- stream --------------------------------------------------------------------------------------


def test_stream_shards_and_capacity_mode_come_from_parameters(
    deploy_template: Deploy, unique: str
) -> None:
    # GIVEN the stream template asked for three provisioned shards
    name = f"trades-{unique}"
    deploy_template("stream.yaml", {"StreamName": name, "ShardCount": "3"})

    # WHEN the stream is described THEN it has them
    summary = aws.client("kinesis").describe_stream_summary(StreamName=name)
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 3
    # AND (moto ignores StreamModeDetails and StreamEncryption: the template is read) the mode is
    # the parameter's, the shard count is left out on demand, and KMS encrypts it
    template = load_template(TEMPLATES / "stream.yaml")
    stream = template["Resources"]["Stream"]["Properties"]
    assert template["Parameters"]["StreamMode"]["AllowedValues"] == ["ON_DEMAND", "PROVISIONED"]
    assert stream["StreamModeDetails"] == {"StreamMode": {"Ref": "StreamMode"}}
    assert stream["ShardCount"] == {
        "Fn::If": ["IsProvisioned", {"Ref": "ShardCount"}, {"Ref": "AWS::NoValue"}]
    }
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
