"""Tests for starting executions and for the bounded, stall-detecting wait."""

from datetime import UTC, datetime

import pytest

from nightly_ingest.local import ExecutionStalledError, ExecutionTimeoutError, wait_for_execution
from nightly_ingest.local.executions import unique_execution_name

ARN = "arn:aws:states:us-east-1:123456789012:execution:machine:run-1"
EVENT_TIME = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


class FakeStepFunctions:
    """Step Functions client whose execution history grows by ``growth`` events per poll."""

    def __init__(self, statuses: list[str], growth: int = 0) -> None:
        self._statuses = statuses
        self._growth = growth
        self._events = 1
        self.describe_calls = 0

    def describe_execution(self, executionArn: str) -> dict:
        status = self._statuses[min(self.describe_calls, len(self._statuses) - 1)]
        self.describe_calls += 1
        return {"executionArn": executionArn, "status": status}

    def get_execution_history(self, executionArn: str) -> dict:
        events = [
            {"id": index, "type": "MapRunStarted", "timestamp": EVENT_TIME}
            for index in range(1, self._events + 1)
        ]
        self._events += self._growth
        return {"events": events}


class FakeClock:
    """Clock that moves only when the wait sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_execution_finished_returns_description():
    client = FakeStepFunctions(["RUNNING", "RUNNING", "SUCCEEDED"], growth=1)
    clock = FakeClock()

    description = wait_for_execution(
        client, ARN, poll_interval=1, stall_timeout=10, sleep=clock.sleep, clock=clock
    )

    assert description == {"executionArn": ARN, "status": "SUCCEEDED"}
    assert client.describe_calls == 3


def test_wait_for_execution_no_progress_raises_stalled():
    client = FakeStepFunctions(["RUNNING"])
    clock = FakeClock()

    with pytest.raises(ExecutionStalledError) as error:
        wait_for_execution(
            client,
            ARN,
            poll_interval=1,
            stall_timeout=5,
            progress=lambda: (7, False),
            sleep=clock.sleep,
            clock=clock,
        )

    assert str(error.value) == (
        f"Execution {ARN} is RUNNING but made no progress for 5 s: no new history event and "
        "no Lambda invocation. Last event: #1 MapRunStarted at 2024-05-01T02:00:00+00:00. "
        "moto's interpreter may have died."
    )
    assert clock.now == 5


def test_wait_for_execution_lambda_progress_prevents_stall():
    client = FakeStepFunctions(["RUNNING"] * 8 + ["FAILED"])
    clock = FakeClock()
    invocations = iter(range(100))

    description = wait_for_execution(
        client,
        ARN,
        poll_interval=1,
        stall_timeout=2,
        progress=lambda: (next(invocations), False),
        sleep=clock.sleep,
        clock=clock,
    )

    assert description["status"] == "FAILED"


def test_wait_for_execution_invocation_in_flight_prevents_stall():
    client = FakeStepFunctions(["RUNNING"] * 8 + ["SUCCEEDED"])
    clock = FakeClock()

    description = wait_for_execution(
        client,
        ARN,
        poll_interval=1,
        stall_timeout=2,
        progress=lambda: (1, True),
        sleep=clock.sleep,
        clock=clock,
    )

    assert description["status"] == "SUCCEEDED"


def test_wait_for_execution_past_deadline_raises_timeout(tmp_path):
    client = FakeStepFunctions(["RUNNING"], growth=1)
    clock = FakeClock()
    log_path = tmp_path / "server.log"

    with pytest.raises(ExecutionTimeoutError) as error:
        wait_for_execution(
            client,
            ARN,
            timeout=3,
            poll_interval=1,
            stall_timeout=60,
            log_path=log_path,
            sleep=clock.sleep,
            clock=clock,
        )

    assert str(error.value) == (
        f"Execution {ARN} is still RUNNING after 3 s. Last event: #4 MapRunStarted at "
        f"2024-05-01T02:00:00+00:00. See {log_path}."
    )


def test_unique_execution_name_repeated_calls_differ():
    names = {unique_execution_name("nightly") for _ in range(100)}

    assert len(names) == 100
    assert all(name.startswith("nightly-") and len(name) <= 80 for name in names)
