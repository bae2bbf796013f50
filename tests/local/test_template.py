"""Tests for loading a SAM template and resolving it into a stack."""

import textwrap
from pathlib import Path

import pytest

from nightly_ingest.local import ParameterValueError, TemplateError, TemplateUnsupportedError
from nightly_ingest.local.template import load_template, resolve_stack

from .conftest import PROJECT_TEMPLATE

ENDPOINT = "http://127.0.0.1:4566"


@pytest.fixture
def write_template(tmp_path: Path):
    """Return a factory that writes a template from YAML text and returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "template.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def test_load_template_short_tags_become_long_forms(write_template):
    path = write_template(
        """
        Resources:
          A:
            Type: AWS::SQS::Queue
            Properties:
              One: !Ref Thing
              Two: !GetAtt Queue.Arn
              Three: !GetAtt [Queue, QueueName]
              Four: !Sub "${AWS::Region}-x"
              Five: !Sub ["${Name}-y", {Name: !Ref Thing}]
              Six: !Join [",", [a, !Ref Thing]]
              Seven: !If [IsProd, a, b]
        """
    )

    template = load_template(path)

    assert template["Resources"]["A"]["Properties"] == {
        "One": {"Ref": "Thing"},
        "Two": {"Fn::GetAtt": ["Queue", "Arn"]},
        "Three": {"Fn::GetAtt": ["Queue", "QueueName"]},
        "Four": {"Fn::Sub": "${AWS::Region}-x"},
        "Five": {"Fn::Sub": ["${Name}-y", {"Name": {"Ref": "Thing"}}]},
        "Six": {"Fn::Join": [",", ["a", {"Ref": "Thing"}]]},
        "Seven": {"Fn::If": ["IsProd", "a", "b"]},
    }


def test_resolve_stack_intrinsics_and_globals_resolve(write_template):
    path = write_template(
        """
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          Size:
            Type: Number
            Default: 4
            MinValue: 1
          Level:
            Type: String
            Default: INFO
        Globals:
          Function:
            Runtime: python3.12
            Timeout: 30
            Layers: [!Ref Shared]
            Environment:
              Variables:
                LEVEL: !Ref Level
                QUEUE: !Ref Jobs
        Resources:
          Shared:
            Type: AWS::Serverless::LayerVersion
            Properties:
              ContentUri: layer/
          Jobs:
            Type: AWS::SQS::Queue
            Properties:
              MaximumMessageSize: !Ref Size
          Worker:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Timeout: 5
              Layers: [extra]
              Environment:
                Variables:
                  LEVEL: DEBUG
                  QUEUE_ARN: !GetAtt Jobs.Arn
                  LABEL: !Sub "${AWS::StackName}/${Jobs.QueueName}/${Size}/${!Literal}"
                  LIST: !Join ["|", [!Ref AWS::Region, !Ref AWS::AccountId, !Ref AWS::Partition]]
                  PAIR: !Sub ["${First}-${Level}", {First: !Ref Size}]
        Outputs:
          WorkerArn:
            Value: !GetAtt Worker.Arn
        """
    )

    stack = resolve_stack(path, {"Size": "8"}, stack_name="demo", endpoint=ENDPOINT)

    queue = "demo-Jobs-FGW7RKVIXPXO"
    assert stack.parameters == {"Size": "8", "Level": "INFO"}
    assert stack.resources["Jobs"].identity == {
        "Ref": f"{ENDPOINT}/123456789012/{queue}",
        "Arn": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
        "QueueName": queue,
        "QueueUrl": f"{ENDPOINT}/123456789012/{queue}",
    }
    assert stack.resources["Jobs"].properties == {"MaximumMessageSize": "8"}
    assert stack.resources["Worker"].properties == {
        "Runtime": "python3.12",
        "Timeout": 5,
        "Layers": ["arn:aws:lambda:us-east-1:123456789012:layer:Shared:1", "extra"],
        "Environment": {
            "Variables": {
                "LEVEL": "DEBUG",
                "QUEUE": f"{ENDPOINT}/123456789012/{queue}",
                "QUEUE_ARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                "LABEL": f"demo/{queue}/8/${{Literal}}",
                "LIST": "us-east-1|123456789012|aws",
                "PAIR": "8-INFO",
            }
        },
        "CodeUri": "src/",
        "Handler": "app.handler",
    }
    assert stack.outputs == {
        "WorkerArn": "arn:aws:lambda:us-east-1:123456789012:function:demo-Worker-G7SRUUCWU2TZ"
    }


def test_resolve_stack_bucket_name_is_lowercase(write_template):
    path = write_template(
        """
        Resources:
          BatchBucket:
            Type: AWS::S3::Bucket
        """
    )

    stack = resolve_stack(path, stack_name="Demo-Stack")

    assert stack.resources["BatchBucket"].physical_id == "demo-stack-batchbucket-j5aksyonxsfc"


def test_resolve_stack_unsupported_resource_type_raises(write_template):
    path = write_template(
        """
        Resources:
          Topic:
            Type: AWS::SNS::Topic
        """
    )

    with pytest.raises(TemplateUnsupportedError) as error:
        resolve_stack(path)

    assert str(error.value) == (
        "Resource Topic has type AWS::SNS::Topic, which the local AWS does not support. "
        "Supported types: AWS::CloudWatch::Alarm, AWS::DynamoDB::Table, AWS::Logs::LogGroup, "
        "AWS::S3::Bucket, AWS::S3::BucketPolicy, AWS::SQS::Queue, AWS::Serverless::Function, "
        "AWS::Serverless::LayerVersion, AWS::Serverless::StateMachine."
    )


def test_resolve_stack_unsupported_property_raises(write_template):
    path = write_template(
        """
        Resources:
          Jobs:
            Type: AWS::SQS::Queue
            Properties:
              VisibilityTimeout: 30
              RedriveOnMars: true
        """
    )

    with pytest.raises(TemplateUnsupportedError) as error:
        resolve_stack(path)

    assert str(error.value) == (
        "Resource Jobs (AWS::SQS::Queue) has property RedriveOnMars, which the local AWS does "
        "not support. Supported properties: ContentBasedDeduplication, DeduplicationScope, "
        "DelaySeconds, FifoQueue, FifoThroughputLimit, KmsDataKeyReusePeriodSeconds, "
        "KmsMasterKeyId, MaximumMessageSize, MessageRetentionPeriod, QueueName, "
        "ReceiveMessageWaitTimeSeconds, RedriveAllowPolicy, RedrivePolicy, "
        "SqsManagedSseEnabled, Tags, VisibilityTimeout."
    )


def test_resolve_stack_fn_if_raises_unsupported(write_template):
    path = write_template(
        """
        Resources:
          Jobs:
            Type: AWS::SQS::Queue
            Properties:
              DelaySeconds: !If [IsProd, 0, 5]
        """
    )

    with pytest.raises(TemplateUnsupportedError) as error:
        resolve_stack(path)

    assert str(error.value) == (
        "Resources.Jobs.Properties.DelaySeconds uses Fn::If, which the local AWS does not "
        "support. Supported intrinsic functions: Ref, Fn::GetAtt, Fn::Sub, Fn::Join."
    )


def test_resolve_stack_function_event_raises_unsupported(write_template):
    path = write_template(
        """
        Resources:
          Worker:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.12
              Events:
                Nightly:
                  Type: Schedule
        """
    )

    with pytest.raises(TemplateUnsupportedError) as error:
        resolve_stack(path)

    assert str(error.value).startswith(
        "Resource Worker (AWS::Serverless::Function) has property Events, which the local AWS "
        "does not support."
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"Size": "0"},
            "Parameter Size: value 0 is less than MinValue 1.",
            id="below-min",
        ),
        pytest.param(
            {"Size": "many"},
            "Parameter Size: value 'many' is not a number.",
            id="not-a-number",
        ),
        pytest.param(
            {"Level": "TRACE"},
            "Parameter Level: value 'TRACE' is not one of AllowedValues DEBUG, INFO.",
            id="not-allowed",
        ),
        pytest.param(
            {"Colour": "blue"},
            "Parameter overrides name undeclared parameters: Colour. "
            "Declared parameters: Level, Size.",
            id="undeclared",
        ),
    ],
)
def test_resolve_stack_bad_parameter_value_raises(write_template, overrides, message):
    path = write_template(
        """
        Parameters:
          Size:
            Type: Number
            Default: 4
            MinValue: 1
          Level:
            Type: String
            Default: INFO
            AllowedValues: [DEBUG, INFO]
        Resources:
          Jobs:
            Type: AWS::SQS::Queue
        """
    )

    with pytest.raises(ParameterValueError) as error:
        resolve_stack(path, overrides)

    assert str(error.value) == message


def test_resolve_stack_unknown_ref_raises(write_template):
    path = write_template(
        """
        Resources:
          Jobs:
            Type: AWS::SQS::Queue
            Properties:
              QueueName: !Ref Nowhere
        """
    )

    with pytest.raises(TemplateError) as error:
        resolve_stack(path)

    assert str(error.value) == (
        "Resources.Jobs.Properties.QueueName: Ref Nowhere names no parameter or resource."
    )


def test_resolve_stack_project_template_names():
    stack = resolve_stack(PROJECT_TEMPLATE, endpoint=ENDPOINT)

    assert {lid: res.physical_id for lid, res in stack.resources.items()} == {
        "BatchBucket": "nightly-ingest-batchbucket-zwpordseecvo",
        "BatchBucketPolicy": "nightly-ingest-BatchBucketPolicy-RJZGAODRJA6D",
        "IngestTable": "nightly-ingest-IngestTable-X5VAUUJW7TI7",
        "LedgerTable": "nightly-ingest-LedgerTable-SX4WLMNWT3OJ",
        "DeadLetterQueue": (f"{ENDPOINT}/123456789012/nightly-ingest-DeadLetterQueue-MGI7BO4GM7KP"),
        "DeadLetterAlarm": "nightly-ingest-DeadLetterAlarm-KSUEDH5NANN2",
        "CommonLayer": "arn:aws:lambda:us-east-1:123456789012:layer:CommonLayer:1",
        "PlanFunction": "nightly-ingest-PlanFunction-NPS46MRWPG6D",
        "ParseFunction": "nightly-ingest-ParseFunction-TMJSLE2ITY3G",
        "WriteFunction": "nightly-ingest-WriteFunction-SBPRLROVRG7Q",
        "ReconcileFunction": "nightly-ingest-ReconcileFunction-LNDSBGP5FP6O",
        "StateMachineLogGroup": "nightly-ingest-StateMachineLogGroup-UNYDSQFMSBCW",
        "IngestStateMachine": (
            "arn:aws:states:us-east-1:123456789012:stateMachine:nightly-ingest-ingest"
        ),
    }
    assert stack.outputs == {
        "BatchBucketName": "nightly-ingest-batchbucket-zwpordseecvo",
        "IngestTableName": "nightly-ingest-IngestTable-X5VAUUJW7TI7",
        "LedgerTableName": "nightly-ingest-LedgerTable-SX4WLMNWT3OJ",
        "DeadLetterQueueUrl": (
            f"{ENDPOINT}/123456789012/nightly-ingest-DeadLetterQueue-MGI7BO4GM7KP"
        ),
        "StateMachineArn": (
            "arn:aws:states:us-east-1:123456789012:stateMachine:nightly-ingest-ingest"
        ),
    }


def test_resolve_stack_override_reaches_functions():
    stack = resolve_stack(PROJECT_TEMPLATE, {"MaxConcurrency": "2", "SliceSize": "100"})

    write = stack.resources["WriteFunction"].properties
    substitutions = stack.resources["IngestStateMachine"].properties["DefinitionSubstitutions"]
    assert write["ReservedConcurrentExecutions"] == "2"
    assert substitutions["MaxConcurrency"] == "2"
    assert substitutions["SliceSize"] == "100"
