"""Load a SAM template and resolve it into the resources that the local AWS creates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .exceptions import ParameterValueError, TemplateError, TemplateUnsupportedError
from .resources import (
    RESOURCE_TYPES,
    STATE_MACHINE_EVENT_TYPES,
    ResourceType,
    StackContext,
    physical_name,
)

DEFAULT_STACK_NAME = "nightly-ingest"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_PARTITION = "aws"

SERVERLESS_TRANSFORM = "AWS::Serverless-2016-10-31"
SUPPORTED_INTRINSICS = ("Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join")
SUPPORTED_PARAMETER_TYPES = ("String", "Number", "CommaDelimitedList", "List<Number>")

_ACCEPTED_SECTIONS = frozenset(
    {
        "AWSTemplateFormatVersion",
        "Description",
        "Metadata",
        "Transform",
        "Parameters",
        "Globals",
        "Resources",
        "Outputs",
    }
)
_UNSUPPORTED_SECTIONS = frozenset({"Conditions", "Mappings", "Rules"})
_ACCEPTED_RESOURCE_ATTRIBUTES = frozenset(
    {"Type", "Properties", "Metadata", "DependsOn", "DeletionPolicy", "UpdateReplacePolicy"}
)
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _NoValue:
    """Marker for ``Ref: AWS::NoValue``, which removes the property or list item it stands for."""


NO_VALUE = _NoValue()


@dataclass
class StackResource:
    """One resource of the template with its properties resolved."""

    logical_id: str
    type: str
    properties: dict[str, Any]
    identity: dict[str, str]
    """Values of ``Ref`` (under the key ``"Ref"``) and of ``Fn::GetAtt`` (under attribute names)."""

    @property
    def physical_id(self) -> str:
        return self.identity["Ref"]

    def summary(self) -> dict[str, str]:
        """Return the type, physical id and attributes, as JSON-ready strings."""
        attributes = {key: value for key, value in self.identity.items() if key != "Ref"}
        return {"type": self.type, "physical_id": self.physical_id, **attributes}


@dataclass
class Stack:
    """A template resolved for one stack name, region and account."""

    context: StackContext
    template_path: Path
    parameters: dict[str, str]
    resources: dict[str, StackResource] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def template_dir(self) -> Path:
        return self.template_path.parent

    def of_type(self, resource_type: str) -> list[StackResource]:
        return [res for res in self.resources.values() if res.type == resource_type]


class _TemplateLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags into their long ``Fn::`` forms."""


def _construct_short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref" or suffix == "Condition":
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        # The short form "Resource.Attribute" splits at the first dot only, because
        # attribute names such as Endpoint.Address contain dots themselves.
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _construct_short_tag)


