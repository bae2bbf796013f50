"""Tests for fault injection: the rules alone, request identification, and the HTTP endpoint."""

import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.test import EnvironBuilder

from nightly_ingest.local import FaultRuleError, LocalAWS
from nightly_ingest.local.aws_calls import AwsCall, identify_call
from nightly_ingest.local.faults import FaultInjector, FaultRule

NO_RETRIES = Config(retries={"total_max_attempts": 1})
CREDENTIAL = "Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host"
TABLE_CALL = AwsCall("dynamodb", "PutItem", "json", ("events",), {"TableName": "events"})


def _rule(**fields: Any) -> FaultRule:
    document = {"service": "dynamodb", "action": "PutItem", "kind": "drop", **fields}
    return FaultRule.from_document(document, "fault-1")


def _fire_calls(rule: FaultRule, calls: int, call: AwsCall = TABLE_CALL) -> list[bool]:
    return [rule.matches(call) and rule.count_match() for _ in range(calls)]


# The rules alone


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param([], "A fault rule must be a JSON object, not [].", id="not-object"),
        pytest.param(
            {"service": "sqs", "action": "SendMessage", "kind": "drop", "count": 2},
            "Unknown fault rule fields: count. Known fields: action, error_code, error_message, "
            "error_type, items, kind, match_body, resource, seconds, seed, service, share, skip, "
            "status, times.",
            id="unknown-field",
        ),
        pytest.param(
            {"action": "PutItem", "kind": "drop"}, "A fault rule needs service.", id="no-service"
        ),
        pytest.param(
            {"service": "sqs", "action": "SendMessage", "kind": "explode"},
            "Fault kind 'explode' is unknown. Known kinds: error, crash, timeout, unprocessed, "
            "drop, delay.",
            id="unknown-kind",
        ),
        pytest.param(
            {"service": "sqs", "action": "SendMessage", "kind": "error", "error_code": "X"},
            "A fault of kind error needs status.",
            id="error-without-status",
        ),
        pytest.param(
            {"service": "dynamodb", "action": "PutItem", "kind": "crash", "error_type": "E"},
            "Only a Lambda Invoke can crash, not dynamodb PutItem. Use kind error for an error of "
            "the service.",
            id="crash-not-lambda",
        ),
        pytest.param(
            {"service": "sqs", "action": "SendMessage", "kind": "timeout"},
            "Only a Lambda Invoke can time out, not sqs SendMessage. Use kind delay to slow down a "
            "call, or kind error for an error of the service.",
            id="timeout-not-lambda",
        ),
        pytest.param(
            {"service": "dynamodb", "action": "PutItem", "kind": "unprocessed", "items": 1},
            "Only DynamoDB BatchWriteItem returns unprocessed items, not dynamodb PutItem.",
            id="unprocessed-not-batch",
        ),
        pytest.param(
            {"service": "lambda", "action": "Invoke", "kind": "drop"},
            "A Lambda invocation cannot be dropped, because its caller waits for a result. Use "
            "kind crash or error.",
            id="drop-lambda",
        ),
        pytest.param(
            {"service": "sqs", "action": "SendMessage", "kind": "drop", "times": 0},
            "Fault rule field times must be at least 1, not 0.",
            id="times-zero",
        ),
        pytest.param(
            {"service": "sqs", "action": "SendMessage", "kind": "drop", "share": 1.5},
            "Fault rule field share must be a number above 0 and at most 1, not 1.5.",
            id="share-above-one",
        ),
        pytest.param(
            {"service": "sqs", "action": "SendMessage", "kind": "delay", "seconds": 0},
            "Fault rule field seconds must be a number above 0 and at most 300, not 0.",
            id="seconds-zero",
        ),
        pytest.param(
            {
                "service": "sqs",
                "action": "SendMessage",
                "kind": "error",
                "status": 200,
                "error_code": "X",
            },
            "Fault rule field status must be from 400 to 599, not 200.",
            id="status-success",
        ),
        pytest.param(
            {"service": "sqs", "action": "SendMessage", "kind": "drop", "times": True},
            "Fault rule field times must be an integer, not True.",
            id="times-boolean",
        ),
    ],
)
def test_fault_rule_invalid_document_raises(document: Any, message: str) -> None:
    with pytest.raises(FaultRuleError) as error:
        FaultRule.from_document(document, "fault-1")

    assert str(error.value) == message


