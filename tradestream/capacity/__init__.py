"""Capacity and cost planning: what a load of trades per second needs from each stage, and what
it costs a month, with and without KPL aggregation (`tradestream plan`, docs/capacity.md).

model.py works the plan out, stream.py and packing.py size the stream from Kinesis's limits and
the KPL format, assumptions.py holds the deployed settings and the project's measurements,
prices.py the price table with its date and sources, render.py the text and JSON.
"""
