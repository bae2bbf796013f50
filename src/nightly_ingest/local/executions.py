"""Start Step Functions executions and wait for them with a deadline and a stall detector."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .exceptions import ExecutionStalledError, ExecutionTimeoutError

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
MAX_HISTORY_PAGES = 1000
DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_STALL_TIMEOUT_SECONDS = 120.0
DEFAULT_POLL_INTERVAL_SECONDS = 0.5

ProgressProbe = Callable[[], tuple[int, bool]]
"""Return a counter that grows with progress and whether work is in flight right now."""


def unique_execution_name(prefix: str = "run") -> str:
    """Return a name that no other execution has, such as ``run-20240101T020000Z-1a2b3c4d``.

    moto names an execution started without a name ``None``, so a second one collides.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:8]}"[:80]


def start_execution(
    stepfunctions: Any,
    state_machine_arn: str,
    execution_input: Any = None,
    name: str | None = None,
) -> str:
    """Start an execution and return its ARN. ``execution_input`` is JSON-encoded unless text."""
    if execution_input is None:
        text = "{}"
    elif isinstance(execution_input, str):
        text = execution_input
    else:
        text = json.dumps(execution_input)
    response = stepfunctions.start_execution(
        stateMachineArn=state_machine_arn,
        name=name or unique_execution_name(),
        input=text,
    )
    return str(response["executionArn"])


def last_history_event(stepfunctions: Any, execution_arn: str) -> tuple[int, dict[str, Any] | None]:
    """Return the number of events in the execution's history and the last one."""
    events: list[dict[str, Any]] = []
    token = None
    for _ in range(MAX_HISTORY_PAGES):
        request: dict[str, Any] = {"executionArn": execution_arn}
        if token:
            request["nextToken"] = token
        response = stepfunctions.get_execution_history(**request)
        events.extend(response["events"])
        token = response.get("nextToken")
        if not token:
            break
    # moto 5.2.5 ignores reverseOrder, so the events are read in order and the last one taken.
    return len(events), (max(events, key=lambda event: event["id"]) if events else None)


def describe_event(event: dict[str, Any] | None) -> str:
    if event is None:
        return "none"
    timestamp = event.get("timestamp")
    when = timestamp.isoformat() if isinstance(timestamp, datetime) else str(timestamp)
    return f"#{event['id']} {event['type']} at {when}"


def wait_for_execution(
    stepfunctions: Any,
    execution_arn: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
    progress: ProgressProbe | None = None,
    log_path: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the execution ends and return its DescribeExecution response.

    Progress is a new history event, a change of the ``progress`` counter, or work in flight
    according to ``progress``. A Distributed Map's children write no events to the parent's
    history, so the Lambda invocation counter is what shows their progress.

    Raises ExecutionStalledError when nothing progressed for ``stall_timeout`` seconds, which is
    what happens when moto's interpreter thread dies (for example with RecursionError) and
    leaves the execution RUNNING. Raises ExecutionTimeoutError when the execution is still
    running after ``timeout`` seconds. Both errors name the execution and its last event.
    """
    started = clock()
    last_progress_at = started
    last_marker: tuple[int, int] | None = None
    while True:
        description = stepfunctions.describe_execution(executionArn=execution_arn)
        status = description["status"]
        if status in TERMINAL_STATUSES:
            return dict(description)
        event_count, last_event = last_history_event(stepfunctions, execution_arn)
        counter, busy = progress() if progress is not None else (0, False)
        marker = (event_count, counter)
        now = clock()
        if marker != last_marker or busy:
            last_marker = marker
            last_progress_at = now
        log_hint = f" See {log_path}." if log_path is not None else ""
        if now - last_progress_at >= stall_timeout:
            raise ExecutionStalledError(
                f"Execution {execution_arn} is {status} but made no progress for "
                f"{stall_timeout:g} s: no new history event and no Lambda invocation. Last "
                f"event: {describe_event(last_event)}. moto's interpreter may have died.{log_hint}"
            )
        if now - started >= timeout:
            raise ExecutionTimeoutError(
                f"Execution {execution_arn} is still {status} after {timeout:g} s. Last event: "
                f"{describe_event(last_event)}.{log_hint}"
            )
        sleep(poll_interval)