def test_fault_rule_stepfunctions_alias_becomes_signing_name() -> None:
    rule = FaultRule.from_document(
        {"service": "stepfunctions", "action": "StartExecution", "kind": "drop"}, "fault-1"
    )

    assert rule.service == "states"


def test_fault_rule_times_fires_then_stops() -> None:
    rule = _rule(times=2)

    fired = _fire_calls(rule, 4)

    assert fired == [True, True, False, False]
    assert (rule.matched, rule.fired) == (4, 2)


def test_fault_rule_skip_lets_first_calls_through() -> None:
    rule = _rule(skip=2, times=1)

    fired = _fire_calls(rule, 4)

    assert fired == [False, False, True, False]


def test_fault_rule_times_none_fires_every_call() -> None:
    rule = _rule(times=None)

    fired = _fire_calls(rule, 5)

    assert fired == [True] * 5


def test_fault_rule_share_fires_on_seeded_draws() -> None:
    rule = _rule(times=None, share=0.3, seed=7)
    draws = random.Random(7)
    expected = [draws.random() < 0.3 for _ in range(50)]

    fired = _fire_calls(rule, 50)

    assert fired == expected
    assert 0 < rule.fired < 50


@pytest.mark.parametrize(
    ("fields", "call", "expected"),
    [
        pytest.param({}, TABLE_CALL, True, id="service-and-action"),
        pytest.param({"action": "*"}, TABLE_CALL, True, id="any-action"),
        pytest.param({"action": "GetItem"}, TABLE_CALL, False, id="other-action"),
        pytest.param({"service": "sqs"}, TABLE_CALL, False, id="other-service"),
        pytest.param({"resource": "events"}, TABLE_CALL, True, id="resource"),
        pytest.param({"resource": "ledger"}, TABLE_CALL, False, id="other-resource"),
        pytest.param(
            {"match_body": {"Item": {"slice": {"N": "2"}}}},
            AwsCall(
                "dynamodb",
                "PutItem",
                "json",
                ("ledger",),
                {"TableName": "ledger", "Item": {"run": {"S": "r"}, "slice": {"N": "2"}}},
            ),
            True,
            id="nested-body",
        ),
        pytest.param(
            {"match_body": {"Item": {"slice": {"N": "2"}}}},
            AwsCall("dynamodb", "PutItem", "json", ("ledger",), {"Item": {"slice": {"N": "1"}}}),
            False,
            id="other-body-value",
        ),
        pytest.param(
            {"match_body": {"Entries": [{"Id": "a"}]}},
            AwsCall("dynamodb", "PutItem", "json", (), {"Entries": [{"Id": "a"}, {"Id": "b"}]}),
            False,
            id="lists-compared-whole",
        ),
        pytest.param(
            {"match_body": {"TableName": "events"}},
            AwsCall("dynamodb", "PutItem", "json", ("events",), None),
            False,
            id="no-json-body",
        ),
    ],
)
def test_fault_rule_matches(fields: dict[str, Any], call: AwsCall, expected: bool) -> None:
    rule = _rule(**fields)

    assert rule.matches(call) is expected


def test_fault_injector_first_firing_rule_wins() -> None:
    injector = FaultInjector()
    first = injector.add({"service": "dynamodb", "action": "PutItem", "kind": "drop"})
    second = injector.add({"service": "dynamodb", "action": "*", "kind": "drop", "times": None})

    fired_rules = [injector.take(TABLE_CALL) for _ in range(3)]

    assert [rule.id if rule else None for rule in fired_rules] == ["fault-1", "fault-2", "fault-2"]
    assert (first.matched, first.fired) == (3, 1)
    assert (second.matched, second.fired) == (2, 2)


def test_fault_injector_rules_lists_whole_rules() -> None:
    injector = FaultInjector()
    injector.add(
        {
            "service": "lambda",
            "action": "Invoke",
            "kind": "crash",
            "resource": "parse",
            "error_type": "RuntimeError",
        }
    )
    injector.add(
        {"service": "dynamodb", "action": "BatchWriteItem", "kind": "unprocessed", "items": 2}
    )

    assert injector.rules() == [
        {
            "id": "fault-1",
            "service": "lambda",
            "action": "Invoke",
            "kind": "crash",
            "resource": "parse",
            "error_type": "RuntimeError",
            "error_message": "Injected by local AWS fault rule fault-1.",
            "times": 1,
            "skip": 0,
            "matched": 0,
            "fired": 0,
        },
        {
            "id": "fault-2",
            "service": "dynamodb",
            "action": "BatchWriteItem",
            "kind": "unprocessed",
            "items": 2,
            "times": 1,
            "skip": 0,
            "matched": 0,
            "fired": 0,
        },
    ]


