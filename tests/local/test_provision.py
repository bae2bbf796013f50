"""Tests for turning a resolved stack into state machine definitions and function configs."""

import json
import textwrap
from pathlib import Path

import pytest

from nightly_ingest.local import DEFAULT_CONCURRENCY_LIMIT, TemplateError
from nightly_ingest.local.provision import function_config, render_definition
from nightly_ingest.local.template import resolve_stack

from .conftest import PROJECT_TEMPLATE

ENDPOINT = "http://127.0.0.1:4566"
PROJECT_DIR = PROJECT_TEMPLATE.parent
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:nightly-ingest-{}"


def test_render_definition_substitutes_every_variable():
    stack = resolve_stack(PROJECT_TEMPLATE, endpoint=ENDPOINT)

    text = render_definition(stack, stack.resources["IngestStateMachine"])

    assert "${" not in text
    states = json.loads(text)["States"]
    child_states = states["ProcessSlices"]["ItemProcessor"]["States"]
    assert states["Configure"]["Parameters"] == {
        "max_concurrency.$": "States.StringToJson('4')",
        "slice_size.$": "States.StringToJson('500')",
    }
    assert states["Plan"]["Parameters"]["FunctionName"] == FUNCTION_ARN.format(
        "PlanFunction-NPS46MRWPG6D"
    )
    assert child_states["Parse"]["Parameters"]["FunctionName"] == FUNCTION_ARN.format(
        "ParseFunction-TMJSLE2ITY3G"
    )
    assert child_states["Write"]["Parameters"]["FunctionName"] == FUNCTION_ARN.format(
        "WriteFunction-SBPRLROVRG7Q"
    )
    assert states["Reconcile"]["Parameters"]["FunctionName"] == FUNCTION_ARN.format(
        "ReconcileFunction-LNDSBGP5FP6O"
    )
    assert child_states["DeadLetterSlice"]["Parameters"]["QueueUrl"] == (
        f"{ENDPOINT}/123456789012/nightly-ingest-DeadLetterQueue-MGI7BO4GM7KP"
    )
    assert child_states["RecordOutcome"]["Parameters"]["TableName"] == (
        "nightly-ingest-LedgerTable-SX4WLMNWT3OJ"
    )


@pytest.mark.parametrize(
    ("logical_id", "timeout", "concurrency", "extra_variables"),
    [
        pytest.param("PlanFunction", 300.0, DEFAULT_CONCURRENCY_LIMIT, {}, id="plan"),
        pytest.param("ParseFunction", 60.0, 4, {}, id="parse"),
        pytest.param(
            "WriteFunction",
            120.0,
            4,
            {"TABLE_NAME": "nightly-ingest-IngestTable-X5VAUUJW7TI7"},
            id="write",
        ),
        pytest.param(
            "ReconcileFunction",
            60.0,
            DEFAULT_CONCURRENCY_LIMIT,
            {"LEDGER_TABLE_NAME": "nightly-ingest-LedgerTable-SX4WLMNWT3OJ"},
            id="reconcile",
        ),
    ],
)
def test_function_config_project_functions_resolve(
    logical_id, timeout, concurrency, extra_variables
):
    stack = resolve_stack(PROJECT_TEMPLATE, endpoint=ENDPOINT)
    resource = stack.resources[logical_id]

    config = function_config(stack, resource)

    code_folder = logical_id.removesuffix("Function").lower()
    assert config.name == resource.physical_id
    assert config.handler == "app.handler"
    assert config.runtime == "python3.12"
    assert config.code_dir == PROJECT_DIR / "functions" / code_folder
    assert config.layer_dirs == [PROJECT_DIR / "functions" / "common"]
    assert config.timeout_seconds == timeout
    assert config.memory_size_mb == 512
    assert config.concurrency_limit == concurrency
    assert config.environment == {
        "POWERTOOLS_SERVICE_NAME": "nightly-ingest",
        "POWERTOOLS_METRICS_NAMESPACE": "NightlyIngest",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "BATCH_BUCKET": "nightly-ingest-batchbucket-zwpordseecvo",
        "DEAD_LETTER_QUEUE_URL": (
            f"{ENDPOINT}/123456789012/nightly-ingest-DeadLetterQueue-MGI7BO4GM7KP"
        ),
        "DEAD_LETTER_MAX_BYTES": "262144",
        **extra_variables,
    }


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_render_definition_undefined_substitution_raises(tmp_path):
    _write(tmp_path, "machine.asl.json", '{"StartAt": "${First}", "States": {}}')
    template = _write(
        tmp_path,
        "template.yaml",
        """
        Resources:
          Machine:
            Type: AWS::Serverless::StateMachine
            Properties:
              DefinitionUri: machine.asl.json
              DefinitionSubstitutions:
                Second: two
        """,
    )
    stack = resolve_stack(template)

    with pytest.raises(TemplateError) as error:
        render_definition(stack, stack.resources["Machine"])

    assert str(error.value) == (
        "DefinitionUri machine.asl.json of state machine Machine uses ${First}, which "
        "DefinitionSubstitutions does not define."
    )


def test_function_config_missing_code_dir_raises(tmp_path):
    template = _write(
        tmp_path,
        "template.yaml",
        """
        Resources:
          Worker:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: missing/
              Handler: app.handler
              Runtime: python3.12
        """,
    )
    stack = resolve_stack(template)

    with pytest.raises(TemplateError) as error:
        function_config(stack, stack.resources["Worker"])

    assert str(error.value) == (
        f"CodeUri missing/ of resource Worker is not a directory: {tmp_path / 'missing'}"
    )
