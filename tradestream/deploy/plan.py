"""The stacks of a deployment, in dependency order, and the parameters each one gets.

One stack per template (see docs/deploy.md, "Stacks"); each stack's parameters come from the
options, the names derived from the prefix, the uploaded artifacts, and the outputs of the stacks
before it. Lambda code parameters are wired from the templates themselves: whichever parameters a
function's ``Code`` refers to get the bucket and the content-addressed key of that function's zip.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tradestream.deploy.network import Network
from tradestream.deploy.options import DeployOptions, Names
from tradestream.deploy.zips import LambdaFunction


@dataclass
class DeployContext:
    options: DeployOptions
    account: str
    region: str
    hotstore_flavour: str  # aws | local: whether the function and its mapping are created
    lake_flavour: str
    functions: tuple[LambdaFunction, ...] = ()
    artifacts_bucket: str = ""
    code_keys: dict[str, str] = field(default_factory=dict)  # function name -> S3 key
    model_key: str = ""
    network: Network | None = None
    reserved_concurrency: str | None = None  # None: the templates' default
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # component -> outputs

    @property
    def names(self) -> Names:
        return self.options.names

    def output(self, component: str, key: str) -> str:
        return self.outputs[component][key]


Parameters = dict[str, str]


@dataclass(frozen=True)
class Component:
    name: str
    template: str
    parameters: Callable[[DeployContext], Parameters]
    wanted: Callable[[DeployOptions], bool] = lambda _: True


def _artifacts(_: DeployContext) -> Parameters:
    return {}


def _stream(ctx: DeployContext) -> Parameters:
    return {
        "StreamName": ctx.names.stream,
        "StreamMode": ctx.options.stream_mode,
        "ShardCount": str(ctx.options.shard_count),
    }


def _hotstore(ctx: DeployContext) -> Parameters:
    return {
        "Flavour": ctx.hotstore_flavour,
        "StreamArn": ctx.output("stream", "StreamArn"),
        "TableName": ctx.names.table,
        "DeadLetterQueueName": ctx.names.dead_letter_queue,
        "FunctionName": ctx.names.hotstore_function,
        **_code(ctx, "hotstore.yaml"),
        **_concurrency(ctx),
    }


def _inference(ctx: DeployContext) -> Parameters:
    return {
        "EndpointName": ctx.names.endpoint,
        "ModelDataBucket": ctx.artifacts_bucket,
        "ModelDataKey": ctx.model_key,
        "Mode": ctx.options.inference_mode,
    }


def _lake(ctx: DeployContext) -> Parameters:
    return {
        "Flavour": ctx.lake_flavour,
        "StreamArn": ctx.output("stream", "StreamArn"),
        "BucketName": ctx.names.lake_bucket(ctx.account, ctx.region),
        # The name we gave the endpoint, not its output: equal on AWS, and the enrich role's
        # policy must name the endpoint before it first answers.
        "EndpointName": ctx.names.endpoint,
        "DeliveryStreamName": ctx.names.delivery_stream,
        "FunctionName": ctx.names.enrich_function,
        "GlueDatabaseName": ctx.names.glue_database,
        **_code(ctx, "lake.yaml"),
        **_concurrency(ctx),
    }


def _ecs_service(ctx: DeployContext, image: str | None) -> Parameters:
    """What both ECS services' stacks take: the stream, the image, where the tasks run."""
    network = _network(ctx)
    return {
        "StreamArn": ctx.output("stream", "StreamArn"),
        "Image": str(image),
        "VpcId": network.vpc_id,
        "AssignPublicIp": network.assign_public_ip,
    }


def _producer(ctx: DeployContext) -> Parameters:
    return {
        **_ecs_service(ctx, ctx.options.producer_image),
        "FinnhubSecretArn": ctx.options.finnhub_secret_arn,
        "SyntheticRate": str(ctx.options.synthetic_rate),
        "Subnets": ",".join(_network(ctx).task_subnets),
    }


def _ingest(ctx: DeployContext) -> Parameters:
    network = _network(ctx)
    return {
        **_ecs_service(ctx, ctx.options.ingest_image),
        # GET /v1/trades reads the hot store; the task role may query this table and no other.
        "TableArn": ctx.output("hotstore", "TableArn"),
        "ApiKeysSecretArn": ctx.options.api_keys_secret_arn,
        "CertificateArn": ctx.options.certificate_arn,
        "PublicSubnets": ",".join(network.public_subnets),
        "TaskSubnets": ",".join(network.task_subnets),
    }


_ALB_FULL_NAME = re.compile(r"^app/[^/]+/[0-9a-f]+$")


def _alarms(ctx: DeployContext) -> Parameters:
    load_balancer = ctx.outputs.get("ingest", {}).get("LoadBalancerFullName", "")
    return {
        "StreamName": ctx.names.stream,
        "HotstoreFunctionName": ctx.names.hotstore_function,
        "EnrichFunctionName": ctx.names.enrich_function,
        "TableName": ctx.names.table,
        "DeadLetterQueueName": ctx.names.dead_letter_queue,
        "DeliveryStreamName": ctx.names.delivery_stream,
        # Only a real app/NAME/ID: an endpoint that cannot resolve the attribute (moto) gets
        # the alarms without the load balancer's.
        "LoadBalancerFullName": load_balancer if _ALB_FULL_NAME.match(load_balancer) else "",
        "EndpointName": ctx.names.endpoint,
        "AlarmEmail": ctx.options.alarm_email,
        "DashboardName": ctx.names.prefix,
    }


COMPONENTS = (
    Component("artifacts", "artifacts.yaml", _artifacts),
    Component("stream", "stream.yaml", _stream),
    Component("hotstore", "hotstore.yaml", _hotstore),
    Component("inference", "inference.yaml", _inference),
    Component("lake", "lake.yaml", _lake),
    Component("producer", "producer.yaml", _producer, lambda o: bool(o.producer_image)),
    Component("ingest", "ingest.yaml", _ingest, lambda o: bool(o.ingest_image)),
    Component("alarms", "alarms.yaml", _alarms),
)


def _code(ctx: DeployContext, template: str) -> Parameters:
    params: Parameters = {}
    for function in ctx.functions:
        if function.template == template:
            params[function.bucket_parameter] = ctx.artifacts_bucket
            params[function.key_parameter] = ctx.code_keys[function.name]
    return params


def _concurrency(ctx: DeployContext) -> Parameters:
    if ctx.reserved_concurrency is None:
        return {}
    return {"ReservedConcurrency": ctx.reserved_concurrency}


def _network(ctx: DeployContext) -> Network:
    if ctx.network is None:
        raise AssertionError("the network is resolved before the ECS stacks are deployed")
    return ctx.network