def test_fault_injector_remove_and_clear() -> None:
    injector = FaultInjector()
    for _ in range(3):
        injector.add({"service": "sqs", "action": "SendMessage", "kind": "drop"})

    assert injector.remove("fault-2") is True
    assert injector.remove("fault-2") is False
    assert [rule["id"] for rule in injector.rules()] == ["fault-1", "fault-3"]
    assert injector.clear() == 2
    assert injector.active is False


# Identifying the call of a request


def _environ(method: str, path: str, service: str | None, **options: Any) -> dict[str, Any]:
    headers = dict(options.pop("headers", {}))
    if service is not None:
        headers["Authorization"] = f"AWS4-HMAC-SHA256 {CREDENTIAL.format(service=service)}"
    return EnvironBuilder(method=method, path=path, headers=headers, **options).get_environ()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            _environ(
                "POST",
                "/",
                "dynamodb",
                headers={"X-Amz-Target": "DynamoDB_20120810.PutItem"},
                data=json.dumps({"TableName": "ledger", "Item": {}}),
            ),
            AwsCall("dynamodb", "PutItem", "json", ("ledger",)),
            id="dynamodb-put-item",
        ),
        pytest.param(
            _environ(
                "POST",
                "/",
                "dynamodb",
                headers={"X-Amz-Target": "DynamoDB_20120810.BatchWriteItem"},
                data=json.dumps({"RequestItems": {"events": [], "other": []}}),
            ),
            AwsCall("dynamodb", "BatchWriteItem", "json", ("events", "other")),
            id="dynamodb-batch-write",
        ),
        pytest.param(
            _environ(
                "POST",
                "/",
                "sqs",
                headers={"X-Amz-Target": "AmazonSQS.SendMessage"},
                data=json.dumps({"QueueUrl": "http://127.0.0.1:1/123456789012/dlq"}),
            ),
            AwsCall("sqs", "SendMessage", "json", ("dlq",)),
            id="sqs-json",
        ),
        pytest.param(
            _environ(
                "POST",
                "/123456789012/dlq",
                "sqs",
                content_type="application/x-www-form-urlencoded",
                data="Action=SendMessage&MessageBody=x",
            ),
            AwsCall("sqs", "SendMessage", "query", ("dlq",)),
            id="sqs-query",
        ),
        pytest.param(
            _environ(
                "POST",
                "/",
                None,
                headers={"X-Amz-Target": "AWSStepFunctions.StartExecution"},
                data="{}",
            ),
            AwsCall("states", "StartExecution", "json", ()),
            id="unsigned-json",
        ),
        pytest.param(
            _environ("GET", "/batches/runs/r/slices.json", "s3"),
            AwsCall("s3", "GetObject", "rest-xml", ("batches",), http_method="GET"),
            id="s3-get-object",
        ),
        pytest.param(
            _environ("PUT", "/batches/incoming/b.jsonl", "s3", data=b"x"),
            AwsCall("s3", "PutObject", "rest-xml", ("batches",), http_method="PUT"),
            id="s3-put-object",
        ),
        pytest.param(
            _environ("PUT", "/batches/k", "s3", headers={"X-Amz-Copy-Source": "/batches/j"}),
            AwsCall("s3", "CopyObject", "rest-xml", ("batches",), http_method="PUT"),
            id="s3-copy-object",
        ),
        pytest.param(
            _environ("GET", "/batches", "s3", query_string="list-type=2&prefix=runs/"),
            AwsCall("s3", "ListObjectsV2", "rest-xml", ("batches",), http_method="GET"),
            id="s3-list-objects",
        ),
        pytest.param(
            _environ("GET", "/batches", "s3", query_string="versioning"),
            AwsCall("s3", "GetBucketVersioning", "rest-xml", ("batches",), http_method="GET"),
            id="s3-bucket-subresource",
        ),
        pytest.param(_environ("GET", "/moto-api/", None), None, id="not-aws"),
    ],
)
def test_identify_call(environ: dict[str, Any], expected: AwsCall | None) -> None:
    body = environ["wsgi.input"].read()

    call = identify_call(environ, body)

    assert call == expected


