"""tradestream core: the trade record, settings, the AWS client factory and the CLI.

Deployables (producer, ingest_api, lambdas, ml) import this package; it imports none of them,
except the CLI, which launches them on demand.
"""

__version__ = "0.1.0"
