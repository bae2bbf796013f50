"""Tests for the local Lambda service, through the emulator's HTTP endpoint."""

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import psutil
import pytest
from botocore.config import Config

from nightly_ingest.local import LocalAWS

NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture(scope="module")
def lambda_client(local_aws: LocalAWS):
    return local_aws.client("lambda", config=NO_RETRIES)


def _invoke(client, function_name: str, event: dict) -> tuple[dict, dict]:
    """Invoke and return the response without its stream, and the payload parsed."""
    response = client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
    payload = json.loads(response.pop("Payload").read())
    return response, payload


def _raw_invoke(endpoint: str, function_ref: str, event: dict) -> tuple[int, dict, dict]:
    """POST an invocation without boto3, so that no retry hides the wire format.

    Header names come back lower-cased, because HTTP header names are case-insensitive and
    the server may change their case.
    """
    request = urllib.request.Request(
        f"{endpoint}/2015-03-31/functions/{function_ref}/invocations",
        data=json.dumps(event).encode(),
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, _lower_keys(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, _lower_keys(error.headers), json.load(error)


def _lower_keys(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _function_stats(local_aws: LocalAWS, logical_id: str) -> dict:
    return local_aws.lambda_stats()["functions"][local_aws.resources[logical_id]]


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def test_invoke_echo_sees_context_and_environment(local_aws, lambda_client):
    name = local_aws.resources["EchoFunction"]

    response, payload = _invoke(lambda_client, name, {"value": 1})

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert payload == {
        "event": {"value": 1},
        "imports": 1,
        "context": {
            "function_name": name,
            "function_version": "$LATEST",
            "invoked_function_arn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
            "memory_limit_in_mb": "256",
            "log_group_name": f"/aws/lambda/{name}",
            "remaining_ms_positive": True,
            "request_id_length": 36,
        },
        "environment": {
            "AWS_ENDPOINT_URL": local_aws.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "TABLE_NAME": local_aws.resources["ItemTable"],
            "GREETING": "hello",
        },
    }


def test_invoke_handler_exception_is_unhandled(local_aws):
    handler_file = local_aws.template_path.parent / "handlers" / "app.py"
    raise_line = "raise SliceRejectedError(f\"slice {event.get('slice')} is rejected\")"
    line_number = handler_file.read_text().splitlines().index(f"    {raise_line}") + 1

    status, headers, body = _raw_invoke(
        local_aws.endpoint, local_aws.resources["FailFunction"], {"slice": 3}
    )

    assert status == 200
    assert headers["x-amz-function-error"] == "Unhandled"
    assert body == {
        "errorMessage": "slice 3 is rejected",
        "errorType": "SliceRejectedError",
        "requestId": headers["x-amzn-requestid"],
        "stackTrace": [f'  File "{handler_file}", line {line_number}, in fail\n    {raise_line}\n'],
    }


def test_invoke_timeout_replaces_environment(local_aws, lambda_client):
    name = local_aws.resources["SleepFunction"]

    response, payload = _invoke(lambda_client, name, {"seconds": 5})
    first = _function_stats(local_aws, "SleepFunction")["environments"][0]
    after_response, after_payload = _invoke(lambda_client, name, {"seconds": 0})

    request_id = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds",
    }
    assert first["state"] == "stopped"
    assert first["exit_reason"] == "timed out after 1.00 s"
    assert not psutil.pid_exists(first["pid"])
    assert "FunctionError" not in after_response
    assert after_payload == {"slept": 0}
    stats = _function_stats(local_aws, "SleepFunction")
    assert stats["environments_started"] == 2
    assert stats["errors"] == {"Sandbox.Timedout": 1}


def test_invoke_process_exit_replaces_environment(local_aws, lambda_client):
    name = local_aws.resources["ExitFunction"]

    exit_response, exit_payload = _invoke(lambda_client, name, {"status": 3})
    kill_response, kill_payload = _invoke(lambda_client, name, {"signal": True})
    _, survivor = _invoke(lambda_client, name, {})

    exit_request = exit_response["ResponseMetadata"]["RequestId"]
    kill_request = kill_response["ResponseMetadata"]["RequestId"]
    assert exit_response["FunctionError"] == "Unhandled"
    assert exit_payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": (
            f"RequestId: {exit_request} Error: Runtime exited with error: exit status 3"
        ),
    }
    assert kill_response["FunctionError"] == "Unhandled"
    assert kill_payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": (
            f"RequestId: {kill_request} Error: Runtime exited with error: signal: killed"
        ),
    }
    stats = _function_stats(local_aws, "ExitFunction")
    environments = stats["environments"]
    assert stats["environments_started"] == 3
    assert [env["state"] for env in environments] == ["stopped", "stopped", "idle"]
    assert [env["exit_reason"] for env in environments] == [
        "exited (exit status 3)",
        "exited (signal: killed)",
        None,
    ]
    assert survivor == {"pid": environments[2]["pid"]}
    assert stats["errors"] == {"Runtime.ExitError": 2}


