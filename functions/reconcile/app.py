"""Reconcile state: check that the run's ledger accounts for every message of the batch."""

import json
import os
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest_common.clients import create_client, raise_transient
from ingest_common.contract import ReconcileInput, ReconcileOutput
from ingest_common.errors import ReconciliationError

LEDGER_TABLE_NAME = os.environ["LEDGER_TABLE_NAME"]
# Maximum number of slice indexes named in an error message. The rest are only counted.
MAX_INDEXES_SHOWN = 20
COUNTS = ("read", "written", "dead_lettered", "duplicates")

dynamodb = create_client("dynamodb")

logger = Logger(utc=True)
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
@metrics.log_metrics
def handler(event: ReconcileInput, context: LambdaContext) -> ReconcileOutput:
    run, slices, messages = event["run"], event["slices"], event["messages"]

    ledger = _read_ledger(run)
    differences = find_differences(ledger, slices, messages)

    _report(ledger, differences)
    if differences:
        raise ReconciliationError(f"run {run} does not add up: " + "; ".join(differences))
    totals = ledger.totals
    return {
        "run": run,
        "batch": event["batch"],
        "slices": slices,
        "read": totals["read"],
        "written": totals["written"],
        "dead_lettered": totals["dead_lettered"],
        "duplicates": totals["duplicates"],
    }


@dataclass
class Ledger:
    """Sums of the outcomes recorded for a run, and what could not be summed."""

    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    slices: set[int] = field(default_factory=set)
    failed_slices: dict[str, int] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)


def find_differences(ledger: Ledger, slices: int, messages: int) -> list[str]:
    """List each way in which `ledger` fails to account for the plan's slices and messages."""
    differences = list(ledger.invalid)
    missing = sorted(set(range(slices)) - ledger.slices)
    if missing:
        differences.append(f"no outcome for {len(missing)} of {slices} slices: {_indexes(missing)}")
    unexpected = sorted(index for index in ledger.slices if not 0 <= index < slices)
    if unexpected:
        differences.append(
            f"outcomes for slices that the plan does not have (0 to {slices - 1}): "
            f"{_indexes(unexpected)}"
        )
    totals = ledger.totals
    if totals["read"] != messages:
        differences.append(f"read {totals['read']} messages but the plan counted {messages}")
    accounted = totals["written"] + totals["dead_lettered"] + totals["duplicates"]
    if totals["read"] != accounted:
        differences.append(
            f"read {totals['read']} messages but written {totals['written']} + dead-lettered "
            f"{totals['dead_lettered']} + duplicates {totals['duplicates']} = {accounted}"
        )
    return differences


def _read_ledger(run: str) -> Ledger:
    ledger = Ledger()
    paginator = dynamodb.get_paginator("query")
    pages = paginator.paginate(
        TableName=LEDGER_TABLE_NAME,
        KeyConditionExpression="#run = :run",
        ExpressionAttributeNames={"#run": "run"},
        ExpressionAttributeValues={":run": {"S": run}},
        ConsistentRead=True,
    )
    with raise_transient(f"Query on table {LEDGER_TABLE_NAME}"):
        for page in pages:
            for item in page["Items"]:
                _add_outcome(ledger, item)
    return ledger


def _add_outcome(ledger: Ledger, item: dict[str, Any]) -> None:
    index = int(item["slice"]["N"])
    ledger.slices.add(index)
    try:
        outcome = json.loads(item["outcome"]["S"])
        counts = {name: outcome[name] for name in COUNTS}
    except (KeyError, TypeError, ValueError) as error:
        ledger.invalid.append(f"slice {index}: outcome is not a valid outcome record ({error!r})")
        return
    bad = [name for name, value in counts.items() if type(value) is not int or value < 0]
    if bad:
        ledger.invalid.append(
            f"slice {index}: outcome has counts that are not non-negative integers: "
            + ", ".join(f"{name}={counts[name]!r}" for name in bad)
        )
        return
    for name, value in counts.items():
        ledger.totals[name] += value
    failed_state = outcome.get("failed_state")
    if failed_state:
        ledger.failed_slices[failed_state] = ledger.failed_slices.get(failed_state, 0) + 1


def _indexes(indexes: list[int]) -> str:
    listed = ", ".join(map(str, indexes[:MAX_INDEXES_SHOWN]))
    more = len(indexes) - MAX_INDEXES_SHOWN
    return f"{listed} and {more} more" if more > 0 else listed


def _report(ledger: Ledger, differences: list[str]) -> None:
    totals = ledger.totals
    metrics.add_metric(name="MessagesRead", unit=MetricUnit.Count, value=totals["read"])
    metrics.add_metric(name="MessagesWritten", unit=MetricUnit.Count, value=totals["written"])
    metrics.add_metric(
        name="MessagesDeadLettered", unit=MetricUnit.Count, value=totals["dead_lettered"]
    )
    metrics.add_metric(name="DuplicateMessages", unit=MetricUnit.Count, value=totals["duplicates"])
    metrics.add_metric(
        name="ReconciliationFailures", unit=MetricUnit.Count, value=1 if differences else 0
    )
    details = {
        **totals,
        "slices_recorded": len(ledger.slices),
        "failed_slices": ledger.failed_slices,
    }
    if differences:
        logger.warning("Run does not add up", extra={**details, "differences": differences})
    else:
        logger.info("Run reconciled", extra=details)
