"""Deploying lake.yaml (local flavour) into moto through CloudFormation, over real HTTP."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tradestream import aws
from tradestream.cfn.template import TEMPLATE_DIR, load_template, resolver_for
from tradestream.local.firehose.settings import MIB
from tradestream.local.hot_path import DeployedStack, deploy
from tradestream.local.lake import DeployedLake, apply_bucket_settings, deploy_lake


@pytest.fixture
def stream(aws_env: str, unique: str) -> DeployedStack:
    return deploy(stream_name=f"trades-{unique}", table_name=f"stock_trades-{unique}")


@pytest.fixture
def lake(stream: DeployedStack, unique: str) -> DeployedLake:
    return deploy_lake(stream_arn=stream.stream_arn, bucket_name=f"lake-{unique}")


def test_the_bucket_is_encrypted_versioned_private_and_has_its_lifecycle(
    lake: DeployedLake,
) -> None:
    # GIVEN a local deploy WHEN S3 is asked about the bucket
    s3 = aws.client("s3")
    bucket = lake.bucket_name

    # THEN it encrypts by default with SSE-S3 and a bucket key
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    # AND it is versioned, with every kind of public access blocked and ACLs disabled
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # AND its lifecycle tiers the lake, expires errors, Athena's results and old versions
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {
        "lake-to-infrequent-access",
        "expire-errors",
        "expire-athena-results",
        "expire-old-versions-and-uploads",
    }
    assert rules["lake-to-infrequent-access"]["Filter"] == {"Prefix": "trades/"}
    assert rules["lake-to-infrequent-access"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"}
    ]
    assert rules["expire-errors"]["Filter"] == {"Prefix": "errors/"}
    assert rules["expire-errors"]["Expiration"] == {"Days": 90}
    assert rules["expire-athena-results"]["Filter"] == {"Prefix": "athena-results/"}
    assert rules["expire-athena-results"]["Expiration"] == {"Days": 7}
    old = rules["expire-old-versions-and-uploads"]
    assert old["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert old["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    # AND it is tagged
    tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert {"Key": "project", "Value": "tradestream"} in tags


def test_the_emulation_settings_and_the_function_come_from_the_template(
    lake: DeployedLake, stream: DeployedStack, unique: str
) -> None:
    # GIVEN a local deploy WHEN its description is read
    settings = lake.delivery_stream

    # THEN the outputs name this bucket and the settings point at this stream and bucket
    assert lake.bucket_name == f"lake-{unique}"
    assert lake.bucket_arn == f"arn:aws:s3:::lake-{unique}"
    assert lake.stack_name == f"tradestream-lake-lake-{unique}"
    assert settings.source_stream_arn == stream.stream_arn
    assert settings.bucket_name == lake.bucket_name
    assert (lake.data_prefix, lake.error_prefix) == ("trades/", "errors/")
    assert settings.dynamic_partitioning is True
    assert settings.compression_format == "GZIP"
    assert settings.buffer_size_bytes == 64 * MIB
    # AND the transform to run in-process is the enrich handler with the template's environment
    assert lake.function.handler == "lambdas.enrich.handler.handler"
    assert (lake.function.timeout_s, lake.function.memory_limit_in_mb) == (120, 512)
    assert lake.function.environment == {
        "ENDPOINT_NAME": "tradestream-model",
        "ON_INFERENCE_FAILURE": "deliver_null",
        "POWERTOOLS_SERVICE_NAME": "enrich",
        "POWERTOOLS_METRICS_NAMESPACE": "tradestream",
    }
    assert (lake.function_name, lake.delivery_stream_arn) == (None, None)


def test_the_local_flavour_creates_only_the_bucket(lake: DeployedLake) -> None:
    # GIVEN a local deploy WHEN CloudFormation, Lambda and Firehose are asked what exists
    resources = aws.client("cloudformation").describe_stack_resources(StackName=lake.stack_name)
    types = sorted(
        r["ResourceType"] for r in resources["StackResources"] if "LogicalResourceId" in r
    )
    functions = [f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]]
    streams = aws.client("firehose").list_delivery_streams()["DeliveryStreamNames"]

    # THEN the stack holds the bucket only: no function, role, delivery stream or Glue table
    assert types == ["AWS::S3::Bucket"]
    assert lake.function.function_name not in functions
    assert lake.delivery_stream.delivery_stream_name not in streams


def test_parameters_change_the_emulated_delivery_stream(stream: DeployedStack, unique: str) -> None:
    # GIVEN a deploy with other buffering and compression
    lake = deploy_lake(
        stream_arn=stream.stream_arn,
        bucket_name=f"lake-p-{unique}",
        endpoint_name="other-model",
        parameters={
            "ProcessorBufferSizeInMBs": "3",
            "BufferIntervalInSeconds": "60",
            "CompressionFormat": "UNCOMPRESSED",
            "OnInferenceFailure": "fail",
        },
    )

    # THEN the emulation settings and the function's environment follow
    assert lake.delivery_stream.processor is not None
    assert lake.delivery_stream.processor.buffer_size_bytes == 3 * MIB
    assert lake.delivery_stream.buffer_interval_s == 60
    assert lake.delivery_stream.compression_format == "UNCOMPRESSED"
    assert lake.function.environment["ENDPOINT_NAME"] == "other-model"
    assert lake.function.environment["ON_INFERENCE_FAILURE"] == "fail"


def test_deploying_again_reuses_the_stack_and_keeps_the_lake(
    lake: DeployedLake, stream: DeployedStack, unique: str
) -> None:
    # GIVEN a lake holding an object
    s3 = aws.client("s3")
    s3.put_object(Bucket=lake.bucket_name, Key="trades/kept.json", Body=b"{}\n")

    # WHEN the same deploy runs again
    again = deploy_lake(stream_arn=stream.stream_arn, bucket_name=f"lake-{unique}")

    # THEN it describes the same lake, the stack was not touched and the object is there
    assert again == lake
    status = aws.client("cloudformation").describe_stacks(StackName=lake.stack_name)
    assert status["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert s3.get_object(Bucket=lake.bucket_name, Key="trades/kept.json")["Body"].read() == b"{}\n"


def test_the_tls_only_policy_is_left_out_over_http_because_it_would_deny_everything(
    lake: DeployedLake, stream: DeployedStack
) -> None:
    # GIVEN the local deploy over moto's plain-HTTP endpoint: no policy was applied
    s3 = aws.client("s3")
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=lake.bucket_name)

    # WHEN the template's policy is applied as it would be over HTTPS
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    resolver = resolver_for(
        template,
        parameters={"StreamArn": stream.stream_arn, "BucketName": lake.bucket_name},
        outputs={"BucketName": lake.bucket_name, "BucketArn": lake.bucket_arn},
    )
    apply_bucket_settings(s3, lake.bucket_name, template, resolver, tls_only_policy=True)

    # THEN the bucket denies every request that does not use TLS ...
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=lake.bucket_name)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == [lake.bucket_arn, f"{lake.bucket_arn}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # ... which moto enforces: a plain-HTTP write is refused
    with pytest.raises(ClientError, match="403"):
        s3.put_object(Bucket=lake.bucket_name, Key="trades/x.json", Body=b"{}")
