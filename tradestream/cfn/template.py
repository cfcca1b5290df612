"""Read the CloudFormation templates: load them, and resolve their properties as CloudFormation
would for a deployed stack.

The templates under ``infra/cloudformation/`` are the single source of truth. Resources that moto
cannot run without Docker (the functions, the event source mapping, the delivery stream) are not
created locally; the emulations read their settings from the template (``tradestream.local.esm.
settings``, ``tradestream.local.firehose.settings``, ``tradestream.local.lambda_runtime``) through
the ``Resolver`` here, which resolves them the way CloudFormation would for the deployed stack:
``Ref`` to a parameter gives the deployed value (else the template default), ``Fn::GetAtt`` gives
the deployed resource's attribute (taken from the stack outputs), ``Fn::If`` evaluates the
template's conditions.

Not resolved: ``Fn::FindInMap``, ``Fn::ImportValue``, ``Fn::Select``/``Split``/``Join`` and other
functions the templates do not use on these paths; they raise ``TemplateError`` naming the function.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cfn_tools import load_yaml

# The repository's templates; an installed (non-editable) copy, as in the container images, is
# told where they are with TRADESTREAM_TEMPLATE_DIR.
TEMPLATE_DIR = Path(
    os.environ.get("TRADESTREAM_TEMPLATE_DIR")
    or Path(__file__).resolve().parents[2] / "infra" / "cloudformation"
)
STREAM_TEMPLATE = "stream.yaml"
HOTSTORE_TEMPLATE = "hotstore.yaml"

_PSEUDO_DEFAULTS = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


class TemplateError(ValueError):
    """A template (or its parameters) that CloudFormation itself would refuse."""

    code = "ValidationError"


class NotEmulatedError(TemplateError):
    """The template uses a feature the local emulations do not implement."""

    code = "NotEmulated"


def template_path(name: str, template_dir: Path | None = None) -> Path:
    return (template_dir or TEMPLATE_DIR) / name


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (short-form intrinsics allowed) or JSON template into long-form dicts."""
    text = Path(path).read_text(encoding="utf-8")
    template = load_yaml(text)
    if not isinstance(template, Mapping) or "Resources" not in template:
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources section)")
    return cast(dict[str, Any], template)


@dataclass(frozen=True)
class StackTemplate:
    """A template as deployed: the file's text is sent as is, so the stack holds the file,
    comments included; the parsed form is what the resolver and the settings readers read."""

    body: str
    parsed: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> StackTemplate:
        return cls(body=path.read_text(encoding="utf-8"), parsed=load_template(path))


# --- resolving intrinsic functions -------------------------------------------------------------

_NO_VALUE = object()  # AWS::NoValue: the property is removed, as if never written


