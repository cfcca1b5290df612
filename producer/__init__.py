"""The producer: trades from Finnhub's WebSocket, a synthetic market or a replay file, published to
a Kinesis data stream in PutRecords batches. ``python -m producer`` is the container entrypoint;
``producer.app.run`` runs it in-process."""
