"""Run one nightly batch through the local AWS and account for every message."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nightly_ingest.errors import RunFailedError
from nightly_ingest.events import object_created_event
from nightly_ingest.local import ExecutionWaitError, unique_execution_name, wait_for_execution

logger = logging.getLogger(__name__)

INCOMING_PREFIX = "incoming/"
TERMINAL_STATUSES = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass
class Progress:
    """Counts seen so far in the run ledger."""

    slices_total: int | None = None
    slices_done: int = 0
    read: int = 0
    written: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        """Messages with an outcome per second since the execution started."""
        if self.elapsed_s <= 0:
            return 0.0
        return (self.written + self.dead_lettered + self.duplicates) / self.elapsed_s


@dataclass
class RunSummary:
    """Summary of one run, printed at the end of `ingest run` and as JSON with `--json`.

    `table_items` is the table's size after the run. `dlq_messages` and the Lambda counters
    count what this run added, which matters on a server that earlier runs used too. A slice
    that failed as a whole is one dead-letter message for all its messages.
    """

    status: str
    execution_arn: str
    run: str
    batch: str
    slices: int
    read: int
    written: int
    dead_lettered: int
    duplicates: int
    table_items: int
    dlq_messages: int
    duration_s: float
    messages_per_s: float
    environments_started: int
    invocations: int
    clients_created: int
    connections_opened: int
    reconciled: bool
    error: str | None = None
    cause: str | None = None
    problems: list[str] = field(default_factory=list)
    log_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunOptions:
    """Polling and time limits of one local run."""

    poll_interval_s: float = 0.5
    stall_timeout_s: float = 120.0
    timeout_s: float = 3600.0


def run_batch(
    local: Any,
    batch_path: Path,
    options: RunOptions,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunSummary:
    """Upload `batch_path`, start the state machine as EventBridge would, and wait for the end.

    `local` is a started `nightly_ingest.local.LocalAWS`. Raises `RunFailedError` when the
    execution stalls or outlives `options.timeout_s`.
    """
    resources = local.resources
    bucket = resources["BatchBucket"]
    state_machine_arn = resources["IngestStateMachine"]
    s3 = local.client("s3")
    sfn = local.client("stepfunctions")

    run = unique_execution_name("nightly")
    # One folder a run, so that two runs of files with the same name do not overwrite each
    # other's batch while it is being read.
    key = f"{INCOMING_PREFIX}{run}/{batch_path.name}"
    s3.upload_file(str(batch_path), bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    event = object_created_event(
        bucket=bucket,
        key=key,
        size=head["ContentLength"],
        etag=head["ETag"],
        region=local.region,
        account=local.account_id,
    )

    baseline = _Counts.read(local)
    started = time.monotonic()
    execution_arn = sfn.start_execution(
        stateMachineArn=state_machine_arn, name=run, input=json.dumps(event)
    )["executionArn"]
    logger.info("started execution %s for s3://%s/%s", execution_arn, bucket, key)

    watcher = _LedgerWatcher(local, run, bucket)
    description = _wait_for_end(local, sfn, execution_arn, watcher, options, started, on_progress)
    duration = time.monotonic() - started

    progress = watcher.poll(duration)
    if on_progress:
        on_progress(progress)
    return _summarize(local, description, run, f"s3://{bucket}/{key}", progress, duration, baseline)


@dataclass
class _Counts:
    """Counters of the local AWS that grow over runs, read before and after one run.

    A server that `ingest serve` keeps running has served earlier runs, so a run reports the
    difference.
    """

    table_items: int
    dlq_messages: int
    lambda_totals: dict[str, int]

    @classmethod
    def read(cls, local: Any) -> _Counts:
        return cls(
            table_items=_count_items(local.client("dynamodb"), local.resources["IngestTable"]),
            dlq_messages=_count_messages(local.client("sqs"), local.resources["DeadLetterQueue"]),
            lambda_totals=local.lambda_totals(),
        )


class _LedgerWatcher:
    """Reads the run's progress from the ledger table and the slice manifest."""

    def __init__(self, local: Any, run: str, bucket: str) -> None:
        self._ddb = local.client("dynamodb")
        self._s3 = local.client("s3")
        self._ledger = local.resources["LedgerTable"]
        self._run = run
        self._bucket = bucket
        self._slices_total: int | None = None

    def poll(self, elapsed_s: float) -> Progress:
        progress = Progress(slices_total=self._read_slices_total(), elapsed_s=elapsed_s)
        paginator = self._ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._ledger,
            KeyConditionExpression="#run = :run",
            ExpressionAttributeNames={"#run": "run"},
            ExpressionAttributeValues={":run": {"S": self._run}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page["Items"]:
                outcome = json.loads(item["outcome"]["S"])
                progress.slices_done += 1
                progress.read += outcome["read"]
                progress.written += outcome["written"]
                progress.dead_lettered += outcome["dead_lettered"]
                progress.duplicates += outcome.get("duplicates", 0)
        return progress

    def _read_slices_total(self) -> int | None:
        if self._slices_total is not None:
            return self._slices_total
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=f"runs/{self._run}/slices.json")
        except self._s3.exceptions.NoSuchKey:
            return None
        self._slices_total = len(json.loads(body["Body"].read()))
        return self._slices_total


