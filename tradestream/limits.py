"""AWS's limits the code respects (and the local runtime enforces), each once, with the AWS
documentation page it comes from. Sizes AWS writes as "MB" are counted as MiB, as its services do.

Plain constants and no imports: the Lambda zips carry this module with the other core modules.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB

# -- Kinesis Data Streams --------------------------------------------------------------------------
# PutRecords, https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html: "Each
# PutRecords request can support up to 500 records. Each record in the request can be as large as
# 1 MiB, up to a limit of 5 MiB for the entire request, including partition keys."
KINESIS_PUT_RECORDS_MAX_RECORDS = 500
KINESIS_PUT_RECORDS_MAX_BYTES = 5 * MiB
KINESIS_MAX_RECORD_BYTES = 1 * MiB  # the data blob plus its partition key
# Same page: "Partition keys are Unicode strings with a maximum length limit of 256 characters".
KINESIS_MAX_PARTITION_KEY_CHARS = 256
# Quotas and limits, https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html:
# "Each shard can support up to 1,000 records per second for writes, up to a maximum total data
# write rate of 1 MiB per second."
KINESIS_SHARD_WRITE_RECORDS_PER_SECOND = 1_000
KINESIS_SHARD_WRITE_BYTES_PER_SECOND = 1 * MiB

# -- Lambda ----------------------------------------------------------------------------------------
# Quotas, https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html: "Invocation
# payload (request and response): 6 MB each for synchronous" invocations, which is how an event
# source mapping and Firehose's transformation invoke a function.
LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES = 6 * MiB

# -- Amazon Data Firehose: data transformation -----------------------------------------------------
# https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html: "The buffering size
# hint ranges between 0.2 MB and 3MB" (the processor's BufferSizeInMBs), and "The Lambda
# synchronous invocation mode has a payload size limit of 6 MB for both the request and the
# response."
FIREHOSE_TRANSFORM_MAX_PAYLOAD_BYTES = LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES
FIREHOSE_PROCESSOR_BUFFER_MIN_BYTES = int(0.2 * MiB)
FIREHOSE_PROCESSOR_BUFFER_MAX_BYTES = 3 * MiB

# -- DynamoDB --------------------------------------------------------------------------------------
# BatchWriteItem,
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html
# "A single call to BatchWriteItem can transmit up to 16MB of data over the network, consisting of
# up to 25 item put or delete operations."
DYNAMODB_BATCH_WRITE_MAX_ITEMS = 25

# -- SageMaker runtime -----------------------------------------------------------------------------
# InvokeEndpoint,
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html
# "Maximum payload size 6 MB"; the model container must answer within 60 seconds.
SAGEMAKER_INVOKE_MAX_PAYLOAD_BYTES = 6 * MiB
SAGEMAKER_INVOKE_TIMEOUT_SECONDS = 60

# -- Capacity planning (tradestream plan) ----------------------------------------------------------
# Kinesis quotas, https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html:
# "Each shard can support up to a maximum total data read rate of 2 MiB per second" (shared by
# every consumer that is not an enhanced fan-out one).
KINESIS_SHARD_READ_BYTES_PER_SECOND = 2 * MiB
# Event source mapping, https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html:
# "ParallelizationFactor: (Kinesis and DynamoDB Streams only) The number of batches to process
# from each shard concurrently", 1 to 10.
LAMBDA_ESM_MAX_PARALLELIZATION_FACTOR = 10
# DynamoDB, https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode.html:
# "One write request unit represents one write for an item up to 1 KB in size"; partition-key
# design (bp-partition-key-design.html): "a single partition can support a maximum of 3,000 read
# capacity units (RCUs) or 1,000 write capacity units (WCUs)"; on-demand tables have a default
# maximum of 40,000 write request units per second (service quotas, ServiceQuotas.html); an item's
# stored size carries 100 bytes of overhead for indexing (CapacityUnitCalculations.html).
DYNAMODB_WRITE_UNIT_BYTES = 1 * KiB
DYNAMODB_PARTITION_MAX_WRITE_UNITS_PER_SECOND = 1_000
DYNAMODB_ON_DEMAND_TABLE_MAX_WRITE_UNITS_PER_SECOND = 40_000
DYNAMODB_ITEM_STORAGE_OVERHEAD_BYTES = 100
