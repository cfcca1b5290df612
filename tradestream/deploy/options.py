"""What a deploy is asked for, checked before anything is created, and the names it derives.

Every resource and stack name comes from one prefix, so several copies of the system (a second
prefix) never collide in one account, and ``destroy`` finds everything from the prefix alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tradestream.deploy.errors import TargetError

# Short, lowercase, and no trailing hyphen: it starts S3 bucket names (lowercase, 63 characters
# with the account and region appended) and SageMaker endpoint names.
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]$")
STREAM_MODES = ("PROVISIONED", "ON_DEMAND")
INFERENCE_MODES = ("serverless", "realtime")
MODEL_URI_PATTERN = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+\.tar\.gz$")


@dataclass(frozen=True)
class DeployOptions:
    prefix: str = "tradestream"
    stream_mode: str = "PROVISIONED"
    shard_count: int = 2
    inference_mode: str = "serverless"
    model_artifact: Path | None = None  # model.tar.gz; None: default_model() builds one
    # Or a model.tar.gz already in the artifacts bucket (a SageMaker training job's), served as
    # it is: `tradestream model train --on sagemaker` prints it.
    model_uri: str | None = None
    # Builds the reproducible default model.tar.gz when no artifact is given. The model is ml/'s,
    # a deployable core does not import: the CLI passes ml.default_model in.
    default_model: Callable[[], Path] | None = None
    producer_image: str | None = None  # no image: no producer stack
    ingest_image: str | None = None  # no image: no ingest stack
    finnhub_secret_arn: str = ""  # empty: the producer runs the synthetic source
    synthetic_rate: int = 50
    api_keys_secret_arn: str = ""  # empty: the ingest stack generates a key secret
    certificate_arn: str = ""  # empty: the load balancer serves plain HTTP
    vpc_id: str | None = None  # None: the region's default VPC and its subnets
    public_subnets: Sequence[str] = ()
    task_subnets: Sequence[str] = ()
    alarm_email: str = ""
    reserved_concurrency: int | None = None  # None: reserve when the account's quota allows
    build_dir: Path = Path("build/deploy")
    zips: dict[str, Path] | None = field(default=None)  # prebuilt zips by function name

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise TargetError(
                f"prefix {self.prefix!r} must be 2-20 lowercase letters, digits and hyphens, "
                "starting with a letter (it begins bucket and endpoint names)"
            )
        if self.stream_mode not in STREAM_MODES:
            raise TargetError(f"stream mode must be one of {STREAM_MODES}")
        if not 1 <= self.shard_count <= 500:
            raise TargetError("shard count must be between 1 and 500")
        if self.inference_mode not in INFERENCE_MODES:
            raise TargetError(f"inference mode must be one of {INFERENCE_MODES}")
        if self.model_artifact is not None and not self.model_artifact.is_file():
            raise TargetError(f"model artifact {self.model_artifact} is not a file")
        if self.model_uri is not None and not MODEL_URI_PATTERN.fullmatch(self.model_uri):
            raise TargetError(f"model URI {self.model_uri!r} is not s3://BUCKET/KEY.tar.gz")
        if self.model_uri is not None and self.model_artifact is not None:
            raise TargetError("give a model artifact or a model URI, not both")
        if self.task_subnets and not self.public_subnets:
            raise TargetError("task subnets need public subnets for the load balancer too")
        if (self.public_subnets or self.task_subnets) and not self.vpc_id:
            raise TargetError("subnets need the VPC they belong to (vpc id)")
        if not 1 <= self.synthetic_rate <= 100_000:
            raise TargetError("synthetic rate must be between 1 and 100,000 trades/s")

    @property
    def names(self) -> Names:
        return Names(self.prefix)


@dataclass(frozen=True)
class Names:
    """Every name a deployment gives its resources, all derived from its prefix, so two
    deployments with different prefixes never share anything in one account."""

    prefix: str
    stream: str = field(init=False)
    table: str = field(init=False)
    dead_letter_queue: str = field(init=False)
    hotstore_function: str = field(init=False)
    enrich_function: str = field(init=False)
    endpoint: str = field(init=False)
    delivery_stream: str = field(init=False)
    glue_database: str = field(init=False)  # Glue refuses hyphens

    def __post_init__(self) -> None:
        p = self.prefix
        derived = {
            "stream": f"{p}-trades",
            "table": f"{p}-stock_trades",
            "dead_letter_queue": f"{p}-stock_trades-dlq",
            "hotstore_function": f"{p}-hotstore",
            "enrich_function": f"{p}-enrich",
            "endpoint": f"{p}-model",
            "delivery_stream": f"{p}-lake",
            "glue_database": p.replace("-", "_"),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    def stack(self, component: str) -> str:
        return f"{self.prefix}-{component}"

    def lake_bucket(self, account: str, region: str) -> str:
        # Bucket names are global across all accounts: the account and region make it ours.
        return f"{self.prefix}-lake-{account}-{region}"
