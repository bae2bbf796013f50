"""Tests of the Reconcile state: functions/reconcile/app.py."""

import json

import pytest
from botocore.stub import Stubber

from ingest_common.errors import ReconciliationError, TransientError


@pytest.fixture
def reconcile(load_handler):
    return load_handler("reconcile")


@pytest.fixture
def record_outcome(aws, names):
    """Store a slice's outcome in the ledger as the RecordOutcome state does."""

    def record(index, read, written, dead_lettered, duplicates, failed_state=None,
               run=None, outcome=None):  # fmt: skip
        if outcome is None:
            outcome = json.dumps(
                {
                    "read": read,
                    "written": written,
                    "dead_lettered": dead_lettered,
                    "duplicates": duplicates,
                    "failed_state": failed_state,
                },
                separators=(",", ":"),
            )
        aws.dynamodb.put_item(
            TableName=names.ledger,
            Item={
                "run": {"S": run or names.run},
                "slice": {"N": str(index)},
                "outcome": {"S": outcome},
                "execution": {"S": f"{names.execution}-{index}"},
            },
        )

    return record


@pytest.fixture
def reconcile_event(names):
    batch = {"bucket": names.bucket, "key": names.batch_key, "size": 1234, "etag": '"abc"'}
    return lambda slices, messages: {
        "run": names.run,
        "batch": batch,
        "slices": slices,
        "messages": messages,
    }


def test_reconcile_complete_ledger_returns_totals(names, reconcile, reconcile_event,
                                                  record_outcome, context):  # fmt: skip
    # GIVEN three slices, one dead-lettered as a whole, and a record of another run
    record_outcome(0, read=500, written=490, dead_lettered=7, duplicates=3)
    record_outcome(1, read=500, written=0, dead_lettered=500, duplicates=0, failed_state="Parse")
    record_outcome(2, read=120, written=120, dead_lettered=0, duplicates=0)
    record_outcome(3, read=9, written=9, dead_lettered=0, duplicates=0, run="another-run")
    event = reconcile_event(slices=3, messages=1120)

    # WHEN Reconcile runs
    output = reconcile.handler(event, context)

    # THEN it returns the sums of this run only
    assert output == {
        "run": names.run,
        "batch": event["batch"],
        "slices": 3,
        "read": 1120,
        "written": 610,
        "dead_lettered": 507,
        "duplicates": 3,
    }


def test_reconcile_empty_batch_succeeds(reconcile, reconcile_event, context):
    output = reconcile.handler(reconcile_event(slices=0, messages=0), context)

    assert output["read"] == output["written"] == output["dead_lettered"] == 0


@pytest.mark.parametrize(
    ("outcomes", "slices", "messages", "difference"),
    [
        pytest.param(
            [(0, 5, 5, 0, 0), (2, 5, 5, 0, 0)], 3, 15,
            "no outcome for 1 of 3 slices: 1; read 10 messages but the plan counted 15",
            id="missing-slice",
        ),
        pytest.param(
            [(0, 5, 5, 0, 0), (1, 4, 4, 0, 0)], 2, 10,
            "read 9 messages but the plan counted 10",
            id="read-differs-from-plan",
        ),
        pytest.param(
            [(0, 5, 3, 1, 0), (1, 5, 5, 0, 0)], 2, 10,
            "read 10 messages but written 8 + dead-lettered 1 + duplicates 0 = 9",
            id="read-differs-from-outcomes",
        ),
        pytest.param(
            [(0, 5, 5, 0, 0), (1, 5, 5, 0, 0), (2, 1, 1, 0, 0)], 2, 10,
            "outcomes for slices that the plan does not have (0 to 1): 2; read 11 messages but "
            "the plan counted 10",
            id="unexpected-slice",
        ),
        pytest.param(
            [], 25, 100,
            "no outcome for 25 of 25 slices: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, "
            "15, 16, 17, 18, 19 and 5 more; read 0 messages but the plan counted 100",
            id="no-outcomes",
        ),
    ],
)  # fmt: skip
def test_reconcile_mismatch_raises_with_difference(names, reconcile, reconcile_event,
                                                   record_outcome, context, outcomes, slices,
                                                   messages, difference):  # fmt: skip
    for outcome in outcomes:
        record_outcome(*outcome)

    with pytest.raises(ReconciliationError) as raised:
        reconcile.handler(reconcile_event(slices, messages), context)

    assert str(raised.value) == f"run {names.run} does not add up: {difference}"


@pytest.mark.parametrize(
    ("outcome", "difference"),
    [
        pytest.param(
            "{not json",
            "slice 1: outcome is not a valid outcome record (JSONDecodeError('Expecting "
            "property name enclosed in double quotes: line 1 column 2 (char 1)'))",
            id="not-json",
        ),
        pytest.param(
            '{"read":5,"written":5,"dead_lettered":0}',
            "slice 1: outcome is not a valid outcome record (KeyError('duplicates'))",
            id="missing-count",
        ),
        pytest.param(
            '{"read":5,"written":"5","dead_lettered":-1,"duplicates":0}',
            "slice 1: outcome has counts that are not non-negative integers: written='5', "
            "dead_lettered=-1",
            id="invalid-counts",
        ),
    ],
)
def test_reconcile_invalid_outcome_raises(names, reconcile, reconcile_event, record_outcome,
                                          context, outcome, difference):  # fmt: skip
    record_outcome(0, read=5, written=5, dead_lettered=0, duplicates=0)
    record_outcome(1, None, None, None, None, outcome=outcome)

    with pytest.raises(ReconciliationError) as raised:
        reconcile.handler(reconcile_event(slices=2, messages=5), context)

    assert str(raised.value) == f"run {names.run} does not add up: {difference}"


def test_reconcile_throttled_query_raises_transient(names, reconcile, reconcile_event, context):
    with Stubber(reconcile.dynamodb) as stubber:
        stubber.add_client_error(
            "query",
            service_error_code="ThrottlingException",
            service_message="Rate of requests exceeds the allowed throughput.",
            http_status_code=400,
        )
        with pytest.raises(TransientError) as raised:
            reconcile.handler(reconcile_event(slices=1, messages=1), context)

    assert str(raised.value) == (
        f"Query on table {names.ledger} failed and may succeed on retry: An error occurred "
        "(ThrottlingException) when calling the Query operation: Rate of requests exceeds the "
        "allowed throughput."
    )
