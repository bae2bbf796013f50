"""Runs where a slice fails, the dead-letter queue or the ledger fails, or the run fails.

Each test injects its faults into the local AWS, so each skips on another endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nightly_ingest.local import LocalAWS
from nightly_ingest.local.template import resolve_stack

from .harness import (
    RECONCILE_FAILED_PATH,
    SUCCEEDED_PATH,
    ChildExecutionArn,
    DeadLetterMessage,
    Engine,
    JsonText,
    TextMatching,
    lambda_error,
    outcome,
    valid_batch,
)

TRUNCATED_MESSAGE = b'{"specversion":"1.0","id":'
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
# How long Parse of the changed slice waits before reading. The other slices must finish, and
# the test must overwrite the batch object, within it, or the test fails with a message.
PARSE_DELAY_SECONDS = 5.0
POLL_INTERVAL_SECONDS = 0.05


def _wait_until(condition: Callable[[], bool], timeout: float, description: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{description} did not happen within {timeout:g} s")
        time.sleep(POLL_INTERVAL_SECONDS)


@pytest.mark.parametrize(
    ("state", "function"),
    [
        pytest.param("Parse", "ParseFunction", id="parse"),
        pytest.param("Write", "WriteFunction", id="write"),
    ],
)
def test_function_crash_dead_letters_slice(
    engine: Engine, faults: LocalAWS, state: str, function: str
) -> None:
    # GIVEN three slices, and the function of one state crashing on the middle slice
    batch = valid_batch(2 * engine.slice_size + 1)
    slices = batch.expected_slices(engine.slice_size)
    name = engine.new_run_name()
    message = "Injected crash of slice 1"
    fault_id = faults.add_fault(
        "lambda",
        "Invoke",
        "crash",
        resource=faults.resources[function],
        match_body={"run": name, "slice": {"index": 1}},
        error_type="RuntimeError",
        error_message=message,
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN the Catch sends a pointer to the slice to the dead-letter queue
    assert engine.dead_letters(run.name) == [
        DeadLetterMessage(
            body={
                "kind": "slice",
                "error": "RuntimeError",
                "cause": lambda_error("RuntimeError", message, stack_trace=[]),
                "state": state,
                "execution": ChildExecutionArn(run.arn),
                "run": run.name,
                "batch": run.batch,
                "slice": slices[1],
            },
            attributes={"error_type": "RuntimeError", "kind": "slice"},
        )
    ]
    # AND the ledger counts its messages as dead-lettered, so the run succeeds and reconciles
    size = engine.slice_size
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == {
        0: outcome(read=size, written=size),
        1: outcome(read=size, dead_lettered=size, failed_state=state),
        2: outcome(read=1, written=1),
    }
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output == {
        "run": run.name,
        "batch": run.batch,
        "slices": 3,
        "read": 2 * size + 1,
        "written": size + 1,
        "dead_lettered": size,
        "duplicates": 0,
    }
    # AND only the other slices reached the table
    written_lines = batch.lines_of(slices[0]) + batch.lines_of(slices[2])
    assert engine.table_items(batch.source) == batch.expected_items(written_lines)
    assert faults.fault(fault_id)["fired"] == 1
    assert engine.map_run(run)["itemCounts"]["succeeded"] == 3


def test_batch_changed_before_parse_dead_letters_slice(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN three slices, and Parse of the middle slice waiting before it reads its byte range
    batch = valid_batch(2 * engine.slice_size + 1)
    slices = batch.expected_slices(engine.slice_size)
    name = engine.new_run_name()
    delay = faults.add_fault(
        "lambda",
        "Invoke",
        "delay",
        resource=faults.resources["ParseFunction"],
        match_body={"run": name, "slice": {"index": 1}},
        seconds=PARSE_DELAY_SECONDS,
    )

    # WHEN the batch lands, and the object is overwritten with other bytes at the same key after
    # the other slices are recorded but while Parse of the middle slice waits
    with ThreadPoolExecutor(max_workers=1) as executor:
        running = executor.submit(engine.run, batch, name)
        started = time.monotonic()
        _wait_until(
            lambda: faults.fault(delay)["fired"] == 1 and sorted(engine.ledger(name)) == [0, 2],
            PARSE_DELAY_SECONDS,
            "Parse of slice 1 starting to wait and slices 0 and 2 being recorded",
        )
        replacement = valid_batch(2 * engine.slice_size + 1).body
        new_etag = engine.s3.put_object(
            Bucket=engine.bucket, Key=engine.batch_key(name), Body=replacement
        )["ETag"]
        overwritten_after = time.monotonic() - started
        run = running.result()

    # THEN Parse's read with IfMatch on Plan's ETag fails, and the Catch dead-letters the slice
    assert overwritten_after < PARSE_DELAY_SECONDS
    assert new_etag != run.etag
    first, last = slices[1]["start_byte"], slices[1]["end_byte"]
    message = (
        f"s3://{run.bucket}/{run.key} bytes={first}-{last}: the object no longer has ETag "
        f"{run.etag}, so the slice's byte range is stale; start a new run for the new object"
    )
    assert engine.dead_letters(run.name) == [
        DeadLetterMessage(
            body={
                "kind": "slice",
                "error": "BatchChangedError",
                "cause": lambda_error("BatchChangedError", message),
                "state": "Parse",
                "execution": ChildExecutionArn(run.arn),
                "run": run.name,
                "batch": run.batch,
                "slice": slices[1],
            },
            attributes={"error_type": "BatchChangedError", "kind": "slice"},
        )
    ]
    # AND the ledger counts the slice's messages as dead-lettered, so the run still reconciles
    size = engine.slice_size
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == {
        0: outcome(read=size, written=size),
        1: outcome(read=size, dead_lettered=size, failed_state="Parse"),
        2: outcome(read=1, written=1),
    }
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output == {
        "run": run.name,
        "batch": run.batch,
        "slices": 3,
        "read": 2 * size + 1,
        "written": size + 1,
        "dead_lettered": size,
        "duplicates": 0,
    }
    # AND only the other slices, read before the change, reached the table
    written_lines = batch.lines_of(slices[0]) + batch.lines_of(slices[2])
    assert engine.table_items(batch.source) == batch.expected_items(written_lines)
    assert faults.fault(delay)["fired"] == 1
    assert engine.map_run(run)["itemCounts"]["succeeded"] == 3


def test_write_timeout_dead_letters_slice(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN three slices, and Write timing out on the middle slice as Lambda reports it
    batch = valid_batch(2 * engine.slice_size + 1)
    slices = batch.expected_slices(engine.slice_size)
    name = engine.new_run_name()
    write_timeout = resolve_stack(TEMPLATE).resources["WriteFunction"].properties["Timeout"]
    timeout = faults.add_fault(
        "lambda",
        "Invoke",
        "timeout",
        resource=faults.resources["WriteFunction"],
        match_body={"run": name, "slice": {"index": 1}},
        times=None,
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN Write's Retry does not match Sandbox.Timedout, so the Catch dead-letters the slice
    # after one attempt
    assert faults.fault(timeout)["fired"] == 1
    assert engine.dead_letters(run.name) == [
        DeadLetterMessage(
            body={
                "kind": "slice",
                "error": "Sandbox.Timedout",
                "cause": JsonText(
                    {
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": TextMatching(
                            rf"RequestId: [0-9a-f-]{{36}} Error: Task timed out after "
                            rf"{float(write_timeout):.2f} seconds"
                        ),
                    }
                ),
                "state": "Write",
                "execution": ChildExecutionArn(run.arn),
                "run": run.name,
                "batch": run.batch,
                "slice": slices[1],
            },
            attributes={"error_type": "Sandbox.Timedout", "kind": "slice"},
        )
    ]
    # AND the ledger counts its messages as dead-lettered, so the run succeeds and reconciles
    size = engine.slice_size
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == {
        0: outcome(read=size, written=size),
        1: outcome(read=size, dead_lettered=size, failed_state="Write"),
        2: outcome(read=1, written=1),
    }
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output["written"] == size + 1
    assert run.output["dead_lettered"] == size
    # AND only the other slices reached the table
    written_lines = batch.lines_of(slices[0]) + batch.lines_of(slices[2])
    assert engine.table_items(batch.source) == batch.expected_items(written_lines)
    assert engine.map_run(run)["itemCounts"]["succeeded"] == 3


def test_dead_letter_queue_rejecting_fails_run(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN a malformed message in the middle slice, and a queue that rejects every send
    batch = valid_batch(2 * engine.slice_size + 1)
    bad_line = engine.slice_size + 2
    batch.lines[bad_line - 1] = TRUNCATED_MESSAGE
    slices = batch.expected_slices(engine.slice_size)
    rejections = {
        action: faults.add_fault(
            "sqs",
            action,
            "error",
            resource=engine.queue_name,
            times=None,
            status=403,
            error_code="AccessDenied",
            error_message="Access to the resource is denied.",
        )
        for action in ("SendMessageBatch", "SendMessage")
    }

    # WHEN the batch lands
    run = engine.run(batch)

    # THEN Parse cannot dead-letter the message, and the Catch cannot dead-letter the slice
    # even after DeadLetterSlice's three retries, so that child fails
    assert faults.fault(rejections["SendMessageBatch"])["fired"] == 1
    assert faults.fault(rejections["SendMessage"])["fired"] == 4
    item_counts = engine.map_run(run)["itemCounts"]
    assert item_counts["failed"] == 1
    assert item_counts["succeeded"] == 2
    # AND the failed slice has no ledger record, so Reconcile fails the run
    size = engine.slice_size
    assert sorted(engine.ledger(run.name)) == [0, 2]
    assert run.status == "FAILED"
    assert run.path() == RECONCILE_FAILED_PATH
    assert run.error == "ReconciliationError"
    assert run.cause == lambda_error(
        "ReconciliationError",
        f"run {run.name} does not add up: no outcome for 1 of 3 slices: 1; "
        f"read {size + 1} messages but the plan counted {2 * size + 1}",
    )
    assert run.task_events("Reconcile") == [
        "TaskScheduled",
        "TaskStarted",
        "TaskFailed ReconciliationError",
    ]
    # AND nothing reached the queue, and the failed slice's messages are not in the table
    assert engine.dead_letters(run.name) == []
    written_lines = batch.lines_of(slices[0]) + batch.lines_of(slices[2])
    assert engine.table_items(batch.source) == batch.expected_items(written_lines)


def test_dead_letter_slice_retried_then_sent(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN Parse crashing on the middle slice, and the queue failing twice
    batch = valid_batch(2 * engine.slice_size + 1)
    slices = batch.expected_slices(engine.slice_size)
    name = engine.new_run_name()
    crash = faults.add_fault(
        "lambda",
        "Invoke",
        "crash",
        resource=faults.resources["ParseFunction"],
        match_body={"run": name, "slice": {"index": 1}},
        error_type="RuntimeError",
    )
    outage = faults.add_fault(
        "sqs",
        "SendMessage",
        "error",
        resource=engine.queue_name,
        times=2,
        status=500,
        error_code="InternalError",
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN DeadLetterSlice's Retry sends the slice on the third attempt
    assert faults.fault(outage)["fired"] == 2
    assert engine.dead_letters(run.name) == [
        DeadLetterMessage(
            body={
                "kind": "slice",
                "error": "RuntimeError",
                "cause": lambda_error(
                    "RuntimeError", f"Injected by local AWS fault rule {crash}.", stack_trace=[]
                ),
                "state": "Parse",
                "execution": ChildExecutionArn(run.arn),
                "run": run.name,
                "batch": run.batch,
                "slice": slices[1],
            },
            attributes={"error_type": "RuntimeError", "kind": "slice"},
        )
    ]
    size = engine.slice_size
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == {
        0: outcome(read=size, written=size),
        1: outcome(read=size, dead_lettered=size, failed_state="Parse"),
        2: outcome(read=1, written=1),
    }
    written_lines = batch.lines_of(slices[0]) + batch.lines_of(slices[2])
    assert engine.table_items(batch.source) == batch.expected_items(written_lines)
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH


def test_ledger_throttled_then_recorded(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN the ledger throttling the first outcome of the run's middle slice
    batch = valid_batch(2 * engine.slice_size + 1)
    name = engine.new_run_name()
    throttle = faults.add_fault(
        "dynamodb",
        "PutItem",
        "error",
        resource=engine.ledger_table,
        match_body={"Item": {"run": {"S": name}, "slice": {"N": "1"}}},
        status=400,
        error_code="ProvisionedThroughputExceededException",
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN RecordOutcome's Retry stores the outcome and the run succeeds
    assert faults.fault(throttle)["fired"] == 1
    assert faults.fault(throttle)["matched"] == 2
    size = engine.slice_size
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == {
        0: outcome(read=size, written=size),
        1: outcome(read=size, written=size),
        2: outcome(read=1, written=1),
    }
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output["written"] == 2 * size + 1
    assert engine.table_items(batch.source) == batch.expected_items(list(range(1, 2 * size + 2)))
    assert engine.dead_letters(run.name) == []


def test_ledger_rejecting_outcome_fails_run(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN the ledger rejecting the outcome of the run's middle slice
    batch = valid_batch(2 * engine.slice_size + 1)
    name = engine.new_run_name()
    rejection = faults.add_fault(
        "dynamodb",
        "PutItem",
        "error",
        resource=engine.ledger_table,
        match_body={"Item": {"run": {"S": name}, "slice": {"N": "1"}}},
        status=400,
        error_code="ValidationException",
        error_message="One or more parameter values were invalid.",
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN RecordFailed fails that child without a retry, and Reconcile fails the run
    assert faults.fault(rejection)["fired"] == 1
    assert faults.fault(rejection)["matched"] == 1
    assert engine.map_run(run)["itemCounts"]["failed"] == 1
    size = engine.slice_size
    assert sorted(engine.ledger(run.name)) == [0, 2]
    assert run.status == "FAILED"
    assert run.path() == RECONCILE_FAILED_PATH
    assert run.error == "ReconciliationError"
    assert run.cause == lambda_error(
        "ReconciliationError",
        f"run {run.name} does not add up: no outcome for 1 of 3 slices: 1; "
        f"read {size + 1} messages but the plan counted {2 * size + 1}",
    )
    # AND the slice's messages are in the table, written but not accounted for
    assert engine.table_items(batch.source) == batch.expected_items(list(range(1, 2 * size + 2)))
    assert engine.dead_letters(run.name) == []


def test_lost_ledger_record_fails_reconciliation(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN the ledger losing the outcome of the run's last slice while reporting success
    batch = valid_batch(2 * engine.slice_size + 1)
    name = engine.new_run_name()
    loss = faults.add_fault(
        "dynamodb",
        "PutItem",
        "drop",
        resource=engine.ledger_table,
        match_body={"Item": {"run": {"S": name}, "slice": {"N": "2"}}},
    )

    # WHEN the batch lands
    run = engine.run(batch, name)

    # THEN every child succeeds, but Reconcile fails the run and names the difference
    assert faults.fault(loss)["fired"] == 1
    assert engine.map_run(run)["itemCounts"]["succeeded"] == 3
    size = engine.slice_size
    assert run.status == "FAILED"
    assert run.path() == RECONCILE_FAILED_PATH
    assert run.error == "ReconciliationError"
    assert run.cause == lambda_error(
        "ReconciliationError",
        f"run {run.name} does not add up: no outcome for 1 of 3 slices: 2; "
        f"read {2 * size} messages but the plan counted {2 * size + 1}",
    )
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == {
        0: outcome(read=size, written=size),
        1: outcome(read=size, written=size),
    }
    # AND the last slice's message is in the table, written but not accounted for
    assert engine.table_items(batch.source) == batch.expected_items(list(range(1, 2 * size + 2)))
    assert engine.dead_letters(run.name) == []


def test_plan_crash_fails_run_before_reading(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN Plan crashing with an error that its Retry does not match
    batch = valid_batch(engine.slice_size)
    message = "slice_size must be a positive integer, got 0"
    crash = faults.add_fault(
        "lambda",
        "Invoke",
        "crash",
        resource=faults.resources["PlanFunction"],
        error_type="ValueError",
        error_message=message,
    )

    # WHEN the batch lands
    run = engine.run(batch)

    # THEN PlanFailed ends the run with Plan's error, and nothing is read or dead-lettered
    assert faults.fault(crash)["fired"] == 1
    assert run.status == "FAILED"
    assert run.path() == [
        "Configure entered",
        "Configure exited",
        "Plan entered",
        "Plan exited",
        "PlanFailed entered",
        "ExecutionFailed",
    ]
    assert run.task_events("Plan") == ["TaskScheduled", "TaskStarted", "TaskFailed ValueError"]
    assert run.error == "ValueError"
    assert run.cause == lambda_error("ValueError", message, stack_trace=[])
    assert engine.ledger(run.name) == {}
    assert engine.table_items(batch.source) == {}
    assert engine.dead_letters(run.name) == []
