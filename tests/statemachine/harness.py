"""Drive the ingest state machine through the Step Functions API and read what it left behind.

``Engine`` is one Step Functions endpoint with the stack it runs: the embedded local AWS, or
another endpoint named by INGEST_SFN_ENDPOINT (see docs/testing.md). A test builds a batch,
calls ``Engine.run`` and then reads the table, the ledger and the dead-letter queue.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from nightly_ingest.events import object_created_event
from nightly_ingest.local import LocalAWS, unique_execution_name, wait_for_execution

INCOMING_PREFIX = "incoming/"
WAIT_TIMEOUT_SECONDS = 120.0
# The parent's history does not grow while the Map runs, so the stall timeout covers the
# longest Map phase of a test, retries included.
STALL_TIMEOUT_SECONDS = 60.0
POLL_INTERVAL_SECONDS = 0.1
MAX_QUEUE_RECEIVES = 200
# Events of the parent's history that the path keeps besides the states entered and exited.
PATH_EVENTS = frozenset(
    {
        "MapRunStarted",
        "MapRunSucceeded",
        "MapRunFailed",
        "MapRunAborted",
        "ExecutionSucceeded",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "ExecutionAborted",
    }
)
_CONFIGURED_NUMBER = re.compile(r"^States\.StringToJson\('(?P<value>\d+)'\)$")


@dataclass
class Engine:
    """A Step Functions endpoint, the clients of the stack's resources and the stack's names.

    ``local`` is the LocalAWS behind the endpoint when it is ours, which is what fault
    injection and the Lambda counters need, and None for any other endpoint.
    """

    stepfunctions: Any
    s3: Any
    dynamodb: Any
    sqs: Any
    state_machine_arn: str
    bucket: str
    table: str
    ledger_table: str
    queue_url: str
    local: LocalAWS | None = None
    slice_size: int = field(init=False)
    max_concurrency: int = field(init=False)

    def __post_init__(self) -> None:
        definition = json.loads(
            self.stepfunctions.describe_state_machine(stateMachineArn=self.state_machine_arn)[
                "definition"
            ]
        )
        configure = definition["States"]["Configure"]["Parameters"]
        self.slice_size = _configured_number(configure["slice_size.$"])
        self.max_concurrency = _configured_number(configure["max_concurrency.$"])

    @property
    def region(self) -> str:
        return self.state_machine_arn.split(":")[3]

    @property
    def account(self) -> str:
        return self.state_machine_arn.split(":")[4]

    @property
    def queue_name(self) -> str:
        return self.queue_url.rstrip("/").rsplit("/", 1)[1]

    def require_local(self, need: str) -> LocalAWS:
        """Return the local AWS, or skip the test when the endpoint is not one of ours."""
        if self.local is None:
            pytest.skip(
                f"{need} needs the embedded local AWS or `ingest serve`, and INGEST_SFN_ENDPOINT "
                "names another Step Functions endpoint"
            )
        return self.local

    def new_run_name(self) -> str:
        """Return a unique execution name, chosen before the run so that faults can match it."""
        return unique_execution_name("statemachine")

    def batch_key(self, name: str) -> str:
        """Return the key that ``run`` uploads the batch of run ``name`` to."""
        return f"{INCOMING_PREFIX}{name}.jsonl"

    def run(self, batch: Batch, name: str | None = None) -> Run:
        """Upload the batch, start the state machine as EventBridge would and wait for the end."""
        name = name or self.new_run_name()
        key = self.batch_key(name)
        body = batch.body
        etag = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)["ETag"]
        event = object_created_event(
            bucket=self.bucket,
            key=key,
            size=len(body),
            etag=etag,
            region=self.region,
            account=self.account,
        )

        arn = self.stepfunctions.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(event)
        )["executionArn"]
        description = wait_for_execution(
            self.stepfunctions,
            arn,
            timeout=WAIT_TIMEOUT_SECONDS,
            stall_timeout=STALL_TIMEOUT_SECONDS,
            poll_interval=POLL_INTERVAL_SECONDS,
            progress=self.local.lambda_progress if self.local else None,
        )
        events = _history(self.stepfunctions, arn)
        return Run(
            name=name,
            arn=arn,
            key=key,
            etag=etag,
            size=len(body),
            bucket=self.bucket,
            description=description,
            events=events,
        )

    def table_items(self, source: str) -> dict[str, dict[str, Any]]:
        """Return the table's items with partition key ``source``, by id, as plain values."""
        items: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#source = :source",
            "ExpressionAttributeNames": {"#source": "source"},
            "ExpressionAttributeValues": {":source": {"S": source}},
            "ConsistentRead": True,
        }
        for page in self.dynamodb.get_paginator("query").paginate(**request):
            for raw in page["Items"]:
                item = _plain(raw)
                items[item["id"]] = item
        return items

    def ledger(self, run: str) -> dict[int, dict[str, Any]]:
        """Return the run's ledger records by slice index, each outcome parsed from its JSON."""
        records: dict[int, dict[str, Any]] = {}
        request: dict[str, Any] = {
            "TableName": self.ledger_table,
            "KeyConditionExpression": "#run = :run",
            "ExpressionAttributeNames": {"#run": "run"},
            "ExpressionAttributeValues": {":run": {"S": run}},
            "ConsistentRead": True,
        }
        for page in self.dynamodb.get_paginator("query").paginate(**request):
            for raw in page["Items"]:
                record = _plain(raw)
                records[int(record["slice"])] = {
                    "outcome": json.loads(record["outcome"]),
                    "execution": record["execution"],
                }
        return records

    def dead_letters(self, run: str) -> list[DeadLetterMessage]:
        """Receive and delete every message in the queue, and return those of ``run`` in order.

        Each test reads the queue after its run ends, so messages of earlier runs that are
        still there are deleted too.
        """
        found = []
        for _ in range(MAX_QUEUE_RECEIVES):
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                body = json.loads(message["Body"])
                attributes = {
                    name: value["StringValue"]
                    for name, value in message.get("MessageAttributes", {}).items()
                }
                if body.get("run") == run:
                    found.append(DeadLetterMessage(body, attributes))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        else:
            raise AssertionError(
                f"dead-letter queue did not drain in {MAX_QUEUE_RECEIVES} receives"
            )
        return sorted(found, key=lambda letter: (letter.body["kind"], _sort_key(letter.body)))

    def manifest(self, run: Run) -> list[dict[str, Any]]:
        """Return the slice list that Plan stored for the run."""
        key = f"runs/{run.name}/slices.json"
        manifest: list[dict[str, Any]] = json.loads(
            self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        )
        return manifest

    def map_run(self, run: Run) -> dict[str, Any]:
        """Return DescribeMapRun of the run's only Map Run."""
        map_runs = self.stepfunctions.list_map_runs(executionArn=run.arn)["mapRuns"]
        assert len(map_runs) == 1, map_runs
        description: dict[str, Any] = self.stepfunctions.describe_map_run(
            mapRunArn=map_runs[0]["mapRunArn"]
        )
        return description


