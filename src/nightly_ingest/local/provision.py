"""Create a resolved stack's resources in moto and register its functions for local Lambda."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .exceptions import ProvisionError, TemplateError, TemplateUnsupportedError
from .lambda_service import FAKE_CREDENTIALS, FunctionConfig, LambdaService
from .resources import DEFAULT_CONCURRENCY_LIMIT, QUEUE_ATTRIBUTE_PROPERTIES, role_arn
from .template import Stack, StackResource

LOG = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_SIZE_MB = 128
_DEFINITION_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def provision(stack: Stack, endpoint: str, lambda_service: LambdaService) -> None:
    """Create every resource with a local effect, in an order that satisfies references.

    Raises ProvisionError when the emulator rejects a resource, TemplateError for a value that
    cannot work (a missing CodeUri directory, an undefined definition substitution) and
    TemplateUnsupportedError for a value that only works on AWS (code in S3).
    """
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=stack.context.region,
    )
    # An empty proxy map keeps HTTP(S)_PROXY from routing requests away from 127.0.0.1.
    config = Config(proxies={}, retries={"max_attempts": 1})
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(  # type: ignore[call-overload]
                service, endpoint_url=endpoint, config=config
            )
        return clients[service]

    creators: list[tuple[str, Callable[[StackResource], None]]] = [
        ("AWS::S3::Bucket", lambda res: _create_bucket(client("s3"), res, stack.context.region)),
        ("AWS::DynamoDB::Table", lambda res: _create_table(client("dynamodb"), res)),
        ("AWS::SQS::Queue", lambda res: _create_queue(client("sqs"), res)),
        (
            "AWS::Serverless::Function",
            lambda res: lambda_service.register(function_config(stack, res)),
        ),
        (
            "AWS::Serverless::StateMachine",
            lambda res: _create_state_machine(client("stepfunctions"), stack, res),
        ),
    ]
    for resource_type, create in creators:
        for resource in stack.of_type(resource_type):
            try:
                create(resource)
            except (ClientError, BotoCoreError) as exc:
                raise ProvisionError(
                    f"Creating {resource.logical_id} ({resource.type}) in the emulator "
                    f"failed: {exc}"
                ) from exc
            LOG.info(
                "Created %s (%s) as %s", resource.logical_id, resource.type, resource.physical_id
            )


def _create_bucket(s3: Any, resource: StackResource, region: str) -> None:
    name = resource.physical_id
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    properties = resource.properties
    if "VersioningConfiguration" in properties:
        s3.put_bucket_versioning(
            Bucket=name,
            VersioningConfiguration={"Status": properties["VersioningConfiguration"]["Status"]},
        )
    if "Tags" in properties:
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list(properties["Tags"])})


def _create_table(dynamodb: Any, resource: StackResource) -> None:
    properties = resource.properties
    request: dict[str, Any] = {
        "TableName": resource.physical_id,
        "KeySchema": properties.get("KeySchema"),
        "AttributeDefinitions": properties.get("AttributeDefinitions"),
        # CloudFormation's default, which then requires ProvisionedThroughput.
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in properties:
        request["ProvisionedThroughput"] = {
            key: int(value) for key, value in properties["ProvisionedThroughput"].items()
        }
    for name in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if name in properties:
            request[name] = properties[name]
    if "StreamSpecification" in properties:
        view_type = properties["StreamSpecification"]["StreamViewType"]
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view_type}
    if "SSESpecification" in properties:
        sse = dict(properties["SSESpecification"])
        request["SSESpecification"] = {"Enabled": _boolean(sse.pop("SSEEnabled", False)), **sse}
    if "Tags" in properties:
        request["Tags"] = _tag_list(properties["Tags"])
    dynamodb.create_table(**request)
    if "TimeToLiveSpecification" in properties:
        ttl = properties["TimeToLiveSpecification"]
        dynamodb.update_time_to_live(
            TableName=resource.physical_id,
            TimeToLiveSpecification={
                "Enabled": _boolean(ttl.get("Enabled", False)),
                "AttributeName": ttl["AttributeName"],
            },
        )


def _create_queue(sqs: Any, resource: StackResource) -> None:
    attributes: dict[str, str] = {}
    for name, value in resource.properties.items():
        if name not in QUEUE_ATTRIBUTE_PROPERTIES:
            continue
        if isinstance(value, dict | list):
            attributes[name] = json.dumps(value)
        elif isinstance(value, bool):
            attributes[name] = "true" if value else "false"
        else:
            attributes[name] = str(value)
    request: dict[str, Any] = {
        "QueueName": resource.identity["QueueName"],
        "Attributes": attributes,
    }
    if "Tags" in resource.properties:
        request["tags"] = {tag["Key"]: tag["Value"] for tag in resource.properties["Tags"]}
    url = sqs.create_queue(**request)["QueueUrl"]
    if url != resource.identity["QueueUrl"]:
        # Every reference to the queue was resolved to the predicted URL already.
        raise ProvisionError(
            f"Queue {resource.logical_id} got URL {url}, not the predicted "
            f"{resource.identity['QueueUrl']}."
        )


def function_config(stack: Stack, resource: StackResource) -> FunctionConfig:
    """Build the local Lambda service's view of an AWS::Serverless::Function."""
    logical_id = resource.logical_id
    properties = resource.properties
    for required in ("CodeUri", "Handler", "Runtime"):
        if required not in properties:
            raise TemplateError(f"Function {logical_id} has no {required}.")
    runtime = str(properties["Runtime"])
    if not runtime.startswith("python3"):
        raise TemplateUnsupportedError(
            f"Function {logical_id} has Runtime {runtime}; the local AWS runs only python3.x."
        )
    environment = properties.get("Environment") or {}
    unsupported = sorted(set(environment) - {"Variables"})
    if unsupported:
        raise TemplateUnsupportedError(
            f"Function {logical_id} has Environment.{unsupported[0]}, which the local AWS "
            "does not support. Supported: Environment.Variables."
        )
    variables = {
        str(key): _text(value) for key, value in (environment.get("Variables") or {}).items()
    }
    return FunctionConfig(
        name=resource.physical_id,
        logical_id=logical_id,
        arn=resource.identity["Arn"],
        handler=str(properties["Handler"]),
        runtime=runtime,
        code_dir=_local_directory(stack, logical_id, "CodeUri", properties["CodeUri"]),
        layer_dirs=[
            path
            for arn in properties.get("Layers", [])
            for path in _layer_paths(stack, logical_id, arn)
        ],
        environment=variables,
        timeout_seconds=float(
            _integer(properties.get("Timeout", DEFAULT_TIMEOUT_SECONDS), logical_id, "Timeout")
        ),
        memory_size_mb=_integer(
            properties.get("MemorySize", DEFAULT_MEMORY_SIZE_MB), logical_id, "MemorySize"
        ),
        concurrency_limit=_integer(
            properties.get("ReservedConcurrentExecutions", DEFAULT_CONCURRENCY_LIMIT),
            logical_id,
            "ReservedConcurrentExecutions",
        ),
    )


