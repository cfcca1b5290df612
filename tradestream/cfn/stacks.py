"""Create, update and delete one stack, and wait for it.

On AWS (and LocalStack) every create or update goes through a change set: it is created, its
changes are logged (with replacements called out, since a replaced resource loses its data or
name), and only then executed. A change set CloudFormation finds empty is deleted and the stack
reported unchanged. moto's ExecuteChangeSet neither records the new parameters nor recomputes
outputs, so for the moto target ``change_sets=False`` goes through CreateStack / UpdateStack
(``tradestream.local.hot_path.ensure_stack``, which the embedded stack uses too).

A stack left in ROLLBACK_COMPLETE (its first create failed) or REVIEW_IN_PROGRESS (a change set
was never executed) holds no resources: it is deleted and created afresh. Any other failed state
needs a person, and the error says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from tradestream.cfn.template import effective_parameters
from tradestream.deploy.errors import StackFailedError
from tradestream.local.hot_path import StackDeployError, StackTemplate, ensure_stack

log = logging.getLogger(__name__)

Action = Literal["created", "updated", "unchanged"]

_COMPLETE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
_EMPTY_SHELLS = {"ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"}
_ROLLED_BACK = {"UPDATE_ROLLBACK_COMPLETE"}  # a failed update; the stack works as before it
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
TAGS = ({"Key": "project", "Value": "tradestream"},)


@dataclass(frozen=True)
class StackOutcome:
    name: str
    action: Action
    outputs: dict[str, str]


class Stacks:
    """One endpoint's CloudFormation, with the waiting and the failure reporting."""

    def __init__(
        self,
        cloudformation: Any,
        *,
        change_sets: bool,
        timeout_s: float = 3600,
        poll_s: float = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfn = cloudformation
        self._change_sets = change_sets
        self._timeout_s = timeout_s
        self._poll_s = poll_s
        self._sleep = sleep

    # --- reading ---------------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any] | None:
        try:
            stacks = self._cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
            return None
        stack: dict[str, Any] = stacks[0]
        return stack

    def outputs(self, name: str) -> dict[str, str] | None:
        stack = self.describe(name)
        return None if stack is None else _outputs(stack)

    # --- deploying -------------------------------------------------------------------------------

    def deploy(
        self, name: str, template: StackTemplate, parameters: Mapping[str, str]
    ) -> StackOutcome:
        """Create or update ``name`` to ``template`` with ``parameters``; wait until it is done."""
        wanted = effective_parameters(template.parsed, parameters)
        if not self._change_sets:
            return self._deploy_directly(name, template, wanted)
        stack = self._settled(name)
        if stack is not None and stack["StackStatus"] in _EMPTY_SHELLS:
            log.warning(
                "stack %s is %s and holds nothing; recreating it", name, stack["StackStatus"]
            )
            self.delete(name)
            stack = None
        if stack is not None and stack["StackStatus"] not in _COMPLETE | _ROLLED_BACK:
            raise StackFailedError(
                f"stack {name} is {stack['StackStatus']} ({stack.get('StackStatusReason', '')}): "
                "fix it in the CloudFormation console (continue the rollback, or delete the "
                "stack), then deploy again"
            )
        kind = "CREATE" if stack is None else "UPDATE"
        change_set = self._create_change_set(name, kind, template, wanted)
        if change_set is None:
            assert stack is not None  # a CREATE change set always has changes
            log.info("stack %s: no changes", name)
            return StackOutcome(name, "unchanged", _outputs(stack))
        self._cfn.execute_change_set(ChangeSetName=change_set, StackName=name)
        done = self._wait(name)
        return StackOutcome(name, "created" if kind == "CREATE" else "updated", _outputs(done))

    def _create_change_set(
        self, name: str, kind: str, template: StackTemplate, parameters: Mapping[str, str]
    ) -> str | None:
        """The change set's id once it is ready to execute, or None when it changes nothing."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        created = self._cfn.create_change_set(
            StackName=name,
            ChangeSetName=f"tradestream-{stamp}",
            ChangeSetType=kind,
            TemplateBody=template.body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            # The templates create IAM roles with generated names.
            Capabilities=["CAPABILITY_IAM"],
            Tags=list(TAGS),
            Description="tradestream deploy",
        )
        change_set_id = str(created["Id"])
        described = self._wait_change_set(change_set_id, name)
        if described["Status"] == "FAILED":
            reason = str(described.get("StatusReason", ""))
            self._cfn.delete_change_set(ChangeSetName=change_set_id, StackName=name)
            if any(marker in reason for marker in _NO_CHANGES):
                return None
            if kind == "CREATE":
                self.delete(name)  # the REVIEW_IN_PROGRESS shell the change set created
            raise StackFailedError(f"stack {name}: CloudFormation refused the change set: {reason}")
        _log_changes(name, described.get("Changes", []))
        return change_set_id

    def _wait_change_set(self, change_set_id: str, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout_s
        while True:
            described: dict[str, Any] = self._cfn.describe_change_set(
                ChangeSetName=change_set_id, StackName=name
            )
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return described
            self._check_deadline(deadline, f"change set of {name}", described["Status"])
            self._sleep(min(self._poll_s, 2))

    def _deploy_directly(
        self, name: str, template: StackTemplate, parameters: dict[str, str]
    ) -> StackOutcome:
        before = self.describe(name)
        try:
            stack = ensure_stack(self._cfn, name, template, parameters, self._timeout_s)
        except StackDeployError as exc:
            raise StackFailedError(str(exc)) from exc
        after = self.describe(name) or {}
        if before is None or before["StackStatus"] == "ROLLBACK_COMPLETE":
            action: Action = "created"
        elif _marker(before) == _marker(after):
            action = "unchanged"
        else:
            action = "updated"
        return StackOutcome(name, action, stack.outputs)

    # --- deleting --------------------------------------------------------------------------------

    def delete(self, name: str) -> bool:
        """Delete ``name`` and wait until it is gone; False when there was no such stack."""
        stack = self._settled(name)
        if stack is None:
            return False
        log.info("deleting stack %s", name)
        self._cfn.delete_stack(StackName=stack["StackId"])
        self._wait(stack["StackId"], deleting=True)
        return True

    # --- waiting ---------------------------------------------------------------------------------

    def _settled(self, name: str) -> dict[str, Any] | None:
        """The stack once no operation is running on it (REVIEW_IN_PROGRESS counts as settled:
        nothing will ever move it on)."""
        stack = self.describe(name)
        if stack is None or not _running(stack["StackStatus"]):
            return stack
        log.info("stack %s is %s; waiting for it", name, stack["StackStatus"])
        return self._wait(name, accept_any=True)

    def _wait(
        self, name: str, *, deleting: bool = False, accept_any: bool = False
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout_s
        while True:
            stack = self._describe_for_wait(name, deleting)
            if stack is None:
                return {}
            status = stack["StackStatus"]
            if not _running(status):
                if accept_any or status in _COMPLETE:
                    return stack
                raise StackFailedError(
                    f"stack {stack['StackName']} ended {status}: {self._first_failure(name)}"
                )
            self._check_deadline(deadline, f"stack {stack['StackName']}", status)
            self._sleep(self._poll_s)

    def _describe_for_wait(self, name: str, deleting: bool) -> dict[str, Any] | None:
        try:
            stacks = self._cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if deleting and "does not exist" in str(exc):
                return None
            raise
        stack: dict[str, Any] = stacks[0]
        if deleting and stack["StackStatus"] == "DELETE_COMPLETE":
            return None
        return stack

    def _check_deadline(self, deadline: float, what: str, status: str) -> None:
        if time.monotonic() > deadline:
            raise StackFailedError(
                f"{what} is still {status} after {self._timeout_s:.0f} s; it may still finish: "
                "watch it in the CloudFormation console and run the command again"
            )

    def _first_failure(self, name: str) -> str:
        """The first (oldest) failed resource of the latest operation: the cause; later
        failures are mostly cancellations it triggered."""
        try:
            pages = self._cfn.get_paginator("describe_stack_events").paginate(StackName=name)
            events = [e for page in pages for e in page["StackEvents"]]
        except ClientError:
            return "no events readable"
        failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
        cancelled = "Resource creation cancelled"
        causes = [e for e in failed if cancelled not in str(e.get("ResourceStatusReason", ""))]
        if not (causes or failed):
            return "no failed resource reported"
        first = (causes or failed)[-1]  # events are newest first
        return (
            f"{first.get('LogicalResourceId')} ({first.get('ResourceType')}): "
            f"{first.get('ResourceStatusReason', '')}"
        )


def _running(status: str) -> bool:
    return status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS"


def _marker(stack: Mapping[str, Any]) -> tuple[str, str]:
    return str(stack.get("StackStatus")), str(stack.get("LastUpdatedTime", ""))


def _outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _log_changes(name: str, changes: list[Mapping[str, Any]]) -> None:
    for change in changes:
        resource = change.get("ResourceChange", {})
        replacement = resource.get("Replacement")
        note = (
            " (REPLACED: a new resource, the old one is deleted)" if replacement == "True" else ""
        )
        log.info(
            "stack %s: %s %s %s%s",
            name,
            resource.get("Action"),
            resource.get("LogicalResourceId"),
            resource.get("ResourceType"),
            note,
        )