def load_template(path: Path | str) -> dict[str, Any]:
    """Read a YAML or JSON template, with CloudFormation short tags such as ``!Ref``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(
            f"Template {path} is not UTF-8 text: invalid byte at offset {exc.start}"
        ) from exc
    except OSError as exc:
        raise TemplateError(f"Template {path} cannot be read: {exc.strerror}") from exc
    try:
        template = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"Template {path} is not valid YAML: {exc}") from exc
    if not isinstance(template, dict):
        raise TemplateError(f"Template {path} must be a mapping, not {type(template).__name__}")
    return template


def resolve_stack(
    template_path: Path | str,
    parameter_overrides: Mapping[str, Any] | None = None,
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    partition: str = DEFAULT_PARTITION,
    endpoint: str = "http://127.0.0.1",
) -> Stack:
    """Load a template and resolve every property and output for one stack.

    ``parameter_overrides`` replaces parameter defaults, as ``sam deploy --parameter-overrides``
    does. ``endpoint`` is the emulator's URL, which queue URLs start with.

    Raises TemplateError for an invalid template, TemplateUnsupportedError for anything the
    local AWS cannot run, and ParameterValueError for a parameter value that breaks its
    constraints.
    """
    path = Path(template_path).resolve()
    template = load_template(path)
    _check_sections(template)
    context = StackContext(
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        partition=partition,
        endpoint=endpoint.rstrip("/"),
    )
    declared = template.get("Parameters") or {}
    parameters = resolve_parameters(declared, parameter_overrides or {})
    parameter_types = {name: str(spec.get("Type")) for name, spec in declared.items()}

    raw_resources = template.get("Resources")
    if not isinstance(raw_resources, dict) or not raw_resources:
        raise TemplateError(f"Template {path} has no Resources")
    raw_resources = _apply_function_globals(raw_resources, template.get("Globals") or {})
    for logical_id, raw in raw_resources.items():
        _check_resource(logical_id, raw)

    resolver = _Resolver(context, parameters, parameter_types, raw_resources)
    stack = Stack(context=context, template_path=path, parameters=parameters)
    for logical_id, raw in raw_resources.items():
        properties = resolver.resolve(
            raw.get("Properties") or {}, f"Resources.{logical_id}.Properties"
        )
        stack.resources[logical_id] = StackResource(
            logical_id=logical_id,
            type=raw["Type"],
            properties=properties,
            identity=resolver.identity(logical_id),
        )
    for output_name, output in (template.get("Outputs") or {}).items():
        stack.outputs[output_name] = _resolve_output(resolver, output_name, output)
    return stack


def resolve_parameters(declared: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, str]:
    """Return each parameter's value as text: the override if given, else the Default.

    Raises ParameterValueError for an override of an undeclared parameter, a missing value or a
    value that breaks AllowedValues, AllowedPattern, MinLength, MaxLength, MinValue or MaxValue.
    """
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ParameterValueError(
            f"Parameter overrides name undeclared parameters: {', '.join(unknown)}. "
            f"Declared parameters: {', '.join(sorted(declared)) or 'none'}."
        )
    values: dict[str, str] = {}
    for name, spec in declared.items():
        parameter_type = spec.get("Type")
        if parameter_type not in SUPPORTED_PARAMETER_TYPES:
            raise TemplateUnsupportedError(
                f"Parameter {name} has type {parameter_type}, which the local AWS does not "
                f"support. Supported types: {', '.join(SUPPORTED_PARAMETER_TYPES)}."
            )
        if name in overrides:
            value = _scalar_text(overrides[name])
        elif "Default" in spec:
            value = _scalar_text(spec["Default"])
        else:
            raise ParameterValueError(
                f"Parameter {name} has no Default, so it needs an override value."
            )
        _validate_parameter(name, spec, value)
        values[name] = value
    return values


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_scalar_text(item) for item in value)
    return str(value)


def _validate_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [_scalar_text(item) for item in allowed]:
        raise ParameterValueError(
            f"Parameter {name}: value {value!r} is not one of AllowedValues "
            f"{', '.join(_scalar_text(item) for item in allowed)}."
        )
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise ParameterValueError(
                f"Parameter {name}: value {value!r} is not a number."
            ) from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise ParameterValueError(
                f"Parameter {name}: value {value} is less than MinValue {spec['MinValue']}."
            )
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise ParameterValueError(
                f"Parameter {name}: value {value} is greater than MaxValue {spec['MaxValue']}."
            )
    if spec.get("Type") == "String":
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            raise ParameterValueError(
                f"Parameter {name}: value {value!r} is shorter than MinLength {spec['MinLength']}."
            )
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            raise ParameterValueError(
                f"Parameter {name}: value {value!r} is longer than MaxLength {spec['MaxLength']}."
            )
        pattern = spec.get("AllowedPattern")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise ParameterValueError(
                f"Parameter {name}: value {value!r} does not match AllowedPattern {pattern}."
            )


def _check_sections(template: Mapping[str, Any]) -> None:
    for section, content in template.items():
        if section in _UNSUPPORTED_SECTIONS:
            if content:
                raise TemplateUnsupportedError(
                    f"Template section {section} is not supported by the local AWS."
                )
        elif section not in _ACCEPTED_SECTIONS:
            raise TemplateError(f"Template has an unknown top-level section {section}.")
    transform = template.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform]
    for name in transforms:
        if name is not None and name != SERVERLESS_TRANSFORM:
            raise TemplateUnsupportedError(
                f"Transform {name} is not supported by the local AWS. "
                f"Supported transform: {SERVERLESS_TRANSFORM}."
            )
    globals_ = template.get("Globals") or {}
    for section in globals_:
        if section != "Function":
            raise TemplateUnsupportedError(
                f"Globals section {section} is not supported by the local AWS. "
                "Supported section: Function."
            )
    function_type = RESOURCE_TYPES["AWS::Serverless::Function"]
    for name in globals_.get("Function") or {}:
        if name not in function_type.supported_properties:
            raise TemplateUnsupportedError(
                f"Globals.Function has property {name}, which the local AWS does not support. "
                f"Supported properties: {', '.join(sorted(function_type.supported_properties))}."
            )


def _apply_function_globals(
    resources: Mapping[str, Any], globals_: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge Globals.Function into every AWS::Serverless::Function, as SAM does.

    A function's own scalar wins, maps merge key by key, and lists are the global items
    followed by the function's items.
    """
    function_globals = globals_.get("Function") or {}
    merged: dict[str, Any] = {}
    for logical_id, raw in resources.items():
        if (
            isinstance(raw, dict)
            and raw.get("Type") == "AWS::Serverless::Function"
            and function_globals
        ):
            properties = _merge_global(function_globals, raw.get("Properties") or {})
            raw = {**raw, "Properties": properties}
        merged[logical_id] = raw
    return merged


