"""The Kinesis event source mapping, emulated: ``mapping`` (the adapter: polls, invokes, sends),
``state`` (per-shard batches and the rules that settle them; no I/O), ``events`` (AWS's event and
response shapes), ``settings`` (read from the hotstore template)."""