@dataclass
class Resolver:
    """Resolves intrinsic functions against one deployed stack."""

    template: Mapping[str, Any]
    parameters: Mapping[str, str]
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    pseudo: Mapping[str, str] = field(default_factory=dict)
    _conditions: dict[str, bool] = field(default_factory=dict, init=False)

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in ``value``; properties set to AWS::NoValue disappear."""
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = (self._resolve(item) for item in value)
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                return self._get_att(argument)
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self._resolve(when_true if self.condition(condition) else when_false)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key.startswith("Fn::") or key == "Condition":
                raise TemplateError(f"{key} is not supported by the local template resolver")
        resolved = {k: self._resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if (name, "Ref") in self.attributes:
            return self.attributes[(name, "Ref")]
        raise TemplateError(f"Ref {name!r}: not a parameter, and no stack output gives its value")

    def _get_att(self, argument: Any) -> str:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise TemplateError(
                f"Fn::GetAtt {logical_id}.{attribute}: add a stack output with this value "
                "so the local runtime can learn it"
            ) from None

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {name: self._resolve(value) for name, value in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} is an escaped literal
            if name in local:
                return str(local[name])
            if "." in name:
                return self._get_att(name)
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", substitute, text)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definitions = self.template.get("Conditions", {})
            if name not in definitions:
                raise TemplateError(f"condition {name!r} is not defined in the template")
            self._conditions[name] = self._evaluate(definitions[name])
        return self._conditions[name]

    def _evaluate(self, expression: Any) -> bool:
        if isinstance(expression, bool):
            return expression
        (key, argument), *_ = expression.items()
        if key == "Condition":
            return self.condition(argument)
        if key == "Fn::Equals":
            left, right = (as_parameter_string(self._resolve(side)) for side in argument)
            return left == right
        if key == "Fn::Not":
            return not self._evaluate(argument[0])
        if key == "Fn::And":
            return all(self._evaluate(item) for item in argument)
        if key == "Fn::Or":
            return any(self._evaluate(item) for item in argument)
        raise TemplateError(f"{key} is not a condition function")


def effective_parameters(
    template: Mapping[str, Any], deployed: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Template defaults overridden by the deployed values, as strings (CloudFormation's type)."""
    deployed = deployed or {}
    declared = template.get("Parameters", {})
    unknown = set(deployed) - set(declared)
    if unknown:
        raise TemplateError(f"parameters not declared by the template: {sorted(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in deployed:
            value = deployed[name]
        elif "Default" in spec:
            value = as_parameter_string(spec["Default"])
        else:
            raise TemplateError(f"parameter {name!r} has no default and no value was given")
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [as_parameter_string(a) for a in allowed]:
            raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
        values[name] = value
    return values


def as_parameter_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def attributes_from_outputs(
    template: Mapping[str, Any], outputs: Mapping[str, str]
) -> dict[tuple[str, str], str]:
    """Learn resource attributes from a deployed stack's outputs.

    An output whose value is ``!GetAtt Queue.Arn`` tells us ``Queue.Arn``; one that is
    ``!Ref Queue`` tells us what ``Ref Queue`` gives. The templates export what the local runtime
    needs this way.
    """
    attributes: dict[tuple[str, str], str] = {}
    for key, output in template.get("Outputs", {}).items():
        if key not in outputs:
            continue  # a conditional output the deployed flavour does not have
        value = output.get("Value")
        if isinstance(value, Mapping) and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            logical_id, attribute = target.split(".", 1) if isinstance(target, str) else target
            attributes[(logical_id, attribute)] = outputs[key]
        elif isinstance(value, Mapping) and isinstance(value.get("Ref"), str):
            attributes[(value["Ref"], "Ref")] = outputs[key]
    return attributes


def find_resource(
    template: Mapping[str, Any], resource_type: str, logical_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The one resource of ``resource_type`` in the template (named ``logical_id`` if given)."""
    matches = [
        (name, resource)
        for name, resource in template["Resources"].items()
        if resource.get("Type") == resource_type and logical_id in (None, name)
    ]
    if len(matches) != 1:
        raise TemplateError(f"expected exactly one {resource_type}, found {len(matches)}")
    return matches[0]


def resolver_for(
    template: Mapping[str, Any],
    *,
    parameters: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    stack_name: str = "",
) -> Resolver:
    pseudo = {
        **_PSEUDO_DEFAULTS,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::StackName": stack_name,
    }
    return Resolver(
        template=template,
        parameters=effective_parameters(template, parameters),
        attributes=attributes_from_outputs(template, outputs or {}),
        pseudo=pseudo,
    )


# --- reading resolved properties ----------------------------------------------------------


def as_int(
    props: Mapping[str, Any], name: str, default: int, error: type[TemplateError] = TemplateError
) -> int:
    value = props.get(name, default)
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError):
        raise error(f"{name} must be an integer, got {value!r}") from None


def as_bool(
    props: Mapping[str, Any], name: str, default: bool, error: type[TemplateError] = TemplateError
) -> bool:
    value = props.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise error(f"{name} must be true or false, got {value!r}")
