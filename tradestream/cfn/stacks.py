"""The one CloudFormation engine: create, update, reuse and delete a stack, and wait for it.

Every stack this project deploys goes through ``Stacks``: the embedded stack's (moto, LocalStack)
and `tradestream deploy`'s (AWS, LocalStack, moto), so "unchanged", the waits, the failure report
and the recovery from empty shells mean the same everywhere.

Two ways to apply a change, chosen per endpoint:

- ``change_sets=True`` (AWS, LocalStack): a change set is created, its changes are logged (with
  replacements called out, since a replaced resource loses its data or name), and only then
  executed. A change set CloudFormation finds empty is deleted and the stack reported unchanged.
- ``change_sets=False`` (moto): CreateStack / UpdateStack. moto's ExecuteChangeSet neither records
  the new parameters nor recomputes outputs. "Unchanged" is then decided here: the same template
  body and the same effective parameters as deployed.

A stack left in ROLLBACK_COMPLETE (its first create failed) or REVIEW_IN_PROGRESS (a change set
was never executed) holds no resources: it is deleted and created afresh. Any other failed state
needs a person, and the error says so.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from tradestream.cfn.errors import StackFailedError
from tradestream.cfn.template import Resolver, StackTemplate, effective_parameters, resolver_for

log = logging.getLogger(__name__)

Action = Literal["created", "updated", "unchanged"]

_COMPLETE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
_EMPTY_SHELLS = {"ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"}
_ROLLED_BACK = {"UPDATE_ROLLBACK_COMPLETE"}  # a failed update; the stack works as before it
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_FIRST_POLL_S = 0.1  # moto and LocalStack finish in well under a second; AWS takes minutes
TAGS = ({"Key": "project", "Value": "tradestream"},)
# The templates create IAM roles with generated names.
_CAPABILITIES = ["CAPABILITY_IAM"]


@dataclass(frozen=True)
class StackOutcome:
    name: str
    action: Action
    outputs: dict[str, str]
    parameters: dict[str, str]  # every parameter as deployed, template defaults included


@dataclass(frozen=True)
class _Request:
    name: str
    template: StackTemplate
    parameters: dict[str, str]  # effective: template defaults filled in


def stack_name(kind: str, resource_name: str) -> str:
    """A valid stack name (``[A-Za-z][-A-Za-z0-9]{0,127}``) derived from a resource name."""
    name = f"tradestream-{kind}-" + re.sub(r"[^A-Za-z0-9-]", "-", resource_name)
    if len(name) > 128:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:119]}-{digest}"
    return name


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
        request = _Request(name, template, wanted)
        if self._change_sets:
            return self._deploy_with_change_set(request, stack)
        return self._deploy_directly(request, stack)

    def _deploy_with_change_set(
        self, request: _Request, stack: dict[str, Any] | None
    ) -> StackOutcome:
        name, template, wanted = request.name, request.template, request.parameters
        kind = "CREATE" if stack is None else "UPDATE"
        change_set = self._create_change_set(name, kind, template, wanted)
        if change_set is None:
            assert stack is not None  # a CREATE change set always has changes
            log.info("stack %s: no changes", name)
            return StackOutcome(name, "unchanged", _outputs(stack), wanted)
        self._cfn.execute_change_set(ChangeSetName=change_set, StackName=name)
        done = self._wait(name)
        action: Action = "created" if kind == "CREATE" else "updated"
        return StackOutcome(name, action, _outputs(done), wanted)

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
            Parameters=_parameter_list(parameters),
            Capabilities=_CAPABILITIES,
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
        for delay in self._polls():
            described: dict[str, Any] = self._cfn.describe_change_set(
                ChangeSetName=change_set_id, StackName=name
            )
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return described
            self._check_deadline(deadline, f"change set of {name}", described["Status"])
            self._sleep(delay)
        raise AssertionError("unreachable: _polls() never ends")

    def _deploy_directly(self, request: _Request, stack: dict[str, Any] | None) -> StackOutcome:
        name, template, wanted = request.name, request.template, request.parameters
        call: dict[str, Any] = {
            "StackName": name,
            "TemplateBody": template.body,
            "Parameters": _parameter_list(wanted),
            "Capabilities": _CAPABILITIES,
        }
        if stack is None:
            log.info("creating stack %s", name)
            self._cfn.create_stack(**call, Tags=list(TAGS))
            return StackOutcome(name, "created", _outputs(self._wait(name)), wanted)
        if self._unchanged(stack, template.body, wanted):
            return StackOutcome(name, "unchanged", _outputs(stack), wanted)
        log.info("updating stack %s", name)
        try:
            self._cfn.update_stack(**call)
        except ClientError as exc:
            if "No updates are to be performed" in str(exc):
                return StackOutcome(name, "unchanged", _outputs(stack), wanted)
            raise _update_refused(name, exc) from exc
        except BotoCoreError as exc:  # e.g. moto's HTML 500 page, which botocore cannot parse
            raise _update_refused(name, exc) from exc
        return StackOutcome(name, "updated", _outputs(self._wait(name)), wanted)

    def _unchanged(self, stack: Mapping[str, Any], body: str, wanted: Mapping[str, str]) -> bool:
        deployed = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        if deployed != dict(wanted):
            return False
        current = self._cfn.get_template(StackName=stack["StackName"])["TemplateBody"]
        return isinstance(current, str) and current == body

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

    def _polls(self) -> Iterator[float]:
        """Sleeps between two looks: short at first, doubling up to ``poll_s``."""
        delay = min(_FIRST_POLL_S, self._poll_s)
        while True:
            yield delay
            delay = min(delay * 2, self._poll_s)

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
        for delay in self._polls():
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
            self._sleep(delay)
        raise AssertionError("unreachable: _polls() never ends")

    def _describe_for_wait(self, name: str, deleting: bool) -> dict[str, Any] | None:
        try:
            stacks = self._cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                if deleting:
                    return None
                raise StackFailedError(f"stack {name} disappeared while deploying") from exc
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


def _update_refused(name: str, exc: Exception) -> StackFailedError:
    # moto 5.x updates resources whose Condition is false when a parameter they use changes, and
    # fails doing so: the local flavour's function and mapping use the mapping parameters.
    return StackFailedError(
        f"the endpoint could not update stack {name} ({exc}). moto cannot update a stack whose "
        "changed parameters feed resources it did not create (Condition false); delete the stack "
        "or deploy under other stream/table names"
    )


def _parameter_list(parameters: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]


def _running(status: str) -> bool:
    return status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS"


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


@dataclass(frozen=True)
class DeployedTemplate:
    """A stack as deployed, with its template, to read the resources it leaves to emulations."""

    outcome: StackOutcome
    template: StackTemplate

    @property
    def outputs(self) -> dict[str, str]:
        return self.outcome.outputs

    def resolver(self, region: str, account_id: str) -> Resolver:
        """Resolve the template's properties as CloudFormation did for this stack."""
        return resolver_for(
            self.template.parsed,
            parameters=self.outcome.parameters,
            outputs=self.outcome.outputs,
            region=region,
            account_id=account_id,
            stack_name=self.outcome.name,
        )


def deploy_template(
    cloudformation: Any, name: str, path: Path, parameters: Mapping[str, str], timeout_s: float
) -> DeployedTemplate:
    """Deploy the template file at ``path`` as stack ``name`` the embedded way (CreateStack /
    UpdateStack, which every endpoint honours), or find it unchanged."""
    template = StackTemplate.load(path)
    stacks = Stacks(cloudformation, change_sets=False, timeout_s=timeout_s)
    return DeployedTemplate(stacks.deploy(name, template, parameters), template)
