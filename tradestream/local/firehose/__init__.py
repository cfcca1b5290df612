"""The Firehose delivery stream, emulated: ``delivery`` (the adapter: reads the stream, invokes
the transform, writes S3), ``state`` (the buffers and when they are due; no I/O), ``events`` (the
transformation event, the answer's rules, the error envelope), ``prefix`` (S3 key naming),
``settings`` (read from the lake template)."""
