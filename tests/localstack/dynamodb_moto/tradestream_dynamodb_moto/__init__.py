"""DynamoDB for LocalStack from the moto it already ships (``PROVIDER_OVERRIDE_DYNAMODB=moto``).

LocalStack's own DynamoDB providers forward every call to DynamoDB Local, a Java server it
downloads at first use. This provider implements no operation itself: every one raises
``NotImplementedError`` (the generated ``DynamodbApi`` base), and ``MotoFallbackDispatcher``
answers it from moto's DynamoDB backend, in LocalStack's process, the way LocalStack serves the
services it has no provider of its own for. CloudFormation's ``AWS::DynamoDB::Table`` resource
provider calls the API through LocalStack's gateway, so it reaches this provider too.

Not served: DynamoDB Streams (its LocalStack provider reads DynamoDB Local's streams), and
whatever moto's DynamoDB does not implement.
"""

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.services.moto import MotoFallbackDispatcher
from localstack.services.plugins import Service, ServiceLifecycleHook, aws_provider


class MotoDynamoDBProvider(DynamodbApi, ServiceLifecycleHook):
    """Every operation falls through to moto."""


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    return Service.for_provider(
        MotoDynamoDBProvider(), dispatch_table_factory=MotoFallbackDispatcher
    )