def _merge_global(global_value: Any, local_value: Any) -> Any:
    if _is_plain_mapping(global_value) and _is_plain_mapping(local_value):
        result = dict(global_value)
        for key, value in local_value.items():
            result[key] = _merge_global(global_value[key], value) if key in result else value
        return result
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


def _is_plain_mapping(value: Any) -> bool:
    """Tell a mapping of properties from an intrinsic function, which merges as a scalar."""
    if not isinstance(value, dict):
        return False
    if len(value) == 1:
        (key,) = value
        return not (key == "Ref" or key.startswith("Fn::"))
    return True


def _check_resource(logical_id: str, raw: Any) -> None:
    """Raise unless the resource's type, attributes and property names are supported."""
    if not isinstance(raw, dict) or "Type" not in raw:
        raise TemplateError(f"Resource {logical_id} must be a mapping with a Type.")
    type_name = raw["Type"]
    resource_type = RESOURCE_TYPES.get(type_name)
    if resource_type is None:
        raise TemplateUnsupportedError(
            f"Resource {logical_id} has type {type_name}, which the local AWS does not "
            f"support. Supported types: {', '.join(sorted(RESOURCE_TYPES))}."
        )
    for attribute in raw:
        if attribute not in _ACCEPTED_RESOURCE_ATTRIBUTES:
            supported = ", ".join(sorted(_ACCEPTED_RESOURCE_ATTRIBUTES))
            raise TemplateUnsupportedError(
                f"Resource {logical_id} has attribute {attribute}, which the local AWS does not "
                f"support. Supported attributes: {supported}."
            )
    properties = raw.get("Properties") or {}
    if not isinstance(properties, dict):
        raise TemplateError(f"Properties of resource {logical_id} must be a mapping.")
    if not resource_type.validated:
        return
    for name in properties:
        if name not in resource_type.supported_properties:
            raise TemplateUnsupportedError(
                f"Resource {logical_id} ({type_name}) has property {name}, which the local AWS "
                f"does not support. Supported properties: "
                f"{', '.join(sorted(resource_type.supported_properties))}."
            )
    if type_name == "AWS::Serverless::StateMachine":
        _check_state_machine_events(logical_id, properties.get("Events") or {})


def _check_state_machine_events(logical_id: str, events: Mapping[str, Any]) -> None:
    for event_name, event in events.items():
        event_type = event.get("Type") if isinstance(event, dict) else None
        if event_type not in STATE_MACHINE_EVENT_TYPES:
            raise TemplateUnsupportedError(
                f"Resource {logical_id} (AWS::Serverless::StateMachine) has event {event_name} "
                f"of type {event_type}, which the local AWS does not support. Supported event "
                f"types: {', '.join(sorted(STATE_MACHINE_EVENT_TYPES))}."
            )


def _resolve_output(resolver: _Resolver, name: str, output: Any) -> str:
    if not isinstance(output, dict) or "Value" not in output:
        raise TemplateError(f"Output {name} must be a mapping with a Value.")
    if "Condition" in output:
        raise TemplateUnsupportedError(
            f"Output {name} has a Condition, which the local AWS does not support."
        )
    value = resolver.resolve(output["Value"], f"Outputs.{name}.Value")
    return _scalar_text(value)


