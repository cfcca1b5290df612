"""The one CloudFormation engine: templates (load, resolve), stacks (create, update, reuse,
delete, wait, read failures; change sets where the endpoint honours them), the fix-ups for what an
endpoint's CloudFormation drops, and its error. The embedded stack and `tradestream deploy` both
deploy through it."""
