"""The `tradestream` command. The only package that imports deployables (producer, ingest_api,
ml) and wires them to core: the embedded stack gets its model server here, deploy its default
model, `up` and `demo` their producer and ingest API."""
