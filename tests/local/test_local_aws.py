"""Tests for LocalAWS: Step Functions through the local Lambda service, start-up and shutdown."""

import json
import os
import signal
import socket
import time
import uuid
from pathlib import Path

import psutil
import pytest
from botocore.config import Config

from nightly_ingest.local import LocalAWS, ServerStartError, TemplateUnsupportedError

from .conftest import STACK_TEMPLATE

WAIT = {"timeout": 60, "stall_timeout": 30, "poll_interval": 0.1}


def _is_gone(pid: int) -> bool:
    """Tell whether a process has exited. A zombie counts, since its parent may be init."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if not _is_gone(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if not _is_gone(pid)]


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _environment_pids(aws: LocalAWS) -> list[int]:
    functions = aws.lambda_stats()["functions"].values()
    return [env["pid"] for function in functions for env in function["environments"]]


def test_local_aws_step_functions_runs_handlers(local_aws):
    execution_arn = local_aws.start_execution({"value": 7})

    description = local_aws.wait_for_execution(execution_arn, **WAIT)

    assert description["status"] == "SUCCEEDED"
    output = json.loads(description["output"])
    cause = json.loads(output["error"]["Cause"])
    assert output["value"] == 7
    assert output["echo"] == {"event": {"value": 7}, "greeting": "hello"}
    assert output["error"]["Error"] == "SliceRejectedError"
    assert cause["errorType"] == "SliceRejectedError"
    assert cause["errorMessage"] == "slice 7 is rejected"
    assert str(uuid.UUID(cause["requestId"])) == cause["requestId"]
    assert len(cause["stackTrace"]) == 1


def test_start_execution_names_are_unique(local_aws):
    arns = [local_aws.start_execution({"value": index}) for index in range(2)]

    statuses = [local_aws.wait_for_execution(arn, **WAIT)["status"] for arn in arns]

    assert arns[0] != arns[1]
    assert statuses == ["SUCCEEDED", "SUCCEEDED"]


def test_local_aws_stop_leaves_no_process_or_port(tmp_path):
    aws = LocalAWS(STACK_TEMPLATE, tmp_path / "logs").start()
    try:
        for logical_id in ("EchoFunction", "CountedFunction"):
            aws.client("lambda").invoke(FunctionName=aws.resources[logical_id], Payload=b"{}")
        port = int(aws.endpoint.rsplit(":", 1)[1])
        pids = [aws.pid, *_environment_pids(aws)]
    finally:
        aws.stop()

    assert len(pids) == 3
    assert [pid for pid in pids if not _is_gone(pid)] == []
    assert not _accepts_connections(port)
    assert "Stopped" in (tmp_path / "logs" / "server.log").read_text()


def test_local_aws_killed_server_environments_exit(tmp_path):
    aws = LocalAWS(STACK_TEMPLATE, tmp_path / "logs").start()
    try:
        aws.client("lambda").invoke(FunctionName=aws.resources["EchoFunction"], Payload=b"{}")
        environment_pids = _environment_pids(aws)

        os.kill(aws.pid, signal.SIGKILL)

        assert len(environment_pids) == 1
        assert _wait_until_gone(environment_pids) == []
    finally:
        aws.stop()


def test_local_aws_port_in_use_raises_start_error(tmp_path):
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        aws = LocalAWS(STACK_TEMPLATE, tmp_path / "logs", port=port)

        with pytest.raises(ServerStartError) as error:
            aws.start()

    server_log = tmp_path / "logs" / "server.log"
    assert str(error.value) == (
        f"[Errno 98] cannot listen on 127.0.0.1:{port}: Address already in use "
        f"(server log: {server_log})"
    )
    assert aws.pid is None


def test_local_aws_unsupported_template_raises(tmp_path):
    template = Path(tmp_path / "template.yaml")
    template.write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n", encoding="utf-8")
    aws = LocalAWS(template, tmp_path / "logs")

    with pytest.raises(TemplateUnsupportedError) as error:
        aws.start()

    assert str(error.value).startswith(
        "Resource Topic has type AWS::SNS::Topic, which the local AWS does not support."
    )
    assert str(error.value).endswith(f"(server log: {tmp_path / 'logs' / 'server.log'})")


def test_local_aws_empty_upload_expecting_continue_completes(local_aws):
    # botocore sends `Expect: 100-continue` on every PutObject. A server that responds to it for an
    # empty body and then waits for the body hangs until the read timeout below.
    s3 = local_aws.client("s3", config=Config(read_timeout=5, retries={"total_max_attempts": 1}))
    s3.create_bucket(Bucket="empty-upload")

    s3.put_object(Bucket="empty-upload", Key="empty", Body=b"")

    assert s3.get_object(Bucket="empty-upload", Key="empty")["Body"].read() == b""