@dataclass
class Run:
    """One execution of the state machine, read after it ended."""

    name: str
    arn: str
    key: str
    etag: str
    size: int
    bucket: str
    description: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def status(self) -> str:
        return str(self.description["status"])

    @property
    def output(self) -> Any:
        return json.loads(self.description.get("output") or "null")

    @property
    def error(self) -> str | None:
        return self.description.get("error")

    @property
    def cause(self) -> str | None:
        return self.description.get("cause")

    @property
    def batch(self) -> dict[str, Any]:
        """The batch object as Plan reports it, with the ETag in quotes as S3 returns it."""
        return {"bucket": self.bucket, "key": self.key, "size": self.size, "etag": self.etag}

    def path(self) -> list[str]:
        """Return the states entered and exited, Map Run events and the end, in event order.

        A Distributed Map's children have histories of their own, so their states are not in
        this path.
        """
        path = []
        for event in self.events:
            details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
            if details is not None:
                verb = "entered" if event["type"].endswith("Entered") else "exited"
                path.append(f"{details['name']} {verb}")
            elif event["type"] in PATH_EVENTS:
                path.append(event["type"])
        return path

    def task_events(self, state: str) -> list[str]:
        """Return the task events of the parent's ``state``, with the error of failed ones."""
        current = None
        found = []
        for event in self.events:
            entered = event.get("stateEnteredEventDetails")
            if entered is not None:
                current = entered["name"]
                continue
            kind = event["type"]
            if current != state or not kind.startswith("Task") or kind.startswith("TaskState"):
                continue
            failed = event.get("taskFailedEventDetails")
            found.append(f"{kind} {failed['error']}" if failed else kind)
        return found