def _wait_for_end(
    local: Any,
    sfn: Any,
    execution_arn: str,
    watcher: _LedgerWatcher,
    options: RunOptions,
    started: float,
    on_progress: Callable[[Progress], None] | None,
) -> dict[str, Any]:
    """Poll until the execution ends; raise `RunFailedError` on a stall or the overall timeout."""

    def probe() -> tuple[int, bool]:
        progress = watcher.poll(time.monotonic() - started)
        if on_progress:
            on_progress(progress)
        invocations, busy = local.lambda_progress()
        return invocations + progress.slices_done, busy

    try:
        return wait_for_execution(
            sfn,
            execution_arn,
            timeout=options.timeout_s,
            stall_timeout=options.stall_timeout_s,
            poll_interval=options.poll_interval_s,
            progress=probe,
            log_path=local.server_log,
        )
    except ExecutionWaitError as exc:
        raise RunFailedError(str(exc)) from exc


def _summarize(
    local: Any,
    description: dict[str, Any],
    run: str,
    batch: str,
    progress: Progress,
    duration: float,
    baseline: _Counts,
) -> RunSummary:
    status = description["status"]
    output = json.loads(description.get("output") or "null")
    after = _Counts.read(local)
    table_items = after.table_items
    table_items_before = baseline.table_items
    stats = {
        name: value - baseline.lambda_totals.get(name, 0)
        for name, value in after.lambda_totals.items()
    }

    problems = []
    if status != "SUCCEEDED":
        problems.append(f"execution ended {status}")
    accounted = progress.written + progress.dead_lettered + progress.duplicates
    if progress.read != accounted:
        problems.append(
            f"{progress.read} messages read but {accounted} accounted for "
            f"({progress.written} written + {progress.dead_lettered} dead-lettered "
            f"+ {progress.duplicates} duplicates)"
        )
    if progress.slices_total is not None and progress.slices_done != progress.slices_total:
        problems.append(f"{progress.slices_done} of {progress.slices_total} slices have an outcome")
    if isinstance(output, dict) and output.get("read") != progress.read:
        problems.append(f"reconcile read {output.get('read')}, ledger read {progress.read}")
    # Only a table that started empty must end with exactly the items written, because a
    # message of an earlier run may be written again.
    if table_items_before == 0 and table_items != progress.written:
        problems.append(f"table has {table_items} items but {progress.written} were written")
    if table_items - table_items_before > progress.written:
        problems.append(
            f"table gained {table_items - table_items_before} items "
            f"but only {progress.written} were written"
        )

    return RunSummary(
        status=status,
        execution_arn=description["executionArn"],
        run=run,
        batch=batch,
        slices=progress.slices_total or 0,
        read=progress.read,
        written=progress.written,
        dead_lettered=progress.dead_lettered,
        duplicates=progress.duplicates,
        table_items=table_items,
        dlq_messages=after.dlq_messages - baseline.dlq_messages,
        duration_s=round(duration, 3),
        messages_per_s=round(progress.read / duration, 1) if duration > 0 else 0.0,
        environments_started=stats["environments_started"],
        invocations=stats["invocations"],
        clients_created=stats["clients_created"],
        connections_opened=stats["connections_opened"],
        reconciled=not problems,
        error=description.get("error"),
        cause=description.get("cause"),
        problems=problems,
        log_dir=str(local.log_dir),
    )


def _count_items(ddb: Any, table: str) -> int:
    # moto computes ItemCount on every DescribeTable, where a Scan of 100,000 items takes
    # minutes. AWS refreshes ItemCount only about every six hours, so this is for local use.
    return int(ddb.describe_table(TableName=table)["Table"]["ItemCount"])


def _count_messages(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
