"""AWS Lambda functions. Each subpackage is one function, zipped with only ``lambdas/`` and the
few ``tradestream`` core modules it imports (the trade record and the AWS client factory)."""
