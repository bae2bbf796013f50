"""Static checks of the definition against the contracts, beyond those of tests/test_template.py.

tests/test_template.py checks the substitutions, that every Task has a Retry and a Catch, the
constructs the local engine runs and the dropped Map output. These check the graph, the error
handling and the payloads that the states pass each other.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ingest_common import contract, errors
from nightly_ingest.events import object_created_event
from nightly_ingest.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = json.loads((ROOT / "statemachine" / "ingest.asl.json").read_text())
STATES = DEFINITION["States"]
MAP_STATE = STATES["ProcessSlices"]
PROCESSOR = MAP_STATE["ItemProcessor"]
CHILD_STATES = PROCESSOR["States"]
# Transient errors of the Lambda service, which AWS's Step Functions guide (Handle Lambda
# service exceptions) advises retrying, and the functions' own retryable error.
LAMBDA_RETRIED_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
    "TransientError",
}
# Prefixes of the error names that Step Functions and its integrations report.
SERVICE_ERROR_PREFIXES = ("States.", "Lambda.", "SQS.", "DynamoDB.")
_TOP_LEVEL_PATH = re.compile(r"(?<![$\w])\$\.(\w+)")
_RESULT_FIELDS = frozenset({"ResultSelector", "OutputPath", "ItemProcessor"})


TEMPLATE = load_template(ROOT / "template.yaml")


def _scopes() -> list[tuple[str, dict[str, Any]]]:
    return [("top level", DEFINITION), ("ItemProcessor", PROCESSOR)]


def _transitions(state: dict[str, Any]) -> list[str]:
    targets = [state["Next"]] if "Next" in state else []
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def _payload_keys(state: dict[str, Any]) -> set[str]:
    return {key.removesuffix(".$") for key in state["Parameters"]["Payload"]}


def _selected_keys(state: dict[str, Any]) -> set[str]:
    return {key.removesuffix(".$") for key in state["ResultSelector"]}


def _lambda_tasks() -> dict[str, dict[str, Any]]:
    return {
        name: state
        for name, state in {**STATES, **CHILD_STATES}.items()
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    }


def _input_paths_read(states: dict[str, Any]) -> set[str]:
    """Return the top-level fields of their input that the states read with JSONPath.

    ResultSelector and OutputPath read the task's result instead, so they are left out.
    """
    read_input = {
        name: {key: value for key, value in state.items() if key not in _RESULT_FIELDS}
        for name, state in states.items()
    }
    return set(_TOP_LEVEL_PATH.findall(json.dumps(read_input)))


@pytest.mark.parametrize(("scope", "machine"), _scopes())
def test_definition_transitions_reach_existing_states(scope: str, machine: dict[str, Any]) -> None:
    states = machine["States"]
    reachable = set()
    pending = [machine["StartAt"]]
    while pending:
        name = pending.pop()
        assert name in states, f"{scope}: a transition names {name}, which does not exist"
        if name in reachable:
            continue
        reachable.add(name)
        pending.extend(_transitions(states[name]))

    assert reachable == set(states), f"{scope}: unreachable {sorted(set(states) - reachable)}"
    for name, state in states.items():
        terminal = state["Type"] in ("Fail", "Succeed")
        ends = ("Next" in state) + bool(state.get("End"))
        assert ends == (0 if terminal else 1), f"{scope}: {name} needs exactly one of Next and End"


def test_definition_fail_states_reached_only_by_catch() -> None:
    states = {**STATES, **CHILD_STATES}
    fail_states = {name for name, state in states.items() if state["Type"] == "Fail"}
    plain_targets = {state["Next"] for state in states.values() if "Next" in state}
    caught_targets = {
        catcher["Next"] for state in states.values() for catcher in state.get("Catch", [])
    }

    # A Fail state reads the error that a Catch put at $.error, so no other path may reach it.
    assert fail_states <= caught_targets
    assert not fail_states & plain_targets
    for name in sorted(fail_states):
        assert states[name]["ErrorPath"] == "$.error.Error", name
        assert states[name]["CausePath"] == "$.error.Cause", name


def test_definition_catchers_write_error_field() -> None:
    for name, state in {**STATES, **CHILD_STATES}.items():
        for catcher in state.get("Catch", []):
            assert catcher["ResultPath"] == "$.error", name


def test_definition_catch_all_last() -> None:
    for name, state in {**STATES, **CHILD_STATES}.items():
        catchers = state.get("Catch", [])
        for position, catcher in enumerate(catchers):
            if "States.ALL" in catcher["ErrorEquals"]:
                # ASL requires States.ALL alone, in the last catcher.
                assert catcher["ErrorEquals"] == ["States.ALL"], name
                assert position == len(catchers) - 1, name


def test_definition_lambda_tasks_retry_lambda_service_errors() -> None:
    for name, state in _lambda_tasks().items():
        retried = {error for retrier in state["Retry"] for error in retrier["ErrorEquals"]}

        assert retried >= LAMBDA_RETRIED_ERRORS, name


def test_definition_retries_only_transient_errors() -> None:
    for name, state in {**STATES, **CHILD_STATES}.items():
        for retrier in state.get("Retry", []):
            for error in retrier["ErrorEquals"]:
                # Retrying any other error repeats its dead letters or cannot succeed.
                assert not error.startswith("States."), f"{name} retries {error}"
                if not error.startswith(SERVICE_ERROR_PREFIXES):
                    assert error == "TransientError", f"{name} retries {error}"
            assert retrier["JitterStrategy"] == "FULL", name
            assert retrier["IntervalSeconds"] >= 1, name


def test_definition_error_names_are_project_errors() -> None:
    names = {
        error
        for state in {**STATES, **CHILD_STATES}.values()
        for handler in state.get("Retry", []) + state.get("Catch", [])
        for error in handler["ErrorEquals"]
        if not error.startswith(SERVICE_ERROR_PREFIXES)
    }

    for name in names:
        error_class = getattr(errors, name, None)
        assert isinstance(error_class, type), f"{name} is not in ingest_common.errors"
        assert issubclass(error_class, errors.IngestError), name


@pytest.mark.parametrize(
    ("state", "input_type"),
    [
        pytest.param("Plan", contract.PlanInput, id="plan"),
        pytest.param("Parse", contract.ParseInput, id="parse"),
        pytest.param("Write", contract.WriteInput, id="write"),
        pytest.param("Reconcile", contract.ReconcileInput, id="reconcile"),
    ],
)
def test_definition_payload_matches_input_contract(state: str, input_type: type) -> None:
    assert _payload_keys(_lambda_tasks()[state]) == set(input_type.__annotations__)


@pytest.mark.parametrize(
    ("state", "output_type"),
    [
        pytest.param("Plan", contract.PlanOutput, id="plan"),
        pytest.param("Parse", contract.ParseOutput, id="parse"),
    ],
)
def test_definition_result_selector_matches_output_contract(state: str, output_type: type) -> None:
    selector = _lambda_tasks()[state]["ResultSelector"]

    assert _selected_keys(_lambda_tasks()[state]) == set(output_type.__annotations__)
    for key in output_type.__annotations__:
        assert selector[f"{key}.$"] == f"$.Payload.{key}", key


def test_definition_slice_outcome_has_one_shape() -> None:
    # Write's outcome and a dead-lettered slice's outcome go to the same ledger attribute.
    written = CHILD_STATES["Write"]["ResultSelector"]
    dead_lettered = CHILD_STATES["SliceDeadLettered"]["Parameters"]
    outcome_keys = set(contract.Outcome.__annotations__)

    assert {key.removesuffix(".$") for key in written} == outcome_keys
    assert {key.removesuffix(".$") for key in dead_lettered} == outcome_keys
    assert written["failed_state"] is None
    assert dead_lettered["failed_state.$"] == "$.failed_state"
    assert CHILD_STATES["Write"]["ResultPath"] == "$.outcome"
    assert CHILD_STATES["SliceDeadLettered"]["ResultPath"] == "$.outcome"


def test_definition_failed_state_names_the_catching_state() -> None:
    for name in ("Parse", "Write"):
        (catcher,) = CHILD_STATES[name]["Catch"]
        marker = CHILD_STATES[catcher["Next"]]

        assert marker["Type"] == "Pass"
        assert marker["Result"] == name
        assert marker["ResultPath"] == "$.failed_state"
        assert marker["Next"] == "DeadLetterSlice"


def test_definition_dead_letter_slice_body_matches_design() -> None:
    parameters = CHILD_STATES["DeadLetterSlice"]["Parameters"]

    assert parameters["QueueUrl"] == "${DeadLetterQueueUrl}"
    assert parameters["MessageBody"] == {
        "kind": "slice",
        "error.$": "$.error.Error",
        "cause.$": "$.error.Cause",
        "state.$": "$.failed_state",
        "execution.$": "$$.Execution.Id",
        "run.$": "$.run",
        "batch.$": "$.batch",
        "slice.$": "$.slice",
    }
    assert parameters["MessageAttributes"] == {
        "error_type": {"DataType": "String", "StringValue.$": "$.error.Error"},
        "kind": {"DataType": "String", "StringValue": "slice"},
    }
    assert CHILD_STATES["DeadLetterSlice"]["ResultPath"] is None


def test_definition_record_outcome_item_fits_ledger_key_schema() -> None:
    item = CHILD_STATES["RecordOutcome"]["Parameters"]["Item"]
    ledger = TEMPLATE["Resources"]["LedgerTable"]["Properties"]
    attribute_types = {
        attribute["AttributeName"]: attribute["AttributeType"]
        for attribute in ledger["AttributeDefinitions"]
    }

    assert CHILD_STATES["RecordOutcome"]["Parameters"]["TableName"] == "${LedgerTableName}"
    assert set(item) == {"run", "slice", "outcome", "execution"}
    for key in ledger["KeySchema"]:
        name = key["AttributeName"]
        (item_type,) = (type_key.removesuffix(".$") for type_key in item[name])
        assert item_type == attribute_types[name], name
    assert item["outcome"] == {"S.$": "States.JsonToString($.outcome)"}


def test_definition_children_read_known_fields() -> None:
    selected = {key.removesuffix(".$") for key in MAP_STATE["ItemSelector"]}
    written = _fields_written(CHILD_STATES)

    assert selected == {"run", "batch", "slice"}
    assert _input_paths_read(CHILD_STATES) <= selected | written


def test_definition_parent_reads_known_fields() -> None:
    event = object_created_event(
        bucket="b", key="incoming/k", size=1, etag="e", region="us-east-1", account="1"
    )
    written = _fields_written(STATES)

    assert _input_paths_read(STATES) <= set(event) | written
    assert event["detail"]["bucket"]["name"] == "b"
    assert event["detail"]["object"]["key"] == "incoming/k"


def test_template_bounds_slice_functions_by_max_concurrency() -> None:
    resources = TEMPLATE["Resources"]
    configure = STATES["Configure"]["Parameters"]

    # With reserved concurrency equal to the Map's bound, a Map that started more slices
    # would be throttled instead of overloading the table.
    assert configure["max_concurrency.$"] == "States.StringToJson('${MaxConcurrency}')"
    assert MAP_STATE["ToleratedFailureCount"] == 0
    for function in ("ParseFunction", "WriteFunction"):
        properties = resources[function]["Properties"]
        assert properties["ReservedConcurrentExecutions"] == {"Ref": "MaxConcurrency"}, function


def _fields_written(states: dict[str, dict[str, Any]]) -> set[str]:
    """Return the top-level input fields that the states' ResultPaths and Catchers write."""
    results = {
        state["ResultPath"].removeprefix("$.")
        for state in states.values()
        if state.get("ResultPath")
    }
    caught = {
        catcher["ResultPath"].removeprefix("$.")
        for state in states.values()
        for catcher in state.get("Catch", [])
    }
    return results | caught
