"""Firehose transformation: every trade of a Firehose batch enriched with the model's prediction."""
