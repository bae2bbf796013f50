"""Resource types that the local AWS accepts, with their names, references and properties."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_CONCURRENCY_LIMIT = 10
"""Concurrency limit of a function without ReservedConcurrentExecutions.

AWS shares an account-wide limit (1,000 by default) among such functions. Every local execution
environment is an OS process, so the local default is kept small.
"""


@dataclass(frozen=True)
class StackContext:
    """Pseudo-parameter values and the emulator endpoint, from which names and ARNs derive."""

    stack_name: str
    region: str
    account_id: str
    partition: str
    endpoint: str


@dataclass(frozen=True)
class ResourceType:
    """Local handling of one CloudFormation or SAM resource type.

    ``applied_properties`` are properties with a local effect and ``inert_properties`` are
    accepted without one. Any other property is rejected. When ``validated`` is false, the
    resource has no local effect at all and its properties are resolved but not checked.
    """

    name: str
    name_property: str | None
    name_max_length: int
    identity: Callable[[str, str, StackContext], dict[str, str]]
    applied_properties: frozenset[str] = frozenset()
    inert_properties: frozenset[str] = frozenset()
    validated: bool = True
    lowercase_name: bool = False
    logical_id_as_default_name: bool = False

    @property
    def supported_properties(self) -> frozenset[str]:
        return self.applied_properties | self.inert_properties


def physical_name(
    context: StackContext, logical_id: str, resource_type: ResourceType, ending: str = ""
) -> str:
    """Generate a name as CloudFormation does: ``<stack>-<logical id>-<suffix><ending>``.

    The suffix is derived from the stack name and logical id, so it is stable from one run to
    the next where CloudFormation's is random. The stack and logical id are cut so that the
    name fits the type's maximum length.
    """
    digest = hashlib.sha256(f"{context.stack_name}/{logical_id}".encode()).digest()
    suffix = base64.b32encode(digest).decode("ascii")[:12]
    limit = resource_type.name_max_length - len(suffix) - 1 - len(ending)
    name = f"{context.stack_name}-{logical_id}"[:limit] + f"-{suffix}{ending}"
    return name.lower() if resource_type.lowercase_name else name


def role_arn(context: StackContext, logical_id: str) -> str:
    """Return the ARN of the role that SAM would create for a function or state machine."""
    digest = hashlib.sha256(f"{context.stack_name}/{logical_id}Role".encode()).digest()
    suffix = base64.b32encode(digest).decode("ascii")[:12]
    name = f"{context.stack_name}-{logical_id}Role-{suffix}"[:64]
    return f"arn:{context.partition}:iam::{context.account_id}:role/{name}"


def _bucket_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    return {
        "Ref": name,
        "Arn": f"arn:{context.partition}:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{context.region}.amazonaws.com",
    }


def _bucket_policy_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    return {"Ref": name}


def _table_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    arn = _arn(context, "dynamodb", f"table/{name}")
    return {"Ref": name, "Arn": arn}


def _arn(context: StackContext, service: str, resource: str) -> str:
    return f"arn:{context.partition}:{service}:{context.region}:{context.account_id}:{resource}"


def _queue_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    # moto's server builds a queue URL from the host of the CreateQueue request.
    url = f"{context.endpoint}/{context.account_id}/{name}"
    arn = _arn(context, "sqs", name)
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def _function_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    arn = _arn(context, "lambda", f"function:{name}")
    return {"Ref": name, "Arn": arn}


def _layer_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    arn = _arn(context, "lambda", f"layer:{name}:1")
    return {"Ref": arn, "Arn": arn}


def _state_machine_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    arn = _arn(context, "states", f"stateMachine:{name}")
    return {"Ref": arn, "Arn": arn, "Name": name}


def _log_group_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    arn = _arn(context, "logs", f"log-group:{name}:*")
    return {"Ref": name, "Arn": arn}


def _alarm_identity(logical_id: str, name: str, context: StackContext) -> dict[str, str]:
    arn = _arn(context, "cloudwatch", f"alarm:{name}")
    return {"Ref": name, "Arn": arn}


QUEUE_ATTRIBUTE_PROPERTIES = frozenset(
    {
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds",
        "KmsMasterKeyId",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    }
)

RESOURCE_TYPES: dict[str, ResourceType] = {
    resource_type.name: resource_type
    for resource_type in [
        ResourceType(
            name="AWS::S3::Bucket",
            name_property="BucketName",
            name_max_length=63,
            lowercase_name=True,
            identity=_bucket_identity,
            applied_properties=frozenset({"BucketName", "VersioningConfiguration", "Tags"}),
            # Encryption, public access and lifecycle rules change nothing that a local run
            # can observe. The EventBridge notification has no local effect because the caller
            # starts executions itself.
            inert_properties=frozenset(
                {
                    "BucketEncryption",
                    "PublicAccessBlockConfiguration",
                    "NotificationConfiguration",
                    "LifecycleConfiguration",
                    "OwnershipControls",
                }
            ),
        ),
        ResourceType(
            name="AWS::S3::BucketPolicy",
            name_property=None,
            name_max_length=128,
            identity=_bucket_policy_identity,
            validated=False,
        ),
        ResourceType(
            name="AWS::DynamoDB::Table",
            name_property="TableName",
            name_max_length=255,
            identity=_table_identity,
            applied_properties=frozenset(
                {
                    "TableName",
                    "KeySchema",
                    "AttributeDefinitions",
                    "BillingMode",
                    "ProvisionedThroughput",
                    "GlobalSecondaryIndexes",
                    "LocalSecondaryIndexes",
                    "StreamSpecification",
                    "SSESpecification",
                    "TimeToLiveSpecification",
                    "Tags",
                }
            ),
            inert_properties=frozenset(
                {"PointInTimeRecoverySpecification", "DeletionProtectionEnabled", "TableClass"}
            ),
        ),
        ResourceType(
            name="AWS::SQS::Queue",
            name_property="QueueName",
            name_max_length=80,
            identity=_queue_identity,
            applied_properties=QUEUE_ATTRIBUTE_PROPERTIES | {"QueueName", "Tags"},
        ),
        ResourceType(
            name="AWS::Serverless::Function",
            name_property="FunctionName",
            name_max_length=64,
            identity=_function_identity,
            applied_properties=frozenset(
                {
                    "FunctionName",
                    "CodeUri",
                    "Handler",
                    "Runtime",
                    "Environment",
                    "Timeout",
                    "MemorySize",
                    "ReservedConcurrentExecutions",
                    "Layers",
                }
            ),
            inert_properties=frozenset(
                {"Description", "Architectures", "Tracing", "Policies", "Role", "Tags"}
            ),
        ),
        ResourceType(
            name="AWS::Serverless::LayerVersion",
            name_property="LayerName",
            name_max_length=140,
            # SAM names a layer after its logical id when LayerName is absent.
            logical_id_as_default_name=True,
            identity=_layer_identity,
            applied_properties=frozenset({"LayerName", "ContentUri"}),
            inert_properties=frozenset(
                {
                    "Description",
                    "CompatibleRuntimes",
                    "CompatibleArchitectures",
                    "LicenseInfo",
                    "RetentionPolicy",
                }
            ),
        ),
        ResourceType(
            name="AWS::Serverless::StateMachine",
            name_property="Name",
            name_max_length=80,
            identity=_state_machine_identity,
            applied_properties=frozenset(
                {
                    "Name",
                    "Type",
                    "Definition",
                    "DefinitionUri",
                    "DefinitionSubstitutions",
                    "Role",
                    "Events",
                }
            ),
            inert_properties=frozenset(
                {"Policies", "Logging", "Tracing", "Tags", "PermissionsBoundary"}
            ),
        ),
        ResourceType(
            name="AWS::Logs::LogGroup",
            name_property="LogGroupName",
            name_max_length=512,
            identity=_log_group_identity,
            validated=False,
        ),
        ResourceType(
            name="AWS::CloudWatch::Alarm",
            name_property="AlarmName",
            name_max_length=255,
            identity=_alarm_identity,
            validated=False,
        ),
    ]
}

STATE_MACHINE_EVENT_TYPES = frozenset({"EventBridgeRule"})
"""State machine event sources accepted without a local effect: the caller starts executions."""
