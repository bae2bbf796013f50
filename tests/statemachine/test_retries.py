"""Transient failures that a Retry of the definition, or the Write function itself, recovers.

The definition's Retry waits IntervalSeconds 1 with BackoffRate 2 and full jitter, so each
retried state costs up to a few real seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nightly_ingest.local import LocalAWS

from .harness import (
    RECONCILE_FAILED_PATH,
    SUCCEEDED_PATH,
    ChildExecutionArn,
    DeadLetterMessage,
    Engine,
    TextMatching,
    outcome,
    valid_batch,
)

# Write sends each BatchWriteItem request at most this many times: its default
# WRITE_MAX_ATTEMPTS, which the template does not set.
WRITE_MAX_ATTEMPTS = 8
# botocore's standard retry mode, as the functions configure it, sends a request at most
# this many times before the function raises TransientError.
BOTOCORE_MAX_ATTEMPTS = 4
# Attempts of a Lambda task whose Retry has MaxAttempts 4: the first and four retries.
LAMBDA_TASK_ATTEMPTS = 5
DEFINITION = json.loads(
    (Path(__file__).resolve().parents[2] / "statemachine" / "ingest.asl.json").read_text()
)


def _max_retries(state: str, error: str) -> int:
    """Return the MaxAttempts of the top-level state's Retry that matches ``error``.

    MaxAttempts counts retries after the first attempt, and defaults to 3 in the States
    Language.
    """
    for retrier in DEFINITION["States"][state]["Retry"]:
        if error in retrier["ErrorEquals"]:
            return int(retrier.get("MaxAttempts", 3))
    raise AssertionError(f"no Retry of {state} matches {error}")


def _complete_ledger(engine: Engine) -> dict[int, dict[str, object]]:
    """Return the outcomes of a three-slice batch of valid messages that was written whole."""
    size = engine.slice_size
    return {
        0: outcome(read=size, written=size),
        1: outcome(read=size, written=size),
        2: outcome(read=1, written=1),
    }


@pytest.mark.parametrize(
    ("state", "function", "status", "error_code"),
    [
        pytest.param("Write", "WriteFunction", 500, "ServiceException", id="write-500"),
        pytest.param("Write", "WriteFunction", 429, "TooManyRequestsException", id="write-429"),
        pytest.param("Parse", "ParseFunction", 500, "ServiceException", id="parse-500"),
        pytest.param("Plan", "PlanFunction", 429, "TooManyRequestsException", id="plan-429"),
        pytest.param("Reconcile", "ReconcileFunction", 500, "ServiceException", id="reconcile"),
    ],
)
def test_lambda_service_error_retried(
    engine: Engine, faults: LocalAWS, state: str, function: str, status: int, error_code: str
) -> None:
    # GIVEN the Lambda service failing once to invoke the function of one state
    batch = valid_batch(2 * engine.slice_size + 1)
    name = engine.new_run_name()
    in_child = state in ("Parse", "Write")
    match_body = {"run": name, "slice": {"index": 1}} if in_child else {"run": name}
    fault_id = faults.add_fault(
        "lambda",
        "Invoke",
        "error",
        resource=faults.resources[function],
        match_body=match_body,
        status=status,
        error_code=error_code,
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN the state's Retry invokes the function again and the run succeeds as if nothing
    # happened
    fault = faults.fault(fault_id)
    assert fault["fired"] == 1
    assert fault["matched"] == 2
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output["written"] == len(batch.lines)
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == (
        _complete_ledger(engine)
    )
    assert engine.table_items(batch.source) == batch.expected_items(
        list(range(1, len(batch.lines) + 1))
    )
    assert engine.dead_letters(run.name) == []
    if not in_child:
        # A Map child's events are not in the parent's history, but these states' are.
        assert run.task_events(state) == [
            "TaskScheduled",
            "TaskStarted",
            f"TaskFailed Lambda.{error_code}",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
        ]


def test_reconcile_retries_exhausted_fails_run(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN the Lambda service failing every invocation of Reconcile for the run
    batch = valid_batch(2 * engine.slice_size + 1)
    name = engine.new_run_name()
    retries = _max_retries("Reconcile", "Lambda.ServiceException")
    fault_id = faults.add_fault(
        "lambda",
        "Invoke",
        "error",
        resource=faults.resources["ReconcileFunction"],
        match_body={"run": name},
        times=None,
        status=500,
        error_code="ServiceException",
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN Reconcile's Retry runs out, and its Catch fails the run with the service's error
    fault = faults.fault(fault_id)
    assert fault["matched"] == 1 + retries
    assert fault["fired"] == 1 + retries
    assert run.status == "FAILED"
    assert run.path() == RECONCILE_FAILED_PATH
    assert run.error == "Lambda.ServiceException"
    assert run.cause == TextMatching(
        rf"Injected by local AWS fault rule {fault_id}\. \(Service: AWSLambda; Status Code: 500; "
        r"Error Code: ServiceException; Request ID: [0-9a-f-]{36}; Proxy: null\)"
    )
    failed_attempt = ["TaskScheduled", "TaskStarted", "TaskFailed Lambda.ServiceException"]
    assert run.task_events("Reconcile") == failed_attempt * (1 + retries)
    # AND every slice was written and recorded before Reconcile ran
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == (
        _complete_ledger(engine)
    )
    assert engine.table_items(batch.source) == batch.expected_items(
        list(range(1, len(batch.lines) + 1))
    )
    assert engine.dead_letters(run.name) == []


def test_lambda_client_execution_timeout_retried(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN Step Functions' call to Lambda timing out once on Plan
    batch = valid_batch(engine.slice_size)
    name = engine.new_run_name()
    faults.add_fault(
        "lambda",
        "Invoke",
        "error",
        resource=faults.resources["PlanFunction"],
        match_body={"run": name},
        status=500,
        error_code="ClientExecutionTimeoutException",
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN Plan's Retry invokes it again and the run succeeds
    assert run.task_events("Plan") == [
        "TaskScheduled",
        "TaskStarted",
        "TaskFailed Lambda.ClientExecutionTimeoutException",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
    ]
    assert run.status == "SUCCEEDED"


def test_lambda_throttling_past_retries_dead_letters_slice(
    engine: Engine, faults: LocalAWS
) -> None:
    # GIVEN the Lambda service throttling every invocation of Write for the middle slice
    batch = valid_batch(2 * engine.slice_size + 1)
    slices = batch.expected_slices(engine.slice_size)
    name = engine.new_run_name()
    message = "Rate Exceeded."
    fault_id = faults.add_fault(
        "lambda",
        "Invoke",
        "error",
        resource=faults.resources["WriteFunction"],
        match_body={"run": name, "slice": {"index": 1}},
        times=None,
        status=429,
        error_code="TooManyRequestsException",
        error_message=message,
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN Write's Retry gives up after its attempts and the Catch dead-letters the slice
    assert faults.fault(fault_id)["fired"] == LAMBDA_TASK_ATTEMPTS
    assert engine.dead_letters(run.name) == [
        DeadLetterMessage(
            body={
                "kind": "slice",
                "error": "Lambda.TooManyRequestsException",
                "cause": TextMatching(
                    rf"{message} \(Service: AWSLambda; Status Code: 429; Error Code: "
                    r"TooManyRequestsException; Request ID: [0-9a-f-]{36}; Proxy: null\)"
                ),
                "state": "Write",
                "execution": ChildExecutionArn(run.arn),
                "run": run.name,
                "batch": run.batch,
                "slice": slices[1],
            },
            attributes={"error_type": "Lambda.TooManyRequestsException", "kind": "slice"},
        )
    ]
    size = engine.slice_size
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == {
        0: outcome(read=size, written=size),
        1: outcome(read=size, dead_lettered=size, failed_state="Write"),
        2: outcome(read=1, written=1),
    }
    written_lines = batch.lines_of(slices[0]) + batch.lines_of(slices[2])
    assert engine.table_items(batch.source) == batch.expected_items(written_lines)
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output["dead_lettered"] == size


def test_dynamodb_throttling_past_botocore_retried_by_state(
    engine: Engine, faults: LocalAWS
) -> None:
    # GIVEN a one-slice batch and the table throttling as many writes as botocore retries
    batch = valid_batch(engine.slice_size)
    write_function = faults.resources["WriteFunction"]
    before = faults.lambda_stats()["functions"][write_function]
    throttle = faults.add_fault(
        "dynamodb",
        "BatchWriteItem",
        "error",
        resource=engine.table,
        times=BOTOCORE_MAX_ATTEMPTS,
        status=400,
        error_code="ProvisionedThroughputExceededException",
    )

    # WHEN the batch lands
    run = engine.run(batch)

    # THEN Write raises TransientError, its Retry runs it again, and the second run writes all
    fault = faults.fault(throttle)
    after = faults.lambda_stats()["functions"][write_function]
    assert fault["fired"] == BOTOCORE_MAX_ATTEMPTS
    assert fault["matched"] == BOTOCORE_MAX_ATTEMPTS + 1
    assert after["invocations"] - before["invocations"] == 2
    transient_errors = after["errors"].get("TransientError", 0)
    assert transient_errors - before["errors"].get("TransientError", 0) == 1
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert engine.table_items(batch.source) == batch.expected_items(
        list(range(1, len(batch.lines) + 1))
    )
    assert engine.ledger(run.name)[0]["outcome"] == outcome(
        read=engine.slice_size, written=engine.slice_size
    )
    assert engine.dead_letters(run.name) == []


def test_unprocessed_items_resent_by_write(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN the table leaving two items of each of the first three writes unprocessed
    batch = valid_batch(2 * engine.slice_size + 1)
    fault_id = faults.add_fault(
        "dynamodb", "BatchWriteItem", "unprocessed", resource=engine.table, items=2, times=3
    )

    # WHEN the batch lands
    run = engine.run(batch)

    # THEN Write resends them and every message is written once
    assert faults.fault(fault_id)["fired"] == 3
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert engine.table_items(batch.source) == batch.expected_items(
        list(range(1, len(batch.lines) + 1))
    )
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == (
        _complete_ledger(engine)
    )
    assert engine.dead_letters(run.name) == []


def test_unprocessed_items_past_attempts_dead_lettered(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN a one-slice batch and the table never processing the last item of a write
    batch = valid_batch(engine.slice_size)
    last_line = len(batch.lines)
    fault_id = faults.add_fault(
        "dynamodb",
        "BatchWriteItem",
        "unprocessed",
        resource=engine.table,
        items=1,
        times=None,
    )

    # WHEN the batch lands
    run = engine.run(batch)

    # THEN Write gives up on that item after its attempts and dead-letters it alone
    assert faults.fault(fault_id)["fired"] == WRITE_MAX_ATTEMPTS
    assert engine.dead_letters(run.name) == [
        DeadLetterMessage(
            body={
                "kind": "message",
                "message": batch.lines[last_line - 1].decode(),
                "error": "UnprocessedItemsError",
                "cause": f"BatchWriteItem left the item unprocessed after {WRITE_MAX_ATTEMPTS} "
                "attempts",
                "state": "Write",
                "execution": ChildExecutionArn(run.arn),
                "run": run.name,
                "batch": {"bucket": run.bucket, "key": run.key},
                "line": last_line,
            },
            attributes={"error_type": "UnprocessedItemsError", "kind": "message"},
        )
    ]
    size = engine.slice_size
    assert engine.ledger(run.name)[0]["outcome"] == outcome(
        read=size, written=size - 1, dead_lettered=1
    )
    assert engine.table_items(batch.source) == batch.expected_items(list(range(1, last_line)))
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output["dead_lettered"] == 1
