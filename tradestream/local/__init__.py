"""Embedded stand-ins for the glue AWS provides, used by `tradestream up` / `demo`, by compose's
runtime service and by the tests: moto server, the hot path's and the lake's stacks, the Kinesis
event source mapping (``esm/``) and Firehose (``firehose/``) emulations over one shard reader
(``kinesis_consumer``), and the Lambda runtime they invoke handlers through (``lambda_runtime``)."""
