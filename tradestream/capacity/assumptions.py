"""What the planner takes as given: the settings `tradestream deploy` deploys, and the project's
own measurements. Each is written once here, with where it comes from; tests/unit/
test_capacity.py checks the deployed settings against the templates and the producer's
defaults, and the measured sizes against the hotstore's and the enrich function's own code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deployed:
    """The templates' and the producer's defaults, as `tradestream deploy` creates them."""

    # Event source mapping (infra/cloudformation/hotstore.yaml)
    mapping_batch_size: int = 500
    mapping_batching_window_seconds: float = 1.0
    # hotstore.yaml pins ParallelizationFactor: 1; a plan needing more says so.
    mapping_parallelization_factor: int = 1
    hotstore_memory_mb: int = 256
    hotstore_ttl_days: int = 30
    # Firehose (infra/cloudformation/lake.yaml)
    processor_buffer_bytes: int = 1 * 1024 * 1024
    processor_buffer_interval_seconds: float = 60.0
    s3_buffer_bytes: int = 64 * 1024 * 1024
    s3_buffer_interval_seconds: float = 300.0
    enrich_memory_mb: int = 512
    # SageMaker (infra/cloudformation/inference.yaml)
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: int = 5
    realtime_instance_type: str = "ml.t2.medium"
    # Producer (producer/settings.py): LINGER_MS, and DEFAULT_SYMBOLS' count
    producer_linger_ms: int = 50
    default_symbols: int = 4
    # The mapping and the delivery stream read every shard (shared throughput, no fan-out).
    stream_consumers: int = 2
    # stream.yaml's ShardCount MaxValue (and `tradestream deploy --shards`'s range)
    max_template_shards: int = 500


@dataclass(frozen=True)
class Measured:
    """Figures measured on this project's 2-core machine (docs/benchmarks.md,
    docs/bench-model.md) and sizes measured from its code on the synthetic market's trades."""

    # docs/benchmarks.md, "Hotstore Lambda -> DynamoDB": the real handler over 500-record events,
    # 2,152 trades/s, against moto's DynamoDB (slower than DynamoDB; the planner errs high).
    hotstore_trades_per_second_per_invocation: float = 2152.1
    # docs/benchmarks.md, "Enrich Lambda -> SageMaker endpoint": 25,125 records/s, one
    # InvokeEndpoint per 1,000-record batch to the local model server.
    enrich_records_per_second_per_invocation: float = 25125.3
    # docs/bench-model.md: 1,000-row JSON requests, one client: p50 8.362 ms, 117,163
    # predictions/s on 2 shared cores. The server predicts on one core (one process, the GIL).
    model_seconds_per_prediction: float = 8.362e-3 / 1000
    model_predictions_per_second_per_core: float = 117162.6
    # ml.t2.medium is burstable: its sustained baseline is 20 % of each of its 2 vCPUs, i.e.
    # 40 % of the one core the server uses (EC2 T2 documentation, baseline performance).
    realtime_instance_core_share: float = 0.4
    # Sizes (bytes) beyond the trade's own JSON, upper bounds of what the code produces
    # (measured maxima on 20,000 synthetic trades, rounded up):
    # lambdas/hotstore/items.py item_size(to_item(trade)) - len(trade record): max 130
    dynamodb_item_extra_bytes: int = 136
    # lambdas/enrich/records.py lake_line(trade, prediction) - len(trade record): max 75
    lake_line_extra_bytes: int = 80
    # The endpoint's JSON answer per prediction (a float and a comma): 23.9
    prediction_response_bytes: int = 24
    # gzip of one symbol's lake lines (the lake's CompressionFormat is GZIP): 0.21-0.23
    lake_gzip_ratio: float = 0.23
    # DynamoDB auto scaling's default target utilisation, for the provisioned alternative.
    provisioned_target_utilization: float = 0.7


DEPLOYED = Deployed()
MEASURED = Measured()
