"""tradestream core: what every part shares (the trade record, the AWS client factory, the retry
rule, AWS's limits, the CloudFormation engine, the embedded stand-ins for AWS's glue).

Deployables (producer, ingest_api, lambdas, ml) import this package; it imports none of them.
Only ``tradestream.cli`` wires deployables together (tests/unit/test_layout.py holds the rule).
"""

__version__ = "0.1.0"