def _layer_paths(stack: Stack, logical_id: str, layer_arn: Any) -> list[Path]:
    """Return the import path entries of a layer: ContentUri, and its python/ folder if any.

    A layer built by SAM (BuildMethod) has its packages at the root of ContentUri. A prebuilt
    layer has them under python/, which Lambda puts on the path as /opt/python.
    """
    for layer in stack.of_type("AWS::Serverless::LayerVersion"):
        if layer.physical_id == layer_arn:
            if "ContentUri" not in layer.properties:
                raise TemplateError(f"Layer {layer.logical_id} has no ContentUri.")
            content = _local_directory(
                stack, layer.logical_id, "ContentUri", layer.properties["ContentUri"]
            )
            prebuilt = content / "python"
            return [content, prebuilt] if prebuilt.is_dir() else [content]
    raise TemplateUnsupportedError(
        f"Function {logical_id} uses layer {layer_arn}, which is not an "
        "AWS::Serverless::LayerVersion of this template. The local AWS can only use layers "
        "defined in the template."
    )


def _local_directory(stack: Stack, logical_id: str, property_name: str, value: Any) -> Path:
    if not isinstance(value, str):
        raise TemplateUnsupportedError(
            f"Resource {logical_id} has a {property_name} that is not a local path: {value!r}. "
            "The local AWS cannot fetch code from S3."
        )
    directory = (stack.template_dir / value).resolve()
    if not directory.is_dir():
        raise TemplateError(
            f"{property_name} {value} of resource {logical_id} is not a directory: {directory}"
        )
    return directory


def render_definition(stack: Stack, resource: StackResource) -> str:
    """Return a state machine's definition with every ``${Name}`` substituted.

    Raises TemplateError naming the variable when DefinitionSubstitutions does not define it.
    """
    logical_id = resource.logical_id
    properties = resource.properties
    if ("Definition" in properties) == ("DefinitionUri" in properties):
        raise TemplateError(
            f"State machine {logical_id} needs exactly one of Definition and DefinitionUri."
        )
    if "Definition" in properties:
        text = json.dumps(properties["Definition"], indent=2)
        source = "Definition"
    else:
        uri = properties["DefinitionUri"]
        if not isinstance(uri, str):
            raise TemplateUnsupportedError(
                f"State machine {logical_id} has a DefinitionUri that is not a local path: "
                f"{uri!r}. The local AWS cannot fetch a definition from S3."
            )
        path = stack.template_dir / uri
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(
                f"DefinitionUri {uri} of state machine {logical_id} cannot be read: {exc}"
            ) from exc
        source = f"DefinitionUri {uri}"
    substitutions = {
        str(key): _text(value)
        for key, value in (properties.get("DefinitionSubstitutions") or {}).items()
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in substitutions:
            raise TemplateError(
                f"{source} of state machine {logical_id} uses ${{{name}}}, which "
                "DefinitionSubstitutions does not define."
            )
        return substitutions[name]

    definition = _DEFINITION_VARIABLE.sub(substitute, text)
    try:
        json.loads(definition)
    except ValueError as exc:
        raise TemplateError(
            f"{source} of state machine {logical_id} is not valid JSON after substitution: {exc}"
        ) from exc
    return definition


def _create_state_machine(stepfunctions: Any, stack: Stack, resource: StackResource) -> None:
    properties = resource.properties
    stepfunctions.create_state_machine(
        name=resource.identity["Name"],
        definition=render_definition(stack, resource),
        roleArn=str(properties.get("Role") or role_arn(stack.context, resource.logical_id)),
        type=str(properties.get("Type", "STANDARD")),
    )


def _tag_list(tags: Any) -> list[dict[str, str]]:
    if isinstance(tags, dict):
        return [{"Key": str(key), "Value": _text(value)} for key, value in tags.items()]
    return [{"Key": str(tag["Key"]), "Value": _text(tag["Value"])} for tag in tags]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _boolean(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _integer(value: Any, logical_id: str, property_name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise TemplateError(
            f"{property_name} of {logical_id} must be an integer, not {value!r}."
        ) from None
