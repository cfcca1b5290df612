"""AWS Lambda functions. Each subpackage is one function, zipped with only its own package, the
modules of ``lambdas/`` it imports (``execution``: what both share about Lambda's execution model)
and the few ``tradestream`` core modules it imports (the trade record, the AWS client factory, the
retry policy)."""
