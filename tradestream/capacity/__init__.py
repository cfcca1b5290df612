"""Capacity and cost planning: what a load of trades per second needs from each stage, and what
it costs a month, with and without KPL aggregation (`tradestream plan`, docs/capacity.md).

model.py puts a plan together from the stages: stream.py sizes the stream from Kinesis's limits
(packing.py sizes KPL aggregates from the format) and stream_costs.py prices it; hot_path.py
(event source mapping, hotstore, DynamoDB) and lake_path.py (Firehose, enrich, S3, SageMaker)
the rest. load.py is the input, assumptions.py the deployed settings and the project's
measurements, prices.py the price table with its date and sources, render.py text and JSON.
"""
