"""The DLQ read without consuming it: every message received, held invisible while the tooling
works, then deleted (a redriven message) or made visible again (everything else).

SQS has no "peek": a received message is hidden for its visibility timeout. So every message is
received (ReceiveMessage, 10 at a time, long polling, until an answer brings nothing new) and
stays hidden, which is also what stops the loop from receiving the same message twice; at the
end, ChangeMessageVisibilityBatch with a timeout of 0 returns every message not deleted to the
queue at once. If the process dies first, they come back when their timeout ends.

Side effects that remain: each listing adds one to a message's ``ApproximateReceiveCount`` (a
queue with a redrive policy would move a message elsewhere past its ``maxReceiveCount``; the
hotstore DLQ has none), and messages another consumer holds at the time are not seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from tradestream.dead_letters.messages import DlqMessage, decode
from tradestream.dead_letters.settings import DeadLetterSettings
from tradestream.retry import error_code

log = logging.getLogger(__name__)

# ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch take at most 10 messages.
SQS_MAX_BATCH = 10
_ATTRIBUTES = ["SentTimestamp", "ApproximateReceiveCount"]


class QueueNotFoundError(Exception):
    code = "QueueNotFound"


class HeldMessages:
    """The messages of one queue received so far and not yet deleted or released."""

    def __init__(self, sqs: Any, queue_url: str, *, visibility_timeout_s: int, wait_s: int) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self._visibility_timeout_s = visibility_timeout_s
        self._wait_s = wait_s
        self._receipts: dict[str, str] = {}  # message id -> the latest receipt handle
        self._seen: set[str] = set()

    def __len__(self) -> int:
        return len(self._receipts)

    def pages(self) -> Iterator[list[DlqMessage]]:
        """Every message in the queue, decoded, one ReceiveMessage answer at a time."""
        while True:
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=SQS_MAX_BATCH,
                VisibilityTimeout=self._visibility_timeout_s,
                WaitTimeSeconds=self._wait_s,
                MessageSystemAttributeNames=_ATTRIBUTES,
            ).get("Messages", [])
            for raw in received:
                # A message seen before came back (its timeout ran out): only the newest
                # receipt handle deletes or releases it.
                self._receipts[raw["MessageId"]] = raw["ReceiptHandle"]
            new = [raw for raw in received if raw["MessageId"] not in self._seen]
            if not new:
                return
            self._seen.update(raw["MessageId"] for raw in new)
            yield [decode(raw) for raw in new]

    def delete(self, message_ids: Iterable[str]) -> dict[str, str]:
        """Delete these messages (DeleteMessageBatch); the ones SQS refused, with its code."""
        return self._batches(self.sqs.delete_message_batch, list(message_ids), {})

    def release(self) -> dict[str, str]:
        """Make every held message visible again; the ones SQS refused, with its code."""
        refused = self._batches(
            self.sqs.change_message_visibility_batch, list(self._receipts), {"VisibilityTimeout": 0}
        )
        for message_id, code in refused.items():
            # It comes back by itself once its visibility timeout ends.
            log.warning("message %s could not be made visible again: %s", message_id, code)
        return refused

    def _batches(
        self, call: Callable[..., Any], message_ids: list[str], extra: dict[str, Any]
    ) -> dict[str, str]:
        refused: dict[str, str] = {}
        held = [m for m in message_ids if m in self._receipts]
        for start in range(0, len(held), SQS_MAX_BATCH):
            chunk = held[start : start + SQS_MAX_BATCH]
            # Entry ids are positions: message ids may hold characters Id does not allow.
            entries = [
                {"Id": str(i), "ReceiptHandle": self._receipts[m], **extra}
                for i, m in enumerate(chunk)
            ]
            try:
                answer = call(QueueUrl=self.queue_url, Entries=entries)
            except ClientError as exc:
                refused.update(dict.fromkeys(chunk, error_code(exc)))
                continue
            failed = {
                int(entry["Id"]): str(entry.get("Code") or "Unknown")
                for entry in answer.get("Failed", [])
            }
            refused.update((chunk[i], code) for i, code in failed.items())
            for i, message_id in enumerate(chunk):
                if i not in failed:
                    del self._receipts[message_id]
        return refused


def queue_url(settings: DeadLetterSettings, sqs: Any, cloudformation: Any | None = None) -> str:
    """The DLQ: ``DLQ_URL``, else the queue named ``DLQ_NAME``, else the ``DeadLetterQueueUrl``
    output of the hotstore stack deployed for ``TABLE_NAME`` (``tradestream-hotstore-<table>``),
    which the embedded stack, compose's runtime and ``tradestream deploy`` all create."""
    if settings.dlq_url:
        return settings.dlq_url
    if settings.dlq_name:
        try:
            url: str = sqs.get_queue_url(QueueName=settings.dlq_name)["QueueUrl"]
        except ClientError as exc:
            raise QueueNotFoundError(
                f"no queue named {settings.dlq_name} (DLQ_NAME) at {sqs.meta.endpoint_url}"
            ) from exc
        return url
    return _stack_output(settings.table_name, cloudformation)


def _stack_output(table_name: str, cloudformation: Any) -> str:
    # Imported here: the stack name is all this needs of tradestream.cfn, whose template reader
    # needs the `local` extra; with DLQ_URL or DLQ_NAME set, the core is enough.
    from tradestream.cfn.stacks import stack_name

    name = stack_name("hotstore", table_name)
    hint = "set DLQ_URL or DLQ_NAME, or TABLE_NAME to the table the hotstore stack was deployed for"
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        where = cloudformation.meta.endpoint_url
        raise QueueNotFoundError(f"no stack {name} at {where}: {hint}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if "DeadLetterQueueUrl" not in outputs:
        raise QueueNotFoundError(f"stack {name} has no DeadLetterQueueUrl output: {hint}")
    return str(outputs["DeadLetterQueueUrl"])
