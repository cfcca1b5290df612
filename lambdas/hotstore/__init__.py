"""The hotstore function: Kinesis trade records -> DynamoDB ``stock_trades``, idempotently.

Entry point for Lambda: ``lambdas.hotstore.handler.handler``. Modules, from the edge inwards:
``records`` (open one Kinesis record into its user records, KPL aggregates included, and decode
and classify each), ``items`` (trade -> DynamoDB item),
``writer`` (batched BatchWriteItem), ``dlq`` (poison records -> SQS), ``rounds`` (how both
retry), ``metrics`` (what each invocation publishes to CloudWatch) and ``settings``.
"""