class _Resolver:
    """Evaluate Ref, Fn::GetAtt, Fn::Sub and Fn::Join against parameters and resources."""

    def __init__(
        self,
        context: StackContext,
        parameters: Mapping[str, str],
        parameter_types: Mapping[str, str],
        resources: Mapping[str, Any],
    ) -> None:
        self._context = context
        self._parameters = parameters
        self._parameter_types = parameter_types
        self._resources = resources
        self._identities: dict[str, dict[str, str]] = {}
        self._resolving: list[str] = []
        self._pseudo = {
            "AWS::StackName": context.stack_name,
            "AWS::Region": context.region,
            "AWS::AccountId": context.account_id,
            "AWS::Partition": context.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:{context.partition}:cloudformation:{context.region}:{context.account_id}"
                f":stack/{context.stack_name}/local"
            ),
        }

    def resolve(self, value: Any, where: str) -> Any:
        """Return ``value`` with every intrinsic function evaluated. ``where`` locates it."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref":
                    return self._ref(argument, where)
                if key == "Fn::GetAtt":
                    return self._get_att(argument, where)
                if key == "Fn::Sub":
                    return self._sub(argument, where)
                if key == "Fn::Join":
                    return self._join(argument, where)
                if key.startswith("Fn::"):
                    raise TemplateUnsupportedError(
                        f"{where} uses {key}, which the local AWS does not support. "
                        f"Supported intrinsic functions: {', '.join(SUPPORTED_INTRINSICS)}."
                    )
            resolved = {}
            for key, item in value.items():
                result = self.resolve(item, f"{where}.{key}")
                if result is not NO_VALUE:
                    resolved[key] = result
            return resolved
        if isinstance(value, list):
            items = [self.resolve(item, f"{where}[{index}]") for index, item in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    def identity(self, logical_id: str) -> dict[str, str]:
        """Return what Ref and Fn::GetAtt give for a resource, naming it on first use."""
        if logical_id in self._identities:
            return self._identities[logical_id]
        if logical_id in self._resolving:
            chain = " -> ".join([*self._resolving, logical_id])
            raise TemplateError(f"Circular reference between resource names: {chain}.")
        self._resolving.append(logical_id)
        try:
            raw = self._resources[logical_id]
            resource_type = RESOURCE_TYPES[raw["Type"]]
            name = self._name(logical_id, raw.get("Properties") or {}, resource_type)
            identity = resource_type.identity(logical_id, name, self._context)
        finally:
            self._resolving.pop()
        self._identities[logical_id] = identity
        return identity

    def _name(
        self, logical_id: str, properties: Mapping[str, Any], resource_type: ResourceType
    ) -> str:
        name_property = resource_type.name_property
        if name_property is not None and name_property in properties:
            where = f"Resources.{logical_id}.Properties.{name_property}"
            return _scalar_text(self.resolve(properties[name_property], where))
        if resource_type.logical_id_as_default_name:
            return logical_id
        ending = ""
        if resource_type.name == "AWS::SQS::Queue":
            fifo = self.resolve(
                properties.get("FifoQueue", False), f"Resources.{logical_id}.Properties.FifoQueue"
            )
            ending = ".fifo" if _scalar_text(fifo) == "true" else ""
        return physical_name(self._context, logical_id, resource_type, ending)

    def _ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref takes a name, not {name!r}.")
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name.startswith("AWS::"):
            raise TemplateUnsupportedError(
                f"{where}: pseudo parameter {name} is not supported by the local AWS. "
                f"Supported: {', '.join(sorted(self._pseudo))}, AWS::NoValue."
            )
        if name in self._parameters:
            value = self._parameters[name]
            if self._parameter_types.get(name) in ("CommaDelimitedList", "List<Number>"):
                return [item.strip() for item in value.split(",")]
            return value
        if name in self._resources:
            return self.identity(name)["Ref"]
        raise TemplateError(f"{where}: Ref {name} names no parameter or resource.")

    def _get_att(self, argument: Any, where: str) -> str:
        if (
            not isinstance(argument, list)
            or len(argument) != 2
            or not all(isinstance(part, str) for part in argument)
        ):
            raise TemplateError(
                f"{where}: Fn::GetAtt takes [LogicalId, Attribute] or 'LogicalId.Attribute', "
                f"not {argument!r}."
            )
        logical_id, attribute = argument
        if logical_id not in self._resources:
            raise TemplateError(f"{where}: Fn::GetAtt {logical_id}.{attribute} names no resource.")
        identity = self.identity(logical_id)
        if attribute == "Ref" or attribute not in identity:
            supported = sorted(key for key in identity if key != "Ref")
            raise TemplateUnsupportedError(
                f"{where}: Fn::GetAtt {logical_id}.{attribute} is not supported by the local "
                f"AWS for {self._resources[logical_id]['Type']}. Supported attributes: "
                f"{', '.join(supported) or 'none'}."
            )
        return identity[attribute]

    def _sub(self, argument: Any, where: str) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        elif (
            isinstance(argument, list)
            and len(argument) == 2
            and isinstance(argument[0], str)
            and isinstance(argument[1], dict)
        ):
            text = argument[0]
            variables = {
                key: self.resolve(value, f"{where}[1].{key}") for key, value in argument[1].items()
            }
        else:
            raise TemplateError(
                f"{where}: Fn::Sub takes a string or [string, {{variables}}], not {argument!r}."
            )

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name:
                value = self._get_att(name.split(".", 1), where)
            else:
                value = self._ref(name, where)
            if isinstance(value, list | dict) or value is NO_VALUE:
                raise TemplateError(f"{where}: Fn::Sub variable {name} is not a string.")
            return _scalar_text(value)

        return _SUB_VARIABLE.sub(substitute, text)

    def _join(self, argument: Any, where: str) -> str:
        if not isinstance(argument, list) or len(argument) != 2 or not isinstance(argument[0], str):
            raise TemplateError(f"{where}: Fn::Join takes [delimiter, [values]], not {argument!r}.")
        values = self.resolve(argument[1], f"{where}[1]")
        if not isinstance(values, list):
            raise TemplateError(f"{where}: Fn::Join needs a list of values, not {values!r}.")
        return argument[0].join(_scalar_text(value) for value in values)