@dataclass(frozen=True)
class DeadLetterMessage:
    """A dead-letter message: its JSON body and its message attributes as text."""

    body: dict[str, Any]
    attributes: dict[str, str]


class ChildExecutionArn:
    """Equal to the ``$$.Execution.Id`` of a Map child of ``parent_arn``.

    moto 5.2.5 gives the children the parent's ARN. On AWS a child has its own ARN, so any ARN
    that starts with ``<parent's prefix>:<machine>/<label>:`` compares equal too.
    NOTE: that shape of a child's ARN on AWS is assumed, not checked against AWS.
    """

    def __init__(self, parent_arn: str, label: str = "Slice") -> None:
        self.parent_arn = parent_arn
        prefix, machine, _ = parent_arn.rsplit(":", 2)
        self.child_prefix = f"{prefix}:{machine}/{label}:"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and (
            other == self.parent_arn or other.startswith(self.child_prefix)
        )

    def __hash__(self) -> int:
        return hash(self.parent_arn)

    def __repr__(self) -> str:
        return f"ChildExecutionArn({self.parent_arn!r} or {self.child_prefix}...)"


class AnyUuid:
    """Equal to any text that is a UUID, such as a Lambda request id."""

    def __eq__(self, other: object) -> bool:
        try:
            return isinstance(other, str) and str(uuid.UUID(other)) == other
        except ValueError:
            return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "AnyUuid()"


class JsonText:
    """Equal to text whose JSON value equals ``expected``, such as the cause of a Lambda error."""

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        try:
            return bool(json.loads(other) == self.expected)
        except ValueError:
            return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"JsonText({self.expected!r})"


def lambda_error(error_type: str, message: str, stack_trace: Any = None) -> JsonText:
    """Return the cause that Step Functions reports for a function error: Lambda's payload.

    ``stack_trace`` defaults to any list, because a real one names files of this machine.
    """
    return JsonText(
        {
            "errorType": error_type,
            "errorMessage": message,
            "requestId": AnyUuid(),
            "stackTrace": AnyList() if stack_trace is None else stack_trace,
        }
    )


class TextMatching:
    """Equal to text that matches the regular expression ``pattern`` whole."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.pattern.fullmatch(other) is not None

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"TextMatching({self.pattern.pattern!r})"


class AnyList:
    """Equal to any list."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, list)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "AnyList()"


