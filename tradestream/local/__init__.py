"""The embedded stand-in for AWS glue: moto launcher, local stack deploy, Kinesis event source
mapping emulation and fault injection. Used by ``tradestream up`` / ``demo`` and by the tests."""