def test_invoke_beyond_concurrency_limit_is_throttled(local_aws, lambda_client):
    name = local_aws.resources["CappedFunction"]
    results = []
    holder = threading.Thread(
        target=lambda: results.append(_invoke(lambda_client, name, {"seconds": 1.5}))
    )

    holder.start()
    try:
        _wait_until(
            lambda: _function_stats(local_aws, "CappedFunction")["concurrent_invocations"] == 1
        )
        status, headers, body = _raw_invoke(local_aws.endpoint, name, {"seconds": 0})
    finally:
        holder.join(timeout=30)

    assert status == 429
    assert headers["x-amzn-errortype"] == "TooManyRequestsException"
    assert body == {
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        "Type": "User",
        "message": "Rate Exceeded.",
    }
    assert results[0][1] == {"slept": 1.5}
    stats = _function_stats(local_aws, "CappedFunction")
    assert stats["concurrency_limit"] == 1
    assert stats["invocations"] == 1
    assert stats["throttles"] == 1
    assert stats["peak_concurrent_invocations"] == 1
    assert stats["environments_started"] == 1


def test_invoke_warm_environment_imports_once(local_aws, lambda_client):
    name = local_aws.resources["CountedFunction"]

    payloads = [_invoke(lambda_client, name, {})[1] for _ in range(3)]

    stats = _function_stats(local_aws, "CountedFunction")
    (environment,) = stats["environments"]
    assert payloads == [{"imports": 1, "pid": environment["pid"]}] * 3
    assert stats["environments_started"] == 1
    assert stats["invocations"] == 3
    assert environment["invocations"] == 3
    assert environment["state"] == "idle"
    assert environment["clients_created"] == 1
    # The server keeps HTTP/1.1 connections open, so the module-level client reuses one.
    assert environment["connections_opened"] == 1
    assert 0 < environment["init_seconds"] < environment["cold_start_seconds"]


def test_invoke_missing_module_fails_import(local_aws, lambda_client):
    name = local_aws.resources["MissingModuleFunction"]

    response, payload = _invoke(lambda_client, name, {})

    assert response["FunctionError"] == "Unhandled"
    assert payload == {
        "errorMessage": "Unable to import module 'missing': No module named 'missing'",
        "errorType": "Runtime.ImportModuleError",
        "stackTrace": [],
        "requestId": response["ResponseMetadata"]["RequestId"],
    }
    stats = _function_stats(local_aws, "MissingModuleFunction")
    assert stats["environments"][0]["exit_reason"] == "init error Runtime.ImportModuleError"


def test_invoke_unknown_function_not_found(local_aws):
    status, headers, body = _raw_invoke(local_aws.endpoint, "no-such-function", {})

    assert status == 404
    assert headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert body == {
        "Type": "User",
        "Message": (
            "Function not found: arn:aws:lambda:us-east-1:123456789012:function:no-such-function"
        ),
    }


def test_invoke_unknown_qualifier_not_found(local_aws):
    arn = local_aws.resource_details["EchoFunction"]["Arn"]

    status, headers, body = _raw_invoke(local_aws.endpoint, f"{arn}:live", {})

    assert status == 404
    assert body == {"Type": "User", "Message": f"Function not found: {arn}:live"}
