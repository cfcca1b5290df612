"""Deploying tradestream: Lambda zips, artifact upload, change-set deploys, teardown.

``tradestream.deploy.api`` has ``deploy(target, ...)`` and ``destroy(target, ...)``, which the
`tradestream deploy` and `tradestream destroy` commands (``tradestream.cli.deploy``) run;
docs/deploy.md is the walkthrough. Nothing is imported here: the CLI loads this package on every
command, and the deploy code (boto3, moto for the local target) only when it deploys.
"""