@dataclass
class Batch:
    """The lines of a batch object, each without its line ending, and their CloudEvents source."""

    source: str
    lines: list[bytes]

    @property
    def body(self) -> bytes:
        return b"".join(line + b"\n" for line in self.lines)

    def expected_slices(self, slice_size: int) -> list[dict[str, Any]]:
        """Cut the batch into slices as docs/design.md specifies, independently of Plan.

        A slice ends just before the line that would be its (slice_size + 1)-th message, and
        the last slice runs to the end of the object. Byte ranges are inclusive.
        """
        slices: list[dict[str, Any]] = []
        offset = 0
        for number, line in enumerate(self.lines, start=1):
            start, offset = offset, offset + len(line) + 1
            if not line.strip():
                if slices:
                    slices[-1].update(last_line=number, end_byte=offset - 1)
                continue
            if not slices or slices[-1]["messages"] == slice_size:
                slices.append(
                    {
                        "index": len(slices),
                        "first_line": number,
                        "start_byte": start,
                        "messages": 0,
                    }
                )
            slices[-1].update(last_line=number, end_byte=offset - 1)
            slices[-1]["messages"] += 1
        keys = ("index", "first_line", "last_line", "start_byte", "end_byte", "messages")
        return [{key: piece[key] for key in keys} for piece in slices]

    def lines_of(self, piece: dict[str, Any]) -> list[int]:
        """Return the line numbers of a slice's messages."""
        return [
            number
            for number in range(piece["first_line"], piece["last_line"] + 1)
            if self.lines[number - 1].strip()
        ]

    def expected_items(self, lines: list[int]) -> dict[str, dict[str, Any]]:
        """Return the table items that the given lines become, by id, with exact numbers."""
        items = {}
        for number in lines:
            event = json.loads(self.lines[number - 1], parse_float=Decimal, parse_int=Decimal)
            items[event["id"]] = event
        return items


def new_source() -> str:
    """Return a CloudEvents source that no other test uses, so that table reads are per test."""
    return f"urn:nightly-ingest-test:{uuid.uuid4().hex[:12]}"


def order_placed(source: str, number: int) -> bytes:
    """Return one valid com.example.order.placed message as a compact JSON line."""
    event = {
        "specversion": "1.0",
        "id": f"order-{number:04d}",
        "source": source,
        "type": "com.example.order.placed",
        "time": "2026-12-03T01:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "order_id": f"ord_{number:08d}",
            "customer": {"customer_id": "cus_00000042", "email": "buyer@example.com"},
            "lines": [{"sku": "SKU-100", "quantity": 2, "unit_price": 9.95}],
            "currency": "EUR",
            "total": 19.9,
            "placed_at": "2026-12-03T00:59:00Z",
        },
    }
    return json.dumps(event, separators=(",", ":")).encode("utf-8")


def valid_batch(messages: int) -> Batch:
    """Return a batch of ``messages`` valid messages with a source of its own."""
    source = new_source()
    return Batch(source, [order_placed(source, number) for number in range(1, messages + 1)])


def _configured_number(expression: str) -> int:
    match = _CONFIGURED_NUMBER.match(expression)
    if match is None:
        raise AssertionError(f"Configure sets {expression!r}, not States.StringToJson('<n>')")
    return int(match["value"])


def _history(stepfunctions: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in stepfunctions.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return sorted(events, key=lambda event: event["id"])


def _plain(raw: dict[str, Any]) -> dict[str, Any]:
    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in raw.items()}


def _sort_key(body: dict[str, Any]) -> int:
    if body["kind"] == "slice":
        return int(body["slice"]["index"])
    return int(body["line"])


# The parent's path up to Reconcile, which every run that gets past Plan takes.
PATH_TO_RECONCILE = [
    "Configure entered",
    "Configure exited",
    "Plan entered",
    "Plan exited",
    "ProcessSlices entered",
    "MapRunStarted",
    "MapRunSucceeded",
    "ProcessSlices exited",
    "Reconcile entered",
    "Reconcile exited",
]
SUCCEEDED_PATH = [*PATH_TO_RECONCILE, "ExecutionSucceeded"]
RECONCILE_FAILED_PATH = [*PATH_TO_RECONCILE, "ReconcileFailed entered", "ExecutionFailed"]


def outcome(
    read: int,
    written: int = 0,
    dead_lettered: int = 0,
    duplicates: int = 0,
    failed_state: str | None = None,
) -> dict[str, Any]:
    """Return a slice's outcome as RecordOutcome stores it in the ledger."""
    return {
        "read": read,
        "written": written,
        "dead_lettered": dead_lettered,
        "duplicates": duplicates,
        "failed_state": failed_state,
    }