def test_identify_call_keeps_json_body() -> None:
    body = {"TableName": "ledger", "Item": {"slice": {"N": "2"}}}
    environ = _environ(
        "POST",
        "/",
        "dynamodb",
        headers={"X-Amz-Target": "DynamoDB_20120810.PutItem"},
        data=json.dumps(body),
    )

    call = identify_call(environ, environ["wsgi.input"].read())

    assert call is not None
    assert call.document == body


# Faults served by the local AWS


@pytest.fixture
def faulty_aws(local_aws: LocalAWS) -> Iterator[LocalAWS]:
    """Yield the session's local AWS and remove every fault rule after the test."""
    local_aws.clear_faults()
    yield local_aws
    local_aws.clear_faults()


@pytest.fixture
def queue_url(faulty_aws: LocalAWS) -> str:
    name = f"faults-{uuid.uuid4().hex[:12]}"
    return str(faulty_aws.client("sqs").create_queue(QueueName=name)["QueueUrl"])


@pytest.fixture
def bucket(faulty_aws: LocalAWS) -> str:
    name = f"faults-{uuid.uuid4().hex[:12]}"
    faulty_aws.client("s3").create_bucket(Bucket=name)
    return name


def _error(error: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = error.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def test_fault_error_on_put_item_not_forwarded(faulty_aws: LocalAWS) -> None:
    table = faulty_aws.resources["ItemTable"]
    dynamodb = faulty_aws.client("dynamodb", config=NO_RETRIES)
    fault_id = faulty_aws.add_fault(
        "dynamodb",
        "PutItem",
        "error",
        resource=table,
        status=400,
        error_code="ProvisionedThroughputExceededException",
        error_message="Rate of requests exceeds the allowed throughput.",
    )

    with pytest.raises(ClientError) as error:
        dynamodb.put_item(TableName=table, Item={"id": {"S": "throttled"}})

    assert _error(error) == (
        400,
        "ProvisionedThroughputExceededException",
        "Rate of requests exceeds the allowed throughput.",
    )
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"id": {"S": "throttled"}})
    assert faulty_aws.fault(fault_id)["fired"] == 1
    assert f"Injected fault {fault_id} (error) into dynamodb PutItem on {table}" in (
        faulty_aws.server_log.read_text()
    )


def test_fault_error_on_send_message_has_sqs_code(faulty_aws: LocalAWS, queue_url: str) -> None:
    sqs = faulty_aws.client("sqs", config=NO_RETRIES)
    faulty_aws.add_fault(
        "sqs",
        "SendMessage",
        "error",
        resource=queue_url.rsplit("/", 1)[1],
        status=500,
        error_code="InternalError",
    )

    with pytest.raises(ClientError) as error:
        sqs.send_message(QueueUrl=queue_url, MessageBody="lost")

    assert _error(error)[:2] == (500, "InternalError")
    assert sqs.receive_message(QueueUrl=queue_url).get("Messages", []) == []


def test_fault_error_on_s3_head_and_put(faulty_aws: LocalAWS, bucket: str) -> None:
    s3 = faulty_aws.client("s3", config=NO_RETRIES)
    faulty_aws.add_fault("s3", "PutObject", "error", status=503, error_code="SlowDown")
    faulty_aws.add_fault("s3", "HeadObject", "error", status=403, error_code="AccessDenied")

    with pytest.raises(ClientError) as put_error:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as head_error:
        s3.head_object(Bucket=bucket, Key="k")

    assert _error(put_error)[:2] == (503, "SlowDown")
    assert _error(head_error)[:2] == (403, "403")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_fault_unprocessed_returns_last_items(faulty_aws: LocalAWS) -> None:
    table = faulty_aws.resources["ItemTable"]
    dynamodb = faulty_aws.client("dynamodb", config=NO_RETRIES)
    keys = [f"unprocessed-{uuid.uuid4().hex}-{index}" for index in range(3)]
    requests = [{"PutRequest": {"Item": {"id": {"S": key}}}} for key in keys]
    faulty_aws.add_fault("dynamodb", "BatchWriteItem", "unprocessed", resource=table, items=2)

    response = dynamodb.batch_write_item(RequestItems={table: requests})
    stored = ["Item" in dynamodb.get_item(TableName=table, Key={"id": {"S": key}}) for key in keys]

    assert response["UnprocessedItems"] == {table: requests[1:]}
    assert stored == [True, False, False]


