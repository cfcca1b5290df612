"""Tooling for the hotstore's dead-letter queue (``tradestream dlq``): list its messages decoded,
and redrive them onto the stream. ``messages`` (the formats, the filters), ``queue`` (SQS without
consuming), ``stream`` (reading records back, putting them), ``redrive``, ``operations``."""
