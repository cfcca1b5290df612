"""The CloudFormation engine's one error: a stack that did not reach a good state."""

from __future__ import annotations


class StackFailedError(RuntimeError):
    """A stack or change set did not reach a good state; the message has CloudFormation's reason
    and what to do about it."""

    code = "StackFailed"