def test_fault_unprocessed_every_item_forwards_nothing(faulty_aws: LocalAWS) -> None:
    table = faulty_aws.resources["ItemTable"]
    dynamodb = faulty_aws.client("dynamodb", config=NO_RETRIES)
    key = f"unprocessed-{uuid.uuid4().hex}"
    requests = [{"PutRequest": {"Item": {"id": {"S": key}}}}]
    faulty_aws.add_fault("dynamodb", "BatchWriteItem", "unprocessed", items=5)

    response = dynamodb.batch_write_item(RequestItems={table: requests})

    assert response["UnprocessedItems"] == {table: requests}
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"id": {"S": key}})


def test_fault_drop_returns_success_without_effect(
    faulty_aws: LocalAWS, queue_url: str, bucket: str
) -> None:
    table = faulty_aws.resources["ItemTable"]
    dynamodb = faulty_aws.client("dynamodb", config=NO_RETRIES)
    sqs = faulty_aws.client("sqs", config=NO_RETRIES)
    s3 = faulty_aws.client("s3", config=NO_RETRIES)
    for service, action in (
        ("dynamodb", "PutItem"),
        ("sqs", "SendMessage"),
        ("sqs", "SendMessageBatch"),
        ("s3", "PutObject"),
    ):
        faulty_aws.add_fault(service, action, "drop")

    put = dynamodb.put_item(TableName=table, Item={"id": {"S": "dropped"}})
    sent = sqs.send_message(QueueUrl=queue_url, MessageBody="dropped")
    batch = sqs.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": "a", "MessageBody": "dropped"}]
    )
    stored = s3.put_object(Bucket=bucket, Key="dropped", Body=b"dropped")

    digest = hashlib.md5(b"dropped", usedforsecurity=False).hexdigest()
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sent["MD5OfMessageBody"] == digest
    assert str(uuid.UUID(sent["MessageId"])) == sent["MessageId"]
    assert [entry["Id"] for entry in batch["Successful"]] == ["a"]
    assert batch["Successful"][0]["MD5OfMessageBody"] == digest
    assert stored["ETag"] == f'"{digest}"'
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"id": {"S": "dropped"}})
    assert sqs.receive_message(QueueUrl=queue_url).get("Messages", []) == []
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_fault_delay_then_forwards(faulty_aws: LocalAWS) -> None:
    table = faulty_aws.resources["ItemTable"]
    dynamodb = faulty_aws.client("dynamodb", config=NO_RETRIES)
    faulty_aws.add_fault("dynamodb", "PutItem", "delay", resource=table, seconds=0.5)

    started = time.monotonic()
    dynamodb.put_item(TableName=table, Item={"id": {"S": "delayed"}})
    elapsed = time.monotonic() - started

    assert elapsed >= 0.5
    assert "Item" in dynamodb.get_item(TableName=table, Key={"id": {"S": "delayed"}})


def test_fault_crash_is_unhandled_function_error(faulty_aws: LocalAWS) -> None:
    name = faulty_aws.resources["EchoFunction"]
    client = faulty_aws.client("lambda", config=NO_RETRIES)
    errors_before = faulty_aws.lambda_stats()["functions"][name]["errors"].get("RuntimeError", 0)
    faulty_aws.add_fault(
        "lambda",
        "Invoke",
        "crash",
        resource=name,
        match_body={"slice": {"index": 1}},
        error_type="RuntimeError",
        error_message="parse crashed",
    )

    untouched = client.invoke(FunctionName=name, Payload=json.dumps({"slice": {"index": 0}}))
    crashed = client.invoke(FunctionName=name, Payload=json.dumps({"slice": {"index": 1}}))
    payload = json.loads(crashed["Payload"].read())

    assert "FunctionError" not in untouched
    assert crashed["FunctionError"] == "Unhandled"
    assert payload == {
        "errorMessage": "parse crashed",
        "errorType": "RuntimeError",
        "requestId": crashed["ResponseMetadata"]["RequestId"],
        "stackTrace": [],
    }
    errors = faulty_aws.lambda_stats()["functions"][name]["errors"]
    assert errors.get("RuntimeError", 0) == errors_before + 1


