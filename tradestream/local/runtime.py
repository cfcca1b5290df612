"""The embedded stack: moto server (or the configured endpoint), the templates deployed through its
CloudFormation API, the Kinesis event source mapping emulation invoking the hotstore handler and
the Firehose emulation invoking the enrich handler, in this process, as Lambda would, and the
local model server the enrich handler calls through the SageMaker runtime API.

The function's code, environment, timeout and memory come from the template (``FunctionSettings``)
and the code is found the way Lambda finds it, from the ``Handler`` string, so this core module
imports no deployable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from tradestream.local.esm.mapping import KinesisEventSourceMapping
from tradestream.local.firehose.delivery import FirehoseEmulation
from tradestream.local.hot_path import DeployedStack, deploy
from tradestream.local.lake import DeployedLake, deploy_lake
from tradestream.local.lambda_runtime import (
    FunctionSettings,
    Handler,
    LambdaContext,
    function_arn,
    load_handler,
)
from tradestream.local.leases import DynamoDBLeases, Leases
from tradestream.local.moto_server import MotoHandle, ensure_credentials, start_moto
from tradestream.local.settings import LocalSettings


@dataclass
class EmbeddedStack:
    endpoint_url: str
    region: str
    stack: DeployedStack
    settings: LocalSettings
    mapping: KinesisEventSourceMapping | None = None
    lake: DeployedLake | None = None
    firehose: FirehoseEmulation | None = None
    model_url: str | None = None
    moto: MotoHandle | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def ready_line(self) -> dict[str, Any]:
        """What `tradestream up` prints once everything is up (later stages add their keys)."""
        return {
            "aws_endpoint": self.endpoint_url,
            "region": self.region,
            "stream": self.stack.stream_name,
            "stream_arn": self.stack.stream_arn,
            "table": self.stack.table_name,
            "dlq_url": self.stack.dlq_url,
            **(
                {"checkpoint_table": self.stack.checkpoint_table}
                if self.stack.checkpoint_table
                else {}
            ),
            **({"bucket": self.lake.bucket_name} if self.lake else {}),
            **({"model_url": self.model_url} if self.model_url else {}),
            **self.extra,
        }

    def leases(self, consumer: str) -> Leases | None:
        """The durable leases of one consumer, in the stack's checkpoint table (None without
        one: the emulation keeps its positions in memory)."""
        table = self.stack.checkpoint_table
        if table is None:
            return None
        return DynamoDBLeases(
            table_name=table,
            consumer=consumer,
            duration_s=self.settings.lease_duration_seconds,
        )

    def hotstore_handler(self) -> Handler:
        return load_handler(self.stack.function.handler)

    def hotstore_context(self) -> LambdaContext:
        return self._context(self.stack.function)

    def enrich_handler(self) -> Handler:
        assert self.lake is not None, "the lake is not deployed"
        return load_handler(self.lake.function.handler)

    def enrich_context(self) -> LambdaContext:
        assert self.lake is not None, "the lake is not deployed"
        return self._context(self.lake.function)

    def _context(self, function: FunctionSettings) -> LambdaContext:
        account = self.stack.stream_arn.split(":")[4]
        return LambdaContext(
            function_name=function.function_name,
            invoked_function_arn=function_arn(self.region, account, function.function_name),
            timeout_s=function.timeout_s,
            memory_limit_in_mb=function.memory_limit_in_mb,
        )


def _use_endpoint(url: str) -> None:
    # Everything in this process (producer, handler, CLI queries) reaches AWS through the standard
    # variable, exactly as the containers do in compose mode.
    os.environ["AWS_ENDPOINT_URL"] = url
    os.environ.setdefault("AWS_REGION", "us-east-1")
    ensure_credentials()


@contextmanager
def _restored_environment() -> Iterator[None]:
    """The stack sets process-wide variables (as Lambda's runtime would); put them back after."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class ModelServer(Protocol):
    """A running SageMaker-compatible model server (``ml.serve.start_in_thread`` returns one)."""

    @property
    def url(self) -> str: ...

    def stop(self, timeout: float = ...) -> None: ...


ModelServerStarter = Callable[[], ModelServer]


def _start_model_server(cleanup: ExitStack, start: ModelServerStarter | None) -> str:
    """The local SageMaker-compatible model server, unless an endpoint is configured already."""
    configured = os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
    if configured:
        return configured
    if start is None:
        raise RuntimeError(
            "the lake's enrich function needs a model endpoint: set "
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME to one, or pass model_server "
            "(the CLI passes ml.serve.start_in_thread)"
        )
    server = start()
    cleanup.callback(server.stop)
    os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = server.url
    return str(server.url)


def _start_lake(
    embedded: EmbeddedStack,
    cleanup: ExitStack,
    run: bool,
    model_server: ModelServerStarter | None,
) -> None:
    """Deploy the lake and, unless ``run`` is false, run its Firehose emulation from LATEST."""
    settings = embedded.settings
    lake = deploy_lake(
        stream_arn=embedded.stack.stream_arn,
        bucket_name=settings.bucket_name,
        endpoint_name=settings.endpoint_name,
        parameters=settings.lake_parameters(),
    )
    embedded.lake = lake
    # Both functions share this process's environment; the service name is the one key they
    # both set, and each function's logger names its service explicitly.
    os.environ.update(
        {k: v for k, v in lake.function.environment.items() if k != "POWERTOOLS_SERVICE_NAME"}
    )
    embedded.model_url = _start_model_server(cleanup, model_server)
    if not run:
        return
    firehose = FirehoseEmulation(
        settings=lake.delivery_stream,
        handler=embedded.enrich_handler(),
        region=embedded.region,
        function_name=lake.function.function_name,
        function_timeout_s=lake.function.timeout_s,
        memory_limit_in_mb=lake.function.memory_limit_in_mb,
        poll_interval_s=settings.poll_interval_seconds,
        leases=embedded.leases(f"firehose/{lake.delivery_stream.delivery_stream_name}"),
    )
    firehose.start()
    cleanup.callback(firehose.stop)
    embedded.firehose = firehose


@contextmanager
def embedded_stack(
    settings: LocalSettings | None = None,
    *,
    run_mapping: bool = True,
    with_lake: bool = True,
    model_server: ModelServerStarter | None = None,
) -> Iterator[EmbeddedStack]:
    """Start (or reuse) the endpoint, deploy the stacks, and run both consumer stages.

    ``run_mapping=False`` deploys everything but runs neither emulation (for `local invoke`);
    ``with_lake=False`` leaves the inference lake out altogether. ``model_server`` starts the
    model endpoint the enrich function calls when ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` names
    none: the model server is a deployable (ml/), which core does not import; the CLI wires it in.
    """
    settings = settings or LocalSettings()
    with _restored_environment(), ExitStack() as cleanup:
        moto: MotoHandle | None = None
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            moto = start_moto(shard_limits=settings.shard_limits)
            cleanup.callback(moto.stop)
            endpoint = moto.url
        _use_endpoint(endpoint)
        stack = deploy(
            stream_name=settings.stream_name,
            table_name=settings.table_name,
            hotstore_parameters=settings.hotstore_parameters(),
        )
        # The function's environment as the template declares it, with this stack's values.
        os.environ.update(stack.function.environment)
        # The handlers' CloudWatch metrics (EMF blobs on stdout) have no CloudWatch to reach here,
        # and stdout carries the commands' results: Powertools' own switch keeps them off.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        embedded = EmbeddedStack(
            endpoint_url=endpoint,
            region=os.environ["AWS_REGION"],
            stack=stack,
            settings=settings,
            moto=moto,
        )
        hotstore_handler = embedded.hotstore_handler()
        if with_lake:
            _start_lake(embedded, cleanup, run=run_mapping, model_server=model_server)
        if run_mapping:
            mapping = KinesisEventSourceMapping(
                stream_arn=stack.stream_arn,
                function_name=stack.function.function_name,
                handler=hotstore_handler,
                settings=stack.mapping,
                region=embedded.region,
                poll_interval_s=settings.poll_interval_seconds,
                function_timeout_s=stack.function.timeout_s,
                memory_limit_in_mb=stack.function.memory_limit_in_mb,
                leases=embedded.leases(
                    f"mapping/{stack.function.function_name}/{stack.stream_name}"
                ),
            )
            mapping.start()
            cleanup.callback(mapping.stop)
            embedded.mapping = mapping
        yield embedded