def test_fault_timeout_is_sandbox_timedout(faulty_aws: LocalAWS) -> None:
    name = faulty_aws.resources["EchoFunction"]
    client = faulty_aws.client("lambda", config=NO_RETRIES)
    errors_before = faulty_aws.lambda_stats()["functions"][name]["errors"].get(
        "Sandbox.Timedout", 0
    )
    fault_id = faulty_aws.add_fault(
        "lambda", "Invoke", "timeout", resource=name, match_body={"slice": {"index": 1}}
    )

    untouched = client.invoke(FunctionName=name, Payload=json.dumps({"slice": {"index": 0}}))
    started = time.monotonic()
    timed_out = client.invoke(FunctionName=name, Payload=json.dumps({"slice": {"index": 1}}))
    elapsed = time.monotonic() - started
    payload = json.loads(timed_out["Payload"].read())

    # The same status, header and payload as test_invoke_timeout_replaces_environment gets from
    # a real timeout, with the 10 s Timeout of the test stack's Globals.
    request_id = timed_out["ResponseMetadata"]["RequestId"]
    assert "FunctionError" not in untouched
    assert timed_out["StatusCode"] == 200
    assert timed_out["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 10.00 seconds",
    }
    assert elapsed < 5.0
    assert faulty_aws.fault(fault_id)["fired"] == 1
    errors = faulty_aws.lambda_stats()["functions"][name]["errors"]
    assert errors.get("Sandbox.Timedout", 0) == errors_before + 1
    assert f"Injected fault {fault_id} (timeout) into lambda Invoke on {name}" in (
        faulty_aws.server_log.read_text()
    )


@pytest.mark.parametrize(
    ("status", "error_code"),
    [
        pytest.param(500, "ServiceException", id="service-exception"),
        pytest.param(429, "TooManyRequestsException", id="too-many-requests"),
    ],
)
def test_fault_error_on_invoke_is_service_error(
    faulty_aws: LocalAWS, status: int, error_code: str
) -> None:
    name = faulty_aws.resources["EchoFunction"]
    client = faulty_aws.client("lambda", config=NO_RETRIES)
    faulty_aws.add_fault(
        "lambda", "Invoke", "error", resource=name, status=status, error_code=error_code
    )

    with pytest.raises(ClientError) as error:
        client.invoke(FunctionName=name, Payload=b"{}")

    fault_id = faulty_aws.faults()[0]["id"]
    assert _error(error) == (status, error_code, f"Injected by local AWS fault rule {fault_id}.")


def test_add_fault_invalid_rule_raises_with_reason(faulty_aws: LocalAWS) -> None:
    with pytest.raises(FaultRuleError) as error:
        faulty_aws.add_fault("lambda", "Invoke", "crash")

    assert str(error.value) == "A fault of kind crash needs error_type."
    assert faulty_aws.faults() == []


def test_remove_fault_by_id(faulty_aws: LocalAWS) -> None:
    first = faulty_aws.add_fault("sqs", "SendMessage", "drop")
    second = faulty_aws.add_fault("sqs", "SendMessage", "drop")

    faulty_aws.remove_fault(first)

    assert [rule["id"] for rule in faulty_aws.faults()] == [second]
    with pytest.raises(FaultRuleError) as error:
        faulty_aws.remove_fault(first)
    assert str(error.value) == f"No fault rule has id {first}."


def test_clear_faults_returns_count(faulty_aws: LocalAWS) -> None:
    for _ in range(2):
        faulty_aws.add_fault("sqs", "SendMessage", "drop")

    assert faulty_aws.clear_faults() == 2
    assert faulty_aws.faults() == []


def test_reset_lambda_peaks_measures_anew(faulty_aws: LocalAWS) -> None:
    name = faulty_aws.resources["EchoFunction"]
    faulty_aws.client("lambda").invoke(FunctionName=name, Payload=b"{}")

    faulty_aws.reset_lambda_peaks()

    assert faulty_aws.lambda_stats()["functions"][name]["peak_concurrent_invocations"] == 0
